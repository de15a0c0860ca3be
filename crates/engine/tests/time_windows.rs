//! `during` windows decided by the engine at the time of its clock: local
//! days and hours in each zone, DST changes in Europe/Berlin (the last
//! Sundays of March and October), windows past midnight, and a local time
//! the engine cannot say, which fails closed.

use serde_json::json;
use std::sync::Arc;
use warden_engine::state::{Clock, ManualClock};
use warden_engine::{CallContext, Engine, EngineOptions, Identity, PolicyBundle, Provenance};
use warden_lang::{Sources, compile_policy_set};

fn engine_for(text: &str) -> (Engine, Arc<ManualClock>) {
    let mut s = Sources::new();
    s.add("t.policy", text);
    let set = compile_policy_set(&s).expect("compiles").policy_set;
    let clock = Arc::new(ManualClock::default());
    let opts = EngineOptions {
        clock: clock.clone(),
        ..EngineOptions::default()
    };
    (
        Engine::new(PolicyBundle::new(set, "v1".into()), opts),
        clock,
    )
}

fn call(via_agent: bool) -> CallContext {
    CallContext {
        identity: Identity {
            user: "alice".into(),
            agent: via_agent.then(|| "claude-code".into()),
            ..Identity::default()
        },
        session: "s1".into(),
        provenance: Provenance {
            via_agent,
            via_server: Some("genomics".into()),
        },
        server: "genomics".into(),
        tool: "start_pipeline_run".into(),
        arguments: json!({}),
        ..CallContext::default()
    }
}

/// Sets the wall clock to `rfc3339` (an instant with its offset).
fn set_time(clock: &ManualClock, rfc3339: &str) {
    let target = rfc3339
        .parse::<jiff::Timestamp>()
        .expect("an RFC 3339 instant")
        .as_millisecond();
    clock.step_wall(target - clock.unix_millis());
    assert_eq!(clock.unix_millis(), target);
}

/// Whether an agent's call at each instant is allowed.
fn allowed_at(text: &str, instants: &[&str]) -> Vec<bool> {
    let (engine, clock) = engine_for(text);
    instants
        .iter()
        .map(|at| {
            set_time(&clock, at);
            engine.decide(&call(true)).is_allow()
        })
        .collect()
}

const NIGHT_RUNS: &str = "default allow\n\
deny night-runs {\n  tool \"start_pipeline_run\"\n  when via agent and not during weekdays 08:00-18:00 \"Europe/Berlin\"\n  reason \"pipelines start in Berlin working hours only\"\n}\n";

#[test]
fn working_hours_in_berlin_in_winter() {
    // 2026-12-02 is a Wednesday; Berlin is UTC+1.
    assert_eq!(
        allowed_at(
            NIGHT_RUNS,
            &[
                "2026-12-02T06:59:00Z", // 07:59
                "2026-12-02T07:00:00Z", // 08:00
                "2026-12-02T16:59:59Z", // 17:59:59
                "2026-12-02T17:00:00Z", // 18:00
                "2026-12-02T09:30:00+01:00",
                "2026-12-05T10:00:00Z", // Saturday
                "2026-12-04T16:30:00Z", // Friday 17:30
            ]
        ),
        [false, true, true, false, true, false, true]
    );
}

#[test]
fn the_denial_names_the_rule_and_its_reason_and_people_are_not_affected() {
    let (engine, clock) = engine_for(NIGHT_RUNS);
    set_time(&clock, "2026-12-02T22:00:00Z");
    let d = engine.decide(&call(true));
    let warden_engine::Outcome::Deny(denial) = &d.outcome else {
        panic!("denied at night: {:?}", d.outcome);
    };
    assert_eq!(denial.rules[0].rule, "night-runs");
    assert!(
        denial
            .reason
            .contains("pipelines start in Berlin working hours only"),
        "{}",
        denial.reason
    );
    assert!(engine.decide(&call(false)).is_allow());
}

#[test]
fn working_hours_move_with_the_spring_change() {
    // Sunday 2026-03-29, 02:00 CET becomes 03:00 CEST. 06:30 UTC is
    // 07:30 on the Friday before (UTC+1) and 08:30 on the Monday after
    // (UTC+2): a fixed offset would get one of them wrong.
    assert_eq!(
        allowed_at(
            NIGHT_RUNS,
            &[
                "2026-03-27T06:30:00Z",
                "2026-03-27T07:00:00Z",
                "2026-03-30T06:30:00Z",
                "2026-03-30T05:59:00Z",
                "2026-03-30T15:59:00Z", // 17:59 CEST
                "2026-03-30T16:00:00Z", // 18:00 CEST
            ]
        ),
        [false, true, true, false, true, false]
    );
}

#[test]
fn working_hours_move_with_the_autumn_change() {
    // Sunday 2026-10-25, 03:00 CEST becomes 02:00 CET.
    assert_eq!(
        allowed_at(
            NIGHT_RUNS,
            &[
                "2026-10-23T06:30:00Z", // Friday 08:30 CEST
                "2026-10-26T06:30:00Z", // Monday 07:30 CET
                "2026-10-26T07:00:00Z", // Monday 08:00 CET
            ]
        ),
        [true, false, true]
    );
}

#[test]
fn the_hour_skipped_in_spring_never_comes_and_the_repeated_one_comes_twice() {
    let policy =
        "default allow\ndeny small-hours {\n  when during sun 02:00-03:00 \"Europe/Berlin\"\n}\n";
    assert_eq!(
        allowed_at(
            policy,
            &[
                "2026-03-22T01:30:00Z", // a week before: 02:30 CET
                "2026-03-29T00:59:00Z", // 01:59 CET
                "2026-03-29T01:00:00Z", // 03:00 CEST: 02:00-03:00 skipped
                "2026-10-24T23:59:00Z", // 01:59 CEST
                "2026-10-25T00:30:00Z", // 02:30 CEST
                "2026-10-25T01:30:00Z", // 02:30 CET, the second time
                "2026-10-25T02:00:00Z", // 03:00 CET
            ]
        ),
        [false, true, true, true, false, false, true]
    );
}

