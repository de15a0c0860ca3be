//! Tests of the `during` checks: each finding with its place, and the
//! windows that must check clean.

use super::zone;
use crate::{Code, Severity, Sources, lint_policy_set};

/// The findings on `when during <window>`, as (code, the text under the
/// primary label).
fn findings(window: &str) -> Vec<(Code, String)> {
    let text = format!("default allow\ndeny night {{\n  when not during {window}\n}}\n");
    let mut s = Sources::new();
    s.add("t.policy", text.clone());
    lint_policy_set(&s)
        .iter()
        .map(|d| {
            let span = d.primary_span().expect("a span");
            (d.code(), text[span.start..span.end].to_string())
        })
        .collect()
}

#[test]
fn windows_that_check_clean() {
    for w in [
        "weekdays 08:00-18:00 \"Europe/Berlin\"",
        "sat,sun \"UTC\"",
        "mon-fri \"America/New_York\"",
        "22:00-06:00 \"UTC\"",
        "00:00-24:00 \"Asia/Kolkata\"",
        "18:00-24:00 \"Etc/GMT+5\"",
        "fri-mon 23:59-00:00 \"Australia/Lord_Howe\"",
        "mon,wed-fri \"Europe/London\"",
        "weekends 10:00-12:00 \"UTC\"",
    ] {
        assert_eq!(findings(w), [], "{w}");
    }
}

#[test]
fn times_that_are_not_times_of_day() {
    assert_eq!(
        findings("25:00-06:00 \"UTC\""),
        [(Code::InvalidTimeWindow, "25:00".to_string())]
    );
    assert_eq!(
        findings("08:00-18:60 \"UTC\""),
        [(Code::InvalidTimeWindow, "18:60".to_string())]
    );
    // 23:60 is 1440 minutes, as 24:00 is: read from the text, not the AST.
    assert_eq!(
        findings("08:00-23:60 \"UTC\""),
        [(Code::InvalidTimeWindow, "23:60".to_string())]
    );
    assert_eq!(
        findings("08:00-24:01 \"UTC\""),
        [(Code::InvalidTimeWindow, "24:01".to_string())]
    );
    assert_eq!(
        findings("24:00-06:00 \"UTC\""),
        [(Code::InvalidTimeWindow, "24:00".to_string())]
    );
}

#[test]
fn a_window_ending_when_it_starts_is_refused() {
    assert_eq!(
        findings("mon 08:00-08:00 \"UTC\""),
        [(Code::InvalidTimeWindow, "08:00-08:00".to_string())]
    );
    let d = first_diagnostic("08:00-08:00 \"UTC\"");
    assert!(d.help_text().unwrap().contains("00:00-24:00"));
}

#[test]
fn unknown_zones_are_refused_with_the_likely_name() {
    assert_eq!(
        findings("weekdays \"Europe/Berln\""),
        [(Code::UnknownTimeZone, "\"Europe/Berln\"".to_string())]
    );
    let d = first_diagnostic("weekdays \"Europe/Berln\"");
    assert_eq!(
        d.message(),
        "`Europe/Berln` is not a time zone the zone database knows"
    );
    assert!(
        d.help_text()
            .unwrap()
            .starts_with("did you mean `Europe/Berlin`?"),
        "{:?}",
        d.help_text()
    );
    // One spelling per zone: the lookup would ignore case, the check does not.
    let d = first_diagnostic("weekdays \"europe/berlin\"");
    assert_eq!(d.code(), Code::UnknownTimeZone);
    assert!(
        d.help_text()
            .unwrap()
            .starts_with("did you mean `Europe/Berlin`?")
    );
    let d = first_diagnostic("weekdays \"Mars/Olympus_Mons\"");
    assert!(
        d.help_text()
            .unwrap()
            .starts_with("write an IANA zone name")
    );
    for bad in ["", "Etc/Unknown", "CEST", "+01:00"] {
        assert_eq!(
            findings(&format!("weekdays \"{bad}\""))
                .iter()
                .map(|f| f.0)
                .collect::<Vec<_>>(),
            [Code::UnknownTimeZone],
            "{bad}"
        );
    }
}

#[test]
fn a_day_named_twice_is_a_warning_at_the_second_naming() {
    let text = "default allow\ndeny night {\n  when not during mon-fri, wed \"UTC\"\n}\n";
    let mut s = Sources::new();
    s.add("t.policy", text);
    let diags = lint_policy_set(&s);
    let d = diags.iter().next().expect("a finding");
    assert_eq!(d.code(), Code::RepeatedDay);
    assert_eq!(d.severity(), Severity::Warning);
    assert_eq!(d.message(), "`wed` is named twice in this window's days");
    let spans: Vec<&str> = d
        .labels()
        .iter()
        .map(|l| &text[l.span().start..l.span().end])
        .collect();
    assert_eq!(spans, ["wed", "mon-fri"]);
    assert_eq!(diags.iter().count(), 1);
    // A wrapping range repeats too.
    assert_eq!(
        findings("fri-mon,sun \"UTC\""),
        [(Code::RepeatedDay, "sun".to_string())]
    );
}

#[test]
fn zones_resolve_exactly_as_spelled() {
    assert!(zone("Europe/Berlin").is_some());
    assert!(zone("UTC").is_some());
    assert!(zone("America/Argentina/Buenos_Aires").is_some());
    assert!(zone("europe/berlin").is_none());
    assert!(zone("Nowhere/City").is_none());
}

fn first_diagnostic(window: &str) -> crate::Diagnostic {
    let text = format!("default allow\ndeny night {{\n  when not during {window}\n}}\n");
    let mut s = Sources::new();
    s.add("t.policy", text);
    lint_policy_set(&s)
        .iter()
        .next()
        .expect("a finding")
        .clone()
}
