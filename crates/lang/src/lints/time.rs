//! The findings on `during` windows: times that are not times of day,
//! empty windows, zones the zone database does not know, days named twice.

use crate::diagnostic::{Code, Diagnostic};
use crate::source::Span;

pub(crate) fn invalid_time(at: Span, written: &str) -> Diagnostic {
    Diagnostic::new(
        Code::InvalidTimeWindow,
        format!("`{written}` is not a time of day"),
    )
    .with_label(at, "not a time of day")
    .with_help("times run from `00:00` to `23:59` (hours 00 to 23, minutes 00 to 59); `24:00` may end a window, meaning midnight at its end")
}

pub(crate) fn window_starts_at_end_of_day(at: Span) -> Diagnostic {
    Diagnostic::new(
        Code::InvalidTimeWindow,
        "a window cannot start at `24:00`, the end of the day",
    )
    .with_label(at, "the end of the day")
    .with_help("write `00:00` to start at midnight; `24:00` only ends a window")
}

pub(crate) fn empty_window(at: Span, written: &str) -> Diagnostic {
    Diagnostic::new(
        Code::InvalidTimeWindow,
        format!("the window `{written}` ends when it starts"),
    )
    .with_label(at, "starts and ends at the same time")
    .with_help("for whole days leave the hours out (`during mon-fri \"UTC\"`) or write `00:00-24:00`; a window past midnight ends before it starts (`22:00-06:00`)")
}

/// `known` is every zone name the database has; the help suggests the
/// closest (a name differing only in case first).
pub(crate) fn unknown_time_zone<'k>(
    at: Span,
    name: &str,
    known: impl Iterator<Item = &'k str>,
) -> Diagnostic {
    let lower = name.to_ascii_lowercase();
    // A typo or two in a long name; short names are too alike to guess.
    let allowed = (name.len() / 4).clamp(1, 3);
    let suggestion = known
        .map(|k| (super::edit_distance(&lower, &k.to_ascii_lowercase()), k))
        .filter(|(d, _)| *d <= allowed)
        .min();
    let help = match suggestion.map(|(_, s)| s) {
        Some(s) => format!("did you mean `{s}`? zones are IANA names, written as the zone database spells them"),
        None => "write an IANA zone name such as `Europe/Berlin`, `America/New_York` or `UTC`, as the zone database spells it".to_string(),
    };
    Diagnostic::new(
        Code::UnknownTimeZone,
        format!("`{name}` is not a time zone the zone database knows"),
    )
    .with_label(at, "unknown time zone")
    .with_help(help)
}

pub(crate) fn repeated_day(again: Span, day: &str, first: Span) -> Diagnostic {
    Diagnostic::new(
        Code::RepeatedDay,
        format!("`{day}` is named twice in this window's days"),
    )
    .with_label(again, format!("`{day}` again"))
    .with_label(first, "already named here")
    .with_help("name each day once; a range such as `mon-fri` already covers the days inside it")
}
