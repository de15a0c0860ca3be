//! The reference's calendar: a call's local weekday and minute in the few
//! time zones the generated `during` windows name, from the zones' DST
//! rules written out by hand (valid from 2008 on), with no time-zone
//! database, and whether a `during` window holds at that time
//! (docs/language.md, "during").

use warden_lang::ast::During;

/// The zones the generator names: no DST, a half-hour offset, and the
/// EU, US and southern-hemisphere DST rules.
pub const ZONES: &[&str] = &[
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Asia/Kolkata",
    "Australia/Sydney",
];

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The UTC year of a day number.
fn year_of(days: i64) -> i64 {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    yoe + era * 400 + i64::from(m <= 2)
}

/// ISO weekday (Monday 1 … Sunday 7) of a day number; 1970-01-01 was a
/// Thursday.
fn iso_weekday(days: i64) -> u8 {
    ((days + 3).rem_euclid(7) + 1) as u8
}

/// The day number of the `n`th Sunday (1-based) of a month.
fn nth_sunday(y: i64, m: i64, n: i64) -> i64 {
    let first = days_from_civil(y, m, 1);
    let to_sunday = (7 - i64::from(iso_weekday(first))).rem_euclid(7);
    first + to_sunday + 7 * (n - 1)
}

/// The day number of the last Sunday of a month.
fn last_sunday(y: i64, m: i64) -> i64 {
    let next = if m == 12 {
        days_from_civil(y + 1, 1, 1)
    } else {
        days_from_civil(y, m + 1, 1)
    };
    let last = next - 1;
    last - (i64::from(iso_weekday(last)) % 7)
}

/// The zone's offset from UTC in minutes at `unix` (seconds).
fn offset_minutes(zone: &str, unix: i64) -> Option<i64> {
    let y = year_of(unix.div_euclid(86_400));
    let hour = 3600;
    Some(match zone {
        "UTC" => 0,
        "Asia/Kolkata" => 330,
        // EU: summer time from the last Sunday of March to the last
        // Sunday of October, switching at 01:00 UTC.
        "Europe/Berlin" => {
            let start = last_sunday(y, 3) * 86_400 + hour;
            let end = last_sunday(y, 10) * 86_400 + hour;
            if (start..end).contains(&unix) {
                120
            } else {
                60
            }
        }
        // US: from the second Sunday of March at 02:00 local standard
        // time (07:00 UTC) to the first Sunday of November at 02:00
        // local daylight time (06:00 UTC).
        "America/New_York" => {
            let start = nth_sunday(y, 3, 2) * 86_400 + 7 * hour;
            let end = nth_sunday(y, 11, 1) * 86_400 + 6 * hour;
            if (start..end).contains(&unix) {
                -240
            } else {
                -300
            }
        }
        // New South Wales: daylight time ends on the first Sunday of
        // April at 03:00 local (16:00 UTC the day before) and starts on
        // the first Sunday of October at 02:00 local (16:00 UTC the day
        // before): on in the southern summer, across the new year.
        "Australia/Sydney" => {
            let end = nth_sunday(y, 4, 1) * 86_400 - 8 * hour;
            let start = nth_sunday(y, 10, 1) * 86_400 - 8 * hour;
            if unix < end || unix >= start {
                660
            } else {
                600
            }
        }
        _ => return None,
    })
}

/// The local ISO weekday and minute of the day at `unix` in `zone`.
pub fn local(zone: &str, unix: i64) -> Option<(u8, u16)> {
    let local = unix + offset_minutes(zone, unix)? * 60;
    Some((
        iso_weekday(local.div_euclid(86_400)),
        (local.rem_euclid(86_400) / 60) as u16,
    ))
}

/// Whether the window holds at `unix`; `None` for a zone the reference
/// does not know. A window whose end is not after its start runs past
/// midnight: its days say on which days it starts, and the early hours
/// of the next day belong to it.
pub fn during(d: &During, unix: i64) -> Option<bool> {
    let (day, minute) = local(&d.zone.node, unix)?;
    let on = |day: u8| {
        d.days
            .as_ref()
            .is_none_or(|days| days.node.iso_days().contains(&day))
    };
    let yesterday = if day == 1 { 7 } else { day - 1 };
    Some(match d.hours.as_ref().map(|h| h.node) {
        None => on(day),
        Some((from, to)) if from < to => on(day) && (from..to).contains(&minute),
        Some((from, to)) => (on(day) && minute >= from) || (on(yesterday) && minute < to),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Instants and their local times as the system's tz database (GNU
    /// `date`) gives them.
    #[test]
    fn local_times_follow_the_dst_rules() {
        let cases = [
            // 2026-03-29T01:00:00Z: Berlin springs forward.
            (1_774_746_000, "Europe/Berlin", (7, 3 * 60)),
            (1_774_745_999, "Europe/Berlin", (7, 60 + 59)),
            (1_774_746_000, "America/New_York", (6, 21 * 60)),
            // 2026-10-25T01:00:00Z: Berlin falls back.
            (1_792_890_000, "Europe/Berlin", (7, 2 * 60)),
            (1_792_889_999, "Europe/Berlin", (7, 2 * 60 + 59)),
            // 2026-03-08T07:00:00Z and 2026-11-01T06:00:00Z in New York.
            (1_772_953_200, "America/New_York", (7, 3 * 60)),
            (1_772_953_199, "America/New_York", (7, 60 + 59)),
            (1_793_512_800, "America/New_York", (7, 60)),
            (1_793_512_799, "America/New_York", (7, 60 + 59)),
            // 2026-10-03T16:00:00Z and 2026-04-04T16:00:00Z in Sydney.
            (1_791_043_200, "Australia/Sydney", (7, 3 * 60)),
            (1_791_043_199, "Australia/Sydney", (7, 60 + 59)),
            (1_775_318_400, "Australia/Sydney", (7, 2 * 60)),
            (1_775_318_399, "Australia/Sydney", (7, 2 * 60 + 59)),
            // 2026-12-02T07:30:00Z, a Wednesday.
            (1_796_196_600, "Europe/Berlin", (3, 8 * 60 + 30)),
            (1_796_196_600, "Asia/Kolkata", (3, 13 * 60)),
            (1_796_196_600, "Australia/Sydney", (3, 18 * 60 + 30)),
            (1_796_196_600, "UTC", (3, 7 * 60 + 30)),
            // 2027-01-01T00:00:00Z: Thursday evening in New York.
            (1_798_761_600, "America/New_York", (4, 19 * 60)),
            (1_798_761_600, "Australia/Sydney", (5, 11 * 60)),
        ];
        for (unix, zone, want) in cases {
            assert_eq!(local(zone, unix), Some(want), "{zone} at {unix}");
        }
        assert_eq!(local("Mars/Olympus", 0), None);
    }
}
