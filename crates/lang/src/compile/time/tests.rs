//! The meaning of compiled `during` windows, run through Cedar's own
//! authorizer with `context.clock` as the engine supplies it.

use crate::{CompiledPolicySet, Sources, compile_policy_set};
use cedar_policy::{Authorizer, Context, Decision, Entities, EntityUid, Request};
use serde_json::json;
use std::str::FromStr;

fn compile(text: &str) -> CompiledPolicySet {
    let mut s = Sources::new();
    s.add("t.policy", text);
    match compile_policy_set(&s) {
        Ok(out) => out.policy_set,
        Err(d) => panic!(
            "{:?}",
            d.iter()
                .map(|d| d.message().to_string())
                .collect::<Vec<_>>()
        ),
    }
}

/// The decision for a call at local `clock` (ISO day, minute) in `zone`,
/// or with the zone left out (`None`), as the engine leaves it out when it
/// cannot say. The rules under test read nothing but the clock.
fn decide(set: &CompiledPolicySet, zone: &str, clock: Option<(i64, i64)>) -> Decision {
    let mut zones = serde_json::Map::new();
    if let Some((day, minute)) = clock {
        zones.insert(zone.to_string(), json!({"day": day, "minute": minute}));
    }
    let ctx = json!({ "clock": zones, "via_agent": true });
    let action = EntityUid::from_str(r#"Warden::Action::"call_tool""#).unwrap();
    let principal = EntityUid::from_str(r#"Warden::User::"alice""#).unwrap();
    let resource = EntityUid::from_str(r#"Warden::Tool::"genomics/start_run""#).unwrap();
    let tool = json!([{
        "uid": {"type": "Warden::Tool", "id": "genomics/start_run"},
        "attrs": {"name": "start_run", "server": "genomics"},
        "parents": [],
    }]);
    let entities = Entities::from_json_value(tool, None).unwrap();
    let context = Context::from_json_value(ctx, None).unwrap();
    let request = Request::new(principal, action, resource, context, None).unwrap();
    let response = Authorizer::new().is_authorized(&request, set.enforced_policies(), &entities);
    let errors: Vec<String> = response
        .diagnostics()
        .errors()
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "evaluation errors: {errors:?}");
    response.decision()
}

/// Allowed only inside the window: `inside(day, "HH:MM")`.
fn allow_during(window: &str) -> impl Fn(i64, &str) -> bool {
    let set = compile(&format!(
        "default deny\nallow in-window {{\n  when during {window}\n}}\n"
    ));
    let zone = window
        .rsplit('"')
        .nth(1)
        .expect("a quoted zone")
        .to_string();
    move |day, at| {
        let (h, m) = at.split_once(':').unwrap();
        let minute = h.parse::<i64>().unwrap() * 60 + m.parse::<i64>().unwrap();
        decide(&set, &zone, Some((day, minute))) == Decision::Allow
    }
}

const MON: i64 = 1;
const THU: i64 = 4;
const FRI: i64 = 5;
const SAT: i64 = 6;
const SUN: i64 = 7;

#[test]
fn working_hours_start_inclusive_and_end_exclusive() {
    let inside = allow_during("weekdays 08:00-18:00 \"Europe/Berlin\"");
    assert!(inside(MON, "08:00"));
    assert!(!inside(MON, "07:59"));
    assert!(inside(FRI, "17:59"));
    assert!(!inside(FRI, "18:00"));
    assert!(!inside(SAT, "10:00"));
    assert!(!inside(SUN, "12:00"));
}

#[test]
fn a_window_past_midnight_starts_on_its_days_and_ends_the_next_day() {
    let inside = allow_during("fri 22:00-06:00 \"UTC\"");
    assert!(inside(FRI, "22:00"));
    assert!(inside(FRI, "23:59"));
    assert!(inside(SAT, "00:00"));
    assert!(inside(SAT, "05:59"));
    assert!(!inside(SAT, "06:00"));
    assert!(
        !inside(SAT, "23:00"),
        "saturday night is not a friday night"
    );
    assert!(!inside(THU, "23:00"));
    assert!(
        !inside(FRI, "05:00"),
        "friday early morning is thursday's night"
    );
}

#[test]
fn a_night_window_over_sunday_ends_on_monday() {
    let inside = allow_during("sun 22:00-06:00 \"UTC\"");
    assert!(inside(SUN, "23:00"));
    assert!(inside(MON, "01:00"));
    assert!(!inside(SUN, "01:00"));
}

#[test]
fn every_night_without_days() {
    let inside = allow_during("22:00-06:00 \"UTC\"");
    for day in 1..=7 {
        assert!(inside(day, "22:00") && inside(day, "03:00"));
        assert!(!inside(day, "06:00") && !inside(day, "21:59"));
    }
}

#[test]
fn days_without_hours_are_whole_days() {
    let inside = allow_during("sat,sun \"UTC\"");
    assert!(inside(SAT, "00:00") && inside(SUN, "23:59"));
    assert!(!inside(MON, "00:00") && !inside(FRI, "23:59"));
}

#[test]
fn a_day_range_may_wrap_over_the_weekend() {
    let inside = allow_during("fri-mon \"UTC\"");
    for day in [FRI, SAT, SUN, MON] {
        assert!(inside(day, "12:00"), "day {day}");
    }
    for day in 2..=4 {
        assert!(!inside(day, "12:00"), "day {day}");
    }
    let inside = allow_during("mon,wed-thu,sun \"UTC\"");
    let days: Vec<i64> = (1..=7).filter(|d| inside(*d, "12:00")).collect();
    assert_eq!(days, [1, 3, 4, 7]);
}

#[test]
fn a_window_may_end_at_midnight() {
    let inside = allow_during("18:00-24:00 \"UTC\"");
    assert!(inside(MON, "23:59") && inside(MON, "18:00"));
    assert!(!inside(MON, "00:00") && !inside(MON, "17:59"));
    let inside = allow_during("18:00-00:00 \"UTC\"");
    assert!(inside(MON, "23:59") && !inside(TUE, "00:00"));
    let inside = allow_during("00:00-24:00 \"UTC\"");
    assert!(inside(MON, "00:00") && inside(MON, "23:59"));
}

const TUE: i64 = 2;

#[test]
fn an_unknown_local_time_never_grants_and_always_restricts() {
    let allow =
        compile("default deny\nallow day {\n  when during weekdays 08:00-18:00 \"UTC\"\n}\n");
    assert_eq!(decide(&allow, "UTC", None), Decision::Deny);
    let deny_outside = compile(
        "default allow\ndeny night {\n  when via agent and not during weekdays 08:00-18:00 \"UTC\"\n}\n",
    );
    assert_eq!(decide(&deny_outside, "UTC", None), Decision::Deny);
    assert_eq!(
        decide(&deny_outside, "UTC", Some((MON, 9 * 60))),
        Decision::Allow
    );
    assert_eq!(
        decide(&deny_outside, "UTC", Some((MON, 20 * 60))),
        Decision::Deny
    );
    let deny_inside = compile("default allow\ndeny weekend {\n  when during weekends \"UTC\"\n}\n");
    assert_eq!(decide(&deny_inside, "UTC", None), Decision::Deny);
    assert_eq!(decide(&deny_inside, "UTC", Some((MON, 0))), Decision::Allow);
    // Another zone's clock says nothing about this one.
    assert_eq!(
        decide(&deny_inside, "Europe/Berlin", Some((MON, 600))),
        Decision::Deny
    );
}

#[test]
fn the_set_and_each_rule_list_their_zones_and_the_schema_declares_them() {
    let set = compile(
        "default allow\n\
         deny night {\n  when not during weekdays 08:00-18:00 \"Europe/Berlin\"\n}\n\
         deny weekend {\n  when during weekends \"America/New_York\" or during sun \"Europe/Berlin\"\n}\n\
         deny other {\n  when via agent\n}\n",
    );
    let zones: Vec<&str> = set.clock_zones().iter().map(String::as_str).collect();
    assert_eq!(zones, ["America/New_York", "Europe/Berlin"]);
    let of =
        |id: &str| -> Vec<String> { set.rule(id).unwrap().clock_zones.iter().cloned().collect() };
    assert_eq!(of("night"), ["Europe/Berlin"]);
    assert_eq!(of("weekend"), ["America/New_York", "Europe/Berlin"]);
    assert!(of("other").is_empty());
    let schema = set.schema_text();
    assert!(
        schema.contains("type Clock = {\n    \"America/New_York\"?: { \"day\": Long, \"minute\": Long },\n    \"Europe/Berlin\"?: { \"day\": Long, \"minute\": Long },\n  };"),
        "{schema}"
    );
    assert!(schema.contains("\"clock\": Clock,"), "{schema}");
}

#[test]
fn the_emitted_cedar_guards_the_zone_and_reads_ranges_of_days() {
    let set = compile(
        "default allow\ndeny night {\n  when not during weekdays 08:00-18:00 \"Europe/Berlin\"\n}\n",
    );
    let cedar = &set.rule("night").unwrap().cedar;
    // `not during` in a deny fires on "not definitely inside": outside,
    // or the local time unknown.
    let body = "!((context.clock has \"Europe/Berlin\") \
                && (context.clock[\"Europe/Berlin\"].day <= 5) \
                && (context.clock[\"Europe/Berlin\"].minute >= 480) \
                && (context.clock[\"Europe/Berlin\"].minute < 1080))";
    assert!(cedar.contains(&format!("when {{\n  {body}\n}}")), "{cedar}");
}

#[test]
fn a_window_past_midnight_compiles_to_its_two_parts_as_documented() {
    let set =
        compile("default allow\ndeny friday-night {\n  when during fri 22:00-06:00 \"UTC\"\n}\n");
    let cedar = &set.rule("friday-night").unwrap().cedar;
    // docs/language.md, "Time windows: during", shows this text.
    let body = "  ((context.clock has UTC) && (((context.clock.UTC.day == 5) && (context.clock.UTC.minute >= 1320)) \
                || ((context.clock.UTC.day == 6) && (context.clock.UTC.minute < 360))))\n  \
                || (!(context.clock has UTC))";
    assert!(cedar.contains(&format!("when {{\n{body}\n}}")), "{cedar}");
}