#[test]
fn a_window_past_midnight_belongs_to_the_day_it_starts() {
    let policy = "default allow\ndeny friday-night {\n  when during fri 22:00-06:00 \"UTC\"\n}\n";
    assert_eq!(
        allowed_at(
            policy,
            &[
                "2026-12-04T21:59:00Z", // Friday
                "2026-12-04T22:00:00Z",
                "2026-12-05T00:00:00Z", // Saturday
                "2026-12-05T05:59:00Z",
                "2026-12-05T06:00:00Z",
                "2026-12-05T23:00:00Z", // Saturday night
                "2026-12-03T23:00:00Z", // Thursday night
                "2026-12-04T05:00:00Z", // Friday morning: Thursday's night
            ]
        ),
        [true, false, false, false, true, true, true, true]
    );
}

#[test]
fn days_are_local_days_of_the_zone() {
    let policy = "default allow\ndeny weekend {\n  when during sat,sun \"America/New_York\"\n}\n";
    assert_eq!(
        allowed_at(
            policy,
            &[
                "2026-12-05T04:59:00Z", // Friday 23:59 EST
                "2026-12-05T05:00:00Z", // Saturday 00:00 EST
                "2026-12-08T04:59:00Z", // Monday 23:59 EST
                "2026-12-07T04:59:00Z", // Sunday 23:59 EST
                "2026-12-07T05:00:00Z", // Monday 00:00 EST
            ]
        ),
        [true, false, true, false, true]
    );
}

#[test]
fn several_zones_in_one_rule() {
    let policy = "default deny\nallow follow-the-sun {\n  when during weekdays 09:00-17:00 \"Europe/Berlin\" or during weekdays 09:00-17:00 \"America/New_York\"\n}\n";
    assert_eq!(
        allowed_at(
            policy,
            &[
                "2026-12-02T08:30:00Z", // 09:30 Berlin
                "2026-12-02T17:30:00Z", // 18:30 Berlin, 12:30 New York
                "2026-12-02T23:30:00Z", // neither
            ]
        ),
        [true, true, false]
    );
}

#[test]
fn a_local_time_the_engine_cannot_say_fails_closed() {
    // Beyond the years the time zone rules cover, the engine cannot say
    // the local time: the zone is left out of the context.
    let deny = "default allow\ndeny night {\n  when not during weekdays 08:00-18:00 \"UTC\"\n}\n";
    let (engine, clock) = engine_for(deny);
    set_time(&clock, "2026-12-02T09:00:00Z");
    assert!(engine.decide(&call(true)).is_allow());
    clock.step_wall(1 << 60);
    assert!(
        !engine.decide(&call(true)).is_allow(),
        "a restriction fires"
    );

    let allow = "default deny\nallow day {\n  when during weekdays 08:00-18:00 \"UTC\"\n}\n";
    let (engine, clock) = engine_for(allow);
    set_time(&clock, "2026-12-02T09:00:00Z");
    assert!(engine.decide(&call(true)).is_allow());
    clock.step_wall(1 << 60);
    assert!(
        !engine.decide(&call(true)).is_allow(),
        "an allow does not grant"
    );
}

#[test]
fn a_zone_the_engine_cannot_resolve_is_left_out() {
    let zones = warden_engine::clock_context::SliceZones::resolve(&[
        "Nowhere/City".to_string(),
        "UTC".to_string(),
    ]);
    let names: Vec<&str> = zones.local_times(0).map(|(n, _)| n).collect();
    assert_eq!(names, ["UTC"]);
}

/// The retry advice of a denial by a time-bound deny is true: the same call
/// passes at another time. A deny that time alone cannot lift (the time
/// test under an `or`, or a second deny without one) still says never.
#[test]
fn a_time_bound_denial_says_another_time_and_only_then() {
    use warden_engine::{Outcome, Retry};
    let retry_at = |text: &str, instant: &str| {
        let (engine, clock) = engine_for(text);
        set_time(&clock, instant);
        match engine.decide(&call(true)).outcome {
            Outcome::Deny(d) => Some(d.retry),
            _ => None,
        }
    };
    let night = "default allow\ndeny night-runs {\n  tool \"start_pipeline_run\"\n  when via agent and not during weekdays 08:00-18:00 \"Europe/Berlin\"\n}\n";
    let at_night = "2026-12-02T22:30:00+01:00";
    assert_eq!(retry_at(night, at_night), Some(Retry::AtAnotherTime));
    // The advice holds: the same call in the morning goes through.
    assert_eq!(retry_at(night, "2026-12-03T09:00:00+01:00"), None);

    let or = "default allow\ndeny night-or-wgs {\n  when not during weekdays 08:00-18:00 \"Europe/Berlin\" or via agent\n}\n";
    assert_eq!(retry_at(or, at_night), Some(Retry::Never));
    assert_eq!(
        retry_at(or, "2026-12-03T09:00:00+01:00"),
        Some(Retry::Never),
        "time alone does not lift it"
    );

    let two = format!(
        "{night}\ndeny agents-never-run {{\n  tool \"start_pipeline_run\"\n  when via agent\n}}\n"
    );
    assert_eq!(retry_at(&two, at_night), Some(Retry::Never));

    let always = "default allow\ndeny always {\n  when via agent and during mon-sun \"UTC\"\n}\n";
    assert_eq!(retry_at(always, at_night), Some(Retry::Never));
}
