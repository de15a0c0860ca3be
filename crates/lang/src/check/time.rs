//! The checks of `during` windows: real times, a time zone the zone
//! database knows, days named once. Also [`zone`], the one lookup of a
//! zone name that both these checks and the engine use, so that a zone
//! that checks clean is a zone the engine can resolve.

use crate::ast::*;
use crate::diagnostic::Diagnostic;
use crate::lints;
use crate::source::{Sources, Span};
use jiff::tz::{TimeZone, TimeZoneDatabase};

/// The zone `name`, spelled exactly as the IANA zone database bundled into
/// warden spells it (`Europe/Berlin`, `UTC`). The bundled copy, not the
/// machine's `/usr/share/zoneinfo`: `warden lint` on a CI machine and the
/// engine on a server then know the same zones with the same rules.
pub fn zone(name: &str) -> Option<TimeZone> {
    let tz = TimeZoneDatabase::bundled().get(name).ok()?;
    // The lookup ignores case; one spelling per zone keeps `context.clock`
    // keys and the schema unambiguous.
    (tz.iana_name() == Some(name) && !tz.is_unknown()).then_some(tz)
}

/// Checks every `during` window of a condition.
pub(super) fn check_windows(expr: &Expr, sources: &Sources, diags: &mut Vec<Diagnostic>) {
    match expr {
        Expr::Or(v, _) | Expr::And(v, _) => v.iter().for_each(|e| check_windows(e, sources, diags)),
        Expr::Not(e, _) => check_windows(e, sources, diags),
        Expr::Atom(Atom::During(d), _) => check_during(d, sources, diags),
        Expr::Atom(..) => {}
    }
}

fn check_during(d: &During, sources: &Sources, diags: &mut Vec<Diagnostic>) {
    if let Some(hours) = &d.hours {
        check_hours(hours.span, sources, diags);
    }
    if let Some(days) = &d.days
        && let Days::List(ranges) = &days.node
    {
        check_days(ranges, days.span, sources, diags);
    }
    if zone(&d.zone.node).is_none() {
        let db = TimeZoneDatabase::bundled();
        let names: Vec<String> = db.available().map(|n| n.as_str().to_string()).collect();
        diags.push(lints::unknown_time_zone(
            d.zone.span,
            &d.zone.node,
            names.iter().map(String::as_str),
        ));
    }
}

/// A time as written, `HH:MM`, with its span.
struct Written<'s> {
    text: &'s str,
    span: Span,
    hour: u16,
    minute: u16,
}

/// The parser keeps only minutes since midnight, in which `23:60` and
/// `24:00` look alike, so the times are read again from the source.
fn check_hours<'s>(span: Span, sources: &'s Sources, diags: &mut Vec<Diagnostic>) {
    let text = &sources.get(span.file).text()[span.start..span.end];
    // The grammar's `hours` is `DD:DD-DD:DD` with nothing between.
    let Some((from, to)) = text.split_once('-') else {
        return;
    };
    let read = |s: &'s str, at: usize| -> Option<Written<'s>> {
        let (h, m) = s.split_once(':')?;
        Some(Written {
            text: s,
            span: Span::new(span.file, span.start + at, span.start + at + s.len()),
            hour: h.parse().ok()?,
            minute: m.parse().ok()?,
        })
    };
    let (Some(from), Some(to)) = (read(from, 0), read(to, from.len() + 1)) else {
        return;
    };
    let mut valid = true;
    for (t, is_end) in [(&from, false), (&to, true)] {
        if t.hour == 24 && t.minute == 0 {
            if !is_end {
                diags.push(lints::window_starts_at_end_of_day(t.span));
                valid = false;
            }
        } else if t.hour > 23 || t.minute > 59 {
            diags.push(lints::invalid_time(t.span, t.text));
            valid = false;
        }
    }
    if valid && from.hour == to.hour && from.minute == to.minute {
        diags.push(lints::empty_window(span, text));
    }
}

/// Warns on a day named twice, at the range that names it again. The
/// ranges' own spans are found in the source text of the day list, in
/// order; should that fail, the list's span stands for each.
fn check_days(ranges: &[DayRange], span: Span, sources: &Sources, diags: &mut Vec<Diagnostic>) {
    let text = &sources.get(span.file).text()[span.start..span.end];
    let mut spans: Vec<Span> = Vec::new();
    let mut offset = 0;
    for piece in text.split(',') {
        let trimmed = piece.trim_start();
        let start = offset + piece.len() - trimmed.len();
        let word = trimmed.trim_end();
        spans.push(Span::new(
            span.file,
            span.start + start,
            span.start + start + word.len(),
        ));
        offset += piece.len() + 1;
    }
    if spans.len() != ranges.len() {
        spans = vec![span; ranges.len()];
    }
    let mut first: [Option<Span>; 7] = [None; 7];
    for (range, at) in ranges.iter().zip(spans) {
        let days = Days::List(vec![*range]).iso_days();
        if let Some(&again) = days.iter().find(|d| first[usize::from(**d - 1)].is_some()) {
            let name = Weekday::ALL[usize::from(again - 1)].keyword();
            let earlier = first[usize::from(again - 1)].unwrap_or(span);
            diags.push(lints::repeated_day(at, name, earlier));
        }
        for d in days {
            first[usize::from(d - 1)].get_or_insert(at);
        }
    }
}

#[cfg(test)]
mod tests;
