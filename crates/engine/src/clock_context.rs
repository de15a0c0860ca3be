//! The clock part of a call's Cedar context: for every time zone the
//! slice's `during` windows name, the call's local ISO weekday (Monday 1 …
//! Sunday 7) and minute of the local day (0 … 1439), as
//! `context.clock["<zone>"] = { "day", "minute" }`.
//!
//! Zones are resolved once per slice ([`SliceZones::resolve`]), through
//! the same lookup the checker uses ([`warden_lang::check::zone`], the
//! bundled IANA database), so a decision does no zone-database lookup:
//! it converts one timestamp per zone with DST rules already in memory.
//! A zone that cannot be resolved, or a time it cannot convert, is left
//! out of the record, which the compiled policy reads as "local time
//! unknown": restrictions fire, allows do not grant.

use arc_swap::ArcSwapOption;
use cedar_policy::RestrictedExpression;
use jiff::Timestamp;
use jiff::tz::TimeZone;
use std::sync::Arc;

/// A local time of day in one zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalTime {
    /// ISO weekday: Monday 1 … Sunday 7.
    pub day: u8,
    /// Minutes since local midnight, 0 … 1439.
    pub minute: u16,
}

/// The local time in `tz` at `unix_millis` (milliseconds since the Unix
/// epoch), or `None` when the instant is outside what can be converted.
/// A local time skipped by a DST change never occurs; one repeated by it
/// occurs twice, each instant reading the offset in force then.
pub fn local_time(tz: &TimeZone, unix_millis: i64) -> Option<LocalTime> {
    let at = Timestamp::from_millisecond(unix_millis).ok()?;
    let local = tz.to_datetime(at);
    let day = u8::try_from(local.weekday().to_monday_one_offset()).ok()?;
    let hour = u16::try_from(local.hour()).ok()?;
    let minute = u16::try_from(local.minute()).ok()?;
    Some(LocalTime {
        day,
        minute: hour * 60 + minute,
    })
}

/// Milliseconds since the Unix epoch of an RFC 3339 instant with its
/// offset (`2026-12-02T07:30:00Z`, `2026-12-02T08:30:00+01:00`), as
/// `warden test` cases set the clock.
pub fn parse_instant(rfc3339: &str) -> Option<i64> {
    rfc3339
        .parse::<Timestamp>()
        .ok()
        .map(|t| t.as_millisecond())
}

/// The zones one slice's rules name, each resolved when the slice was
/// built (`None`: not resolvable, so always left out).
#[derive(Debug, Default)]
pub struct SliceZones {
    zones: Vec<(String, Option<TimeZone>)>,
    /// The last `context.clock` built, with the local times it holds: the
    /// record changes once a minute, and building a Cedar record costs
    /// several times more than converting the time (a clone shares it).
    last: ArcSwapOption<(Vec<Option<LocalTime>>, RestrictedExpression)>,
}

