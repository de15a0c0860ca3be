//! The meaning of issue 12's rules that read what the engine supplies:
//! `context.budgets` (a budget), `context.clock` (`during`) and
//! `context.each` (`any` / `all`), run through Cedar's authorizer
//! (harness in tests/support/semantics.rs). What is absent is unknown:
//! restrictions fire, allows grant nothing.

#[path = "support/semantics.rs"]
mod support;

use cedar_policy::Decision;
use support::{Call, compile, decide};
use warden_lang::CompiledPolicySet;

fn denied(set: &CompiledPolicySet, call: Call) -> bool {
    decide(set, &call).0 == Decision::Deny
}

#[test]
fn a_budget_denies_above_its_max_and_when_the_sum_is_absent() {
    let set = compile(
        "default allow\nbudget spend {\n  tool \"start_run\"\n  sum args.cost\n  max 2000.50 per 1d per user\n}\n",
    );
    let with = |v: &'static str| Call {
        budgets: vec![("spend", v)],
        ..Call::default()
    };
    assert!(!denied(&set, with("2000.5000")), "at the max");
    assert!(!denied(&set, with("0.0001")));
    assert!(denied(&set, with("2000.5001")), "above the max");
    // No sum (a missing or bad amount, the store down): deny.
    assert!(denied(&set, Call::default()));
    // Another tool is not the budget's.
    let other = Call {
        tool: "list_runs",
        ..Call::default()
    };
    assert!(!denied(&set, other));
}

#[test]
fn during_reads_the_local_day_and_minute_and_an_unknown_time_restricts() {
    let set = compile(
        "default allow\ndeny night-runs {\n  when via agent and not during weekdays 08:00-18:00 \"Europe/Berlin\"\n}\n",
    );
    let at = |day: u8, minute: u16| Call {
        clock: vec![("Europe/Berlin", (day, minute))],
        ..Call::default()
    };
    assert!(!denied(&set, at(1, 8 * 60)), "Monday 08:00 is inside");
    assert!(!denied(&set, at(5, 18 * 60 - 1)), "Friday 17:59 is inside");
    assert!(denied(&set, at(5, 18 * 60)), "18:00 is the end, outside");
    assert!(denied(&set, at(3, 7 * 60 + 59)));
    assert!(denied(&set, at(6, 12 * 60)), "Saturday");
    // No clock for the zone: unknown, and the deny fires.
    assert!(denied(&set, Call::default()));

    // Past midnight: starts on its days, ends the next morning.
    let night = compile("default allow\ndeny late {\n  when during fri 22:00-06:00 \"UTC\"\n}\n");
    let utc = |day: u8, minute: u16| Call {
        clock: vec![("UTC", (day, minute))],
        ..Call::default()
    };
    assert!(denied(&night, utc(5, 23 * 60)), "Friday 23:00");
    assert!(
        denied(&night, utc(6, 5 * 60)),
        "Saturday 05:00, from Friday"
    );
    assert!(
        !denied(&night, utc(6, 23 * 60)),
        "Saturday 23:00 starts no window"
    );
    assert!(
        !denied(&night, utc(5, 5 * 60)),
        "Friday 05:00 is Thursday's night"
    );
}

#[test]
fn quantified_tests_are_read_three_valued() {
    let deny = compile(
        "default allow\ndeny etc {\n  tool \"write_*\"\n  when any args.paths under \"/etc\"\n}\n",
    );
    let allow = compile(
        "default deny\nallow scratch {\n  tool \"write_*\"\n  when all args.paths under \"/scratch\"\n}\n",
    );
    let id = |set: &CompiledPolicySet| -> String {
        let ids: Vec<String> = set
            .rules()
            .iter()
            .flat_map(|r| r.each_tests.iter().map(|t| t.id.clone()))
            .collect();
        assert_eq!(ids.len(), 1, "{ids:?}");
        ids[0].clone()
    };
    let call = |set: &CompiledPolicySet, t: bool, p: bool| Call {
        tool: "write_file",
        each: vec![(id(set), (t, p))],
        ..Call::default()
    };
    // A restriction fires on possibly true.
    assert!(denied(&deny, call(&deny, true, true)));
    assert!(denied(&deny, call(&deny, false, true)));
    assert!(!denied(&deny, call(&deny, false, false)));
    let absent = Call {
        tool: "write_file",
        ..Call::default()
    };
    assert!(denied(&deny, absent));
    // An allow grants on definitely true only.
    assert!(!denied(&allow, call(&allow, true, true)));
    assert!(denied(&allow, call(&allow, false, true)));
    assert!(denied(&allow, call(&allow, false, false)));
}
