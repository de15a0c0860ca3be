//! `during` windows: [`During`] and its days, and whether a condition is
//! bound to the time of day ([`Expr::is_time_bound`]).

use super::{Atom, Expr, Spanned};
use crate::source::Span;

/// `during weekdays 08:00-18:00 "Europe/Berlin"`.
#[derive(Debug, Clone, PartialEq)]
pub struct During {
    /// Which days; `None` means every day.
    pub days: Option<Spanned<Days>>,
    /// From (inclusive) and until (exclusive), as minutes since midnight
    /// (`24:00` is 1440); `None` means the whole day. A window whose end
    /// is not after its start runs past midnight into the next day.
    pub hours: Option<Spanned<(u16, u16)>>,
    /// An IANA time zone name, checked against the zone database.
    pub zone: Spanned<String>,
    pub span: Span,
}

impl During {
    /// Whether the window holds at some times and not at others: one on
    /// every day, all day, always holds.
    pub fn varies(&self) -> bool {
        let every_day = self
            .days
            .as_ref()
            .is_none_or(|d| d.node.iso_days().len() == 7);
        let all_day = self
            .hours
            .as_ref()
            .is_none_or(|h| h.node.0 == 0 && h.node.1 >= 1440);
        !(every_day && all_day)
    }
}

impl Expr {
    /// Whether a call this condition holds for can fail it at another
    /// time with nothing else changed: the condition, or a part of its
    /// top-level `and`, is `during W` or `not during W` for a window that
    /// varies. A denial by such a rule may be lifted by time alone.
    pub fn is_time_bound(&self) -> bool {
        fn timed(e: &Expr) -> bool {
            match e {
                Expr::Atom(Atom::During(d), _) => d.varies(),
                Expr::Not(inner, _) => {
                    matches!(&**inner, Expr::Atom(Atom::During(d), _) if d.varies())
                }
                _ => false,
            }
        }
        match self {
            Expr::And(parts, _) => parts.iter().any(timed),
            e => timed(e),
        }
    }
}

/// The days of a `during` window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Days {
    /// `weekdays`: Monday to Friday.
    Weekdays,
    /// `weekends`: Saturday and Sunday.
    Weekends,
    /// `mon-fri`, `sat,sun`, `mon,wed-fri`: as written, each a day or an
    /// inclusive range (`fri-mon` wraps over the weekend).
    List(Vec<DayRange>),
}

impl Days {
    /// The days as ISO weekday numbers (Monday 1 … Sunday 7), sorted.
    pub fn iso_days(&self) -> Vec<u8> {
        let mut out: Vec<u8> = match self {
            Days::Weekdays => (1..=5).collect(),
            Days::Weekends => vec![6, 7],
            Days::List(ranges) => ranges
                .iter()
                .flat_map(|r| {
                    let (a, b) = (r.from.iso(), r.to.iso());
                    let n = if b >= a { b - a } else { b + 7 - a };
                    (0..=n).map(move |i| (a - 1 + i) % 7 + 1)
                })
                .collect(),
        };
        out.sort_unstable();
        out.dedup();
        out
    }
}

/// `mon` or `mon-fri`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayRange {
    pub from: Weekday,
    pub to: Weekday,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Weekday {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

impl Weekday {
    pub const ALL: [Weekday; 7] = [
        Weekday::Mon,
        Weekday::Tue,
        Weekday::Wed,
        Weekday::Thu,
        Weekday::Fri,
        Weekday::Sat,
        Weekday::Sun,
    ];
    pub fn keyword(self) -> &'static str {
        match self {
            Weekday::Mon => "mon",
            Weekday::Tue => "tue",
            Weekday::Wed => "wed",
            Weekday::Thu => "thu",
            Weekday::Fri => "fri",
            Weekday::Sat => "sat",
            Weekday::Sun => "sun",
        }
    }
    /// ISO number: Monday 1 … Sunday 7.
    pub fn iso(self) -> u8 {
        self as u8 + 1
    }
    pub fn from_keyword(s: &str) -> Option<Weekday> {
        Weekday::ALL.into_iter().find(|d| d.keyword() == s)
    }
}