impl SliceZones {
    /// Resolves each named zone once.
    pub fn resolve<'a>(names: impl IntoIterator<Item = &'a String>) -> SliceZones {
        let mut zones: Vec<(String, Option<TimeZone>)> = Vec::new();
        for name in names {
            if !zones.iter().any(|(n, _)| n == name) {
                zones.push((name.clone(), warden_lang::check::zone(name)));
            }
        }
        zones.sort_by(|a, b| a.0.cmp(&b.0));
        SliceZones {
            zones,
            last: ArcSwapOption::empty(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.zones.is_empty()
    }

    /// The zone names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.zones.iter().map(|(n, _)| n.as_str())
    }

    /// Each zone whose local time at `unix_millis` is known, with it.
    pub fn local_times(&self, unix_millis: i64) -> impl Iterator<Item = (&str, LocalTime)> {
        self.zones.iter().filter_map(move |(name, tz)| {
            let local = local_time(tz.as_ref()?, unix_millis)?;
            Some((name.as_str(), local))
        })
    }

    /// The local time in each zone of the slice at `unix_millis`, in the
    /// zones' order (`None`: not known there): all `context.clock` holds.
    pub(crate) fn locals(&self, unix_millis: i64) -> Vec<Option<LocalTime>> {
        self.zones
            .iter()
            .map(|(_, tz)| local_time(tz.as_ref()?, unix_millis))
            .collect()
    }

    /// `context.clock` for a call at `unix_millis`.
    #[cfg(test)]
    pub(crate) fn record(&self, unix_millis: i64) -> Result<RestrictedExpression, String> {
        self.record_of(self.locals(unix_millis))
    }

    /// `context.clock` holding `locals` (from [`SliceZones::locals`]).
    pub(crate) fn record_of(
        &self,
        locals: Vec<Option<LocalTime>>,
    ) -> Result<RestrictedExpression, String> {
        if let Some(last) = self.last.load().as_ref()
            && last.0 == locals
        {
            return Ok(last.1.clone());
        }
        let record = self.build(&locals)?;
        self.last.store(Some(Arc::new((locals, record.clone()))));
        Ok(record)
    }

    fn build(&self, locals: &[Option<LocalTime>]) -> Result<RestrictedExpression, String> {
        let entries = self
            .zones
            .iter()
            .zip(locals)
            .filter_map(|((name, _), local)| Some((name, (*local)?)))
            .map(|(name, local)| {
                let fields = [
                    (
                        "day".to_string(),
                        RestrictedExpression::new_long(i64::from(local.day)),
                    ),
                    (
                        "minute".to_string(),
                        RestrictedExpression::new_long(i64::from(local.minute)),
                    ),
                ];
                RestrictedExpression::new_record(fields).map(|r| (name.to_string(), r))
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())?;
        RestrictedExpression::new_record(entries).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn millis(rfc3339: &str) -> i64 {
        parse_instant(rfc3339).expect("a timestamp")
    }

    #[test]
    fn instants_need_their_offset() {
        assert_eq!(parse_instant("1970-01-01T00:00:01Z"), Some(1000));
        assert_eq!(
            parse_instant("2026-12-02T08:30:00+01:00"),
            parse_instant("2026-12-02T07:30:00Z")
        );
        assert_eq!(parse_instant("2026-12-02T07:30:00"), None);
        assert_eq!(parse_instant("07:30"), None);
    }

    fn berlin(at: &str) -> LocalTime {
        let tz = warden_lang::check::zone("Europe/Berlin").expect("zone");
        local_time(&tz, millis(at)).expect("convertible")
    }

    #[test]
    fn local_day_and_minute_follow_the_zone_offset() {
        // 2026-12-02 is a Wednesday; Berlin is UTC+1 in winter.
        assert_eq!(
            berlin("2026-12-02T07:30:00Z"),
            LocalTime {
                day: 3,
                minute: 8 * 60 + 30
            }
        );
        // Late Sunday UTC is already Monday in Berlin.
        assert_eq!(
            berlin("2026-12-06T23:15:00Z"),
            LocalTime { day: 1, minute: 15 }
        );
    }

    #[test]
    fn the_spring_and_autumn_changes_in_berlin() {
        // 2026-03-29: 02:00 CET becomes 03:00 CEST (01:00 UTC).
        assert_eq!(berlin("2026-03-29T00:59:00Z").minute, 60 + 59);
        assert_eq!(berlin("2026-03-29T01:00:00Z").minute, 3 * 60);
        // 2026-10-25: 03:00 CEST becomes 02:00 CET (01:00 UTC); 02:30
        // happens twice.
        assert_eq!(berlin("2026-10-25T00:30:00Z").minute, 2 * 60 + 30);
        assert_eq!(berlin("2026-10-25T01:30:00Z").minute, 2 * 60 + 30);
        assert_eq!(berlin("2026-10-25T02:00:00Z").minute, 3 * 60);
    }

    #[test]
    fn the_record_is_reused_within_a_minute_and_rebuilt_after() {
        use cedar_policy::{Context, Entities, EntityUid, Expression, Request};
        use std::str::FromStr;
        // What Cedar reads from a record: `context.clock`, evaluated.
        let read = |record: RestrictedExpression| {
            let context = Context::from_pairs([("clock".to_string(), record)]).unwrap();
            let uid = |t: &str| EntityUid::from_str(&format!("{t}::\"x\"")).unwrap();
            let request = Request::new(uid("U"), uid("A"), uid("R"), context, None).unwrap();
            let expr = Expression::from_str("context.clock").unwrap();
            cedar_policy::eval_expression(&request, &Entities::empty(), &expr)
                .unwrap()
                .to_string()
        };
        let zones = SliceZones::resolve(&["Asia/Kolkata".to_string(), "UTC".to_string()]);
        let text = |at: &str| read(zones.record(millis(at)).expect("a record"));
        let first = text("2026-12-02T07:30:05Z");
        assert!(
            first.contains("\"minute\": 780") && first.contains("\"minute\": 450"),
            "{first}"
        );
        assert_eq!(text("2026-12-02T07:30:59Z"), first);
        let next = text("2026-12-02T07:31:00Z");
        assert!(
            next.contains("\"minute\": 781") && next.contains("\"minute\": 451"),
            "{next}"
        );
        assert_eq!(text("2026-12-02T07:30:10Z"), first, "back in time");
        let none = SliceZones::resolve(&[]);
        assert_eq!(read(none.record(0).expect("a record")), "{}");
    }

    #[test]
    fn unresolvable_zones_and_instants_are_left_out() {
        let names = [
            "Europe/Berlin".to_string(),
            "Nowhere/City".to_string(),
            "Europe/Berlin".to_string(),
            "UTC".to_string(),
        ];
        let zones = SliceZones::resolve(&names);
        assert_eq!(
            zones.names().collect::<Vec<_>>(),
            ["Europe/Berlin", "Nowhere/City", "UTC"]
        );
        let at = millis("2026-12-02T07:30:00Z");
        let known: Vec<(&str, LocalTime)> = zones.local_times(at).collect();
        assert_eq!(
            known,
            [
                (
                    "Europe/Berlin",
                    LocalTime {
                        day: 3,
                        minute: 510
                    }
                ),
                (
                    "UTC",
                    LocalTime {
                        day: 3,
                        minute: 450
                    }
                ),
            ]
        );
        assert_eq!(zones.local_times(i64::MAX).count(), 0);
    }
}
