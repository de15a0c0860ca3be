//! Compiling `during` windows to tests on `context.clock`, the local day
//! and minute the engine supplies for each zone a rule names.
//!
//! `during weekdays 08:00-18:00 "Europe/Berlin"` reads
//! `context.clock["Europe/Berlin"]`, a record `{ day, minute }` (ISO day
//! 1..7, minute of the local day 0..1439). The engine leaves a zone out
//! when it cannot say the local time there; like an unreadable argument
//! that is *unknown*: restrictions fire, allows do not grant.

use super::{Emitter, Tri, context};
use crate::ast::During;
use crate::cedar::{BinOp, CExpr};

impl Emitter {
    pub(super) fn during(&mut self, d: &During) -> Tri {
        let zone = d.zone.node.as_str();
        self.clock_zones.insert(zone.to_string());
        self.rule_zones.insert(zone.to_string());
        let clock = context().attr("clock");
        let known = clock.clone().has(zone);
        let local = clock.attr(zone);
        let days = d.days.as_ref().map(|d| d.node.iso_days());
        let inside = window(
            local.clone().attr("day"),
            local.attr("minute"),
            days.as_deref(),
            d.hours.as_ref().map(|h| h.node),
        );
        // `has` first: Cedar's validator credits a guard through `&&` only.
        let t = CExpr::and(vec![known.clone(), inside]);
        Tri::with_unknown(t, CExpr::not(known))
    }
}

/// Whether the local `day` and `minute` are inside the window: on one of
/// `days` (every day for `None`) from `hours.0` (inclusive) until
/// `hours.1` (exclusive). A window whose end is not after its start runs
/// past midnight: it starts on one of `days` and goes on into the next
/// day, so its early part is on the day after one of `days`.
fn window(day: CExpr, minute: CExpr, days: Option<&[u8]>, hours: Option<(u16, u16)>) -> CExpr {
    let on = |days: Option<&[u8]>| match days {
        None => CExpr::Bool(true),
        Some(days) => day_in(day.clone(), days),
    };
    match hours {
        None => on(days),
        Some((from, to)) if from < to => CExpr::and(vec![
            on(days),
            from_minute(minute.clone(), from),
            until_minute(minute, to),
        ]),
        Some((from, to)) => {
            let next: Option<Vec<u8>> = days.map(|d| {
                let mut n: Vec<u8> = d.iter().map(|d| d % 7 + 1).collect();
                n.sort_unstable();
                n
            });
            CExpr::or(vec![
                CExpr::and(vec![on(days), from_minute(minute.clone(), from)]),
                CExpr::and(vec![on(next.as_deref()), until_minute(minute, to)]),
            ])
        }
    }
}

fn from_minute(minute: CExpr, from: u16) -> CExpr {
    if from == 0 {
        CExpr::Bool(true)
    } else {
        CExpr::bin(BinOp::Ge, minute, CExpr::Long(i64::from(from)))
    }
}

fn until_minute(minute: CExpr, to: u16) -> CExpr {
    if to >= 1440 {
        CExpr::Bool(true)
    } else if to == 0 {
        CExpr::Bool(false)
    } else {
        CExpr::bin(BinOp::Lt, minute, CExpr::Long(i64::from(to)))
    }
}

/// `day` is one of `days` (sorted ISO numbers), written as ranges of
/// consecutive days: `weekdays` is `day <= 5`, `sat,sun,mon` is
/// `day == 1 || day >= 6`.
fn day_in(day: CExpr, days: &[u8]) -> CExpr {
    let mut runs: Vec<(u8, u8)> = Vec::new();
    for &d in days {
        match runs.last_mut() {
            Some((_, end)) if *end + 1 == d => *end = d,
            _ => runs.push((d, d)),
        }
    }
    CExpr::or(
        runs.into_iter()
            .map(|(a, b)| match (a, b) {
                (1, 7) => CExpr::Bool(true),
                (a, b) if a == b => CExpr::bin(BinOp::Eq, day.clone(), CExpr::Long(i64::from(a))),
                (1, b) => CExpr::bin(BinOp::Le, day.clone(), CExpr::Long(i64::from(b))),
                (a, 7) => CExpr::bin(BinOp::Ge, day.clone(), CExpr::Long(i64::from(a))),
                (a, b) => CExpr::and(vec![
                    CExpr::bin(BinOp::Ge, day.clone(), CExpr::Long(i64::from(a))),
                    CExpr::bin(BinOp::Le, day.clone(), CExpr::Long(i64::from(b))),
                ]),
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests;
