//! Reading toml's spanned document ([`toml::de::DeTable`]) into typed
//! values without stopping at the first mistake: every getter records a
//! [`Problem`] (with the value's span) for a wrong type, a bad duration or
//! an unset `${VAR}` and returns `None`, so one pass over the file reports
//! everything wrong with it. Unknown keys are found per table against the
//! keys it knows, with a "did you mean" for close spellings.
//!
//! serde's derive stops at the first error and loses spans of values it
//! accepted, which is why the file is walked by hand.

use super::env::expand;
use super::error::Problem;
use std::ops::{Range, RangeInclusive};
use std::time::Duration;
use toml::Spanned;
use toml::de::{DeString, DeTable, DeValue};

/// The problems found so far and how `${VAR}` is looked up.
pub(super) struct Cx<'e> {
    env: &'e dyn Fn(&str) -> Option<String>,
    /// The file's text, for messages that name another line.
    pub(super) text: &'e str,
    pub(super) problems: Vec<Problem>,
}

impl<'e> Cx<'e> {
    pub(super) fn new(env: &'e dyn Fn(&str) -> Option<String>, text: &'e str) -> Self {
        Cx {
            env,
            text,
            problems: Vec::new(),
        }
    }

    /// The 1-based line `offset` is on.
    pub(super) fn line_of(&self, offset: usize) -> usize {
        let mut p = Problem::error(offset..offset, "", "");
        p.locate(self.text);
        p.line
    }

    pub(super) fn push(&mut self, p: Problem) {
        self.problems.push(p);
    }
}

/// A string value after `${VAR}` expansion, with the span of the value as
/// written (quotes included).
#[derive(Debug, Clone)]
pub(super) struct Str {
    pub(super) value: String,
    pub(super) span: Range<usize>,
}

/// One table of the file and how messages name it.
#[derive(Clone, Copy)]
pub(super) struct Table<'a, 'i> {
    entries: &'a DeTable<'i>,
    pub(super) span: (usize, usize),
    /// E.g. `the top level`, `[limits]`, `this [[server]]`.
    pub(super) name: &'static str,
}

/// Where a key that is unknown in one table belongs instead, for help.
pub(super) type Elsewhere = fn(&str) -> Option<&'static str>;

impl<'a, 'i> Table<'a, 'i> {
    pub(super) fn root(doc: &'a Spanned<DeTable<'i>>) -> Self {
        let span = doc.span();
        Table {
            entries: doc.get_ref(),
            span: (span.start, span.end),
            name: "the top level",
        }
    }

    /// An empty span at the table's start: where a missing key is reported.
    pub(super) fn start(&self) -> Range<usize> {
        self.span.0..self.span.0
    }

    /// Reports every key not in `known`.
    pub(super) fn check_keys(&self, cx: &mut Cx<'_>, known: &[&str], elsewhere: Elsewhere) {
        for (key, _) in self.entries.iter() {
            let k: &str = key.get_ref();
            if known.contains(&k) {
                continue;
            }
            let mut p = Problem::error(
                key.span(),
                format!("unknown key `{k}` in {}", self.name),
                "unknown key",
            );
            p.help = Some(match closest(k, known) {
                Some(c) => format!("did you mean `{c}`?"),
                None => match elsewhere(k) {
                    Some(place) => format!("`{k}` belongs in {place}"),
                    None => format!(
                        "{} knows {}",
                        self.name,
                        known
                            .iter()
                            .map(|k| format!("`{k}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                },
            });
            cx.push(p);
        }
    }

    fn entry(&self, key: &str) -> Option<(&'a Spanned<DeString<'i>>, &'a Spanned<DeValue<'i>>)> {
        self.entries.get_key_value(key)
    }

    /// The TOML type of `key`'s value (`string`, `integer`, ...).
    pub(super) fn kind(&self, key: &str) -> Option<&'static str> {
        self.entry(key).map(|(_, v)| v.get_ref().type_str())
    }

    pub(super) fn has(&self, key: &str) -> bool {
        self.entry(key).is_some()
    }

    /// The span of `key` itself (for "this key is not allowed here").
    pub(super) fn key_span(&self, key: &str) -> Option<Range<usize>> {
        self.entry(key).map(|(k, _)| k.span())
    }

    /// The span of `key`'s value.
    pub(super) fn value_span(&self, key: &str) -> Option<Range<usize>> {
        self.entry(key).map(|(_, v)| v.span())
    }

    /// A required key: reports it missing (at the table's start) when absent.
    pub(super) fn require(&self, cx: &mut Cx<'_>, key: &str, help: &str) -> bool {
        if self.has(key) {
            return true;
        }
        cx.push(
            Problem::error(
                self.start(),
                format!("{} has no `{key}`", self.name),
                format!("`{key}` is missing"),
            )
            .with_help(help),
        );
        false
    }

    pub(super) fn string(&self, cx: &mut Cx<'_>, key: &str) -> Option<Str> {
        let (_, v) = self.entry(key)?;
        string_value(cx, key, v)
    }

    /// A string that must not be empty (a path, a name).
    pub(super) fn nonempty(&self, cx: &mut Cx<'_>, key: &str) -> Option<Str> {
        let s = self.string(cx, key)?;
        if s.value.is_empty() {
            cx.push(Problem::error(s.span, format!("`{key}` is empty"), "empty"));
            return None;
        }
        Some(s)
    }

    pub(super) fn strings(&self, cx: &mut Cx<'_>, key: &str) -> Option<Vec<Str>> {
        let (_, v) = self.entry(key)?;
        let DeValue::Array(items) = v.get_ref() else {
            cx.push(wrong_type(
                key,
                v,
                "an array of strings",
                &format!("e.g. `{key} = [\"a\", \"b\"]`"),
            ));
            return None;
        };
        let mut out = Vec::with_capacity(items.len());
        let mut ok = true;
        for item in items.iter() {
            match string_value(cx, key, item) {
                Some(s) => out.push(s),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    pub(super) fn boolean(&self, cx: &mut Cx<'_>, key: &str) -> Option<bool> {
        let (_, v) = self.entry(key)?;
        match v.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            _ => {
                cx.push(wrong_type(
                    key,
                    v,
                    "a boolean",
                    &format!("`{key} = true` or `{key} = false`, without quotes"),
                ));
                None
            }
        }
    }

    pub(super) fn integer(
        &self,
        cx: &mut Cx<'_>,
        key: &str,
        range: RangeInclusive<u64>,
    ) -> Option<u64> {
        let (_, v) = self.entry(key)?;
        let DeValue::Integer(i) = v.get_ref() else {
            cx.push(wrong_type(
                key,
                v,
                "an integer",
                &format!(
                    "a whole number without quotes, e.g. `{key} = {}`",
                    range.end()
                ),
            ));
            return None;
        };
        let n = u64::from_str_radix(i.as_str(), i.radix()).ok();
        match n {
            Some(n) if range.contains(&n) => Some(n),
            _ => {
                cx.push(
                    Problem::error(v.span(), format!("`{key}` is out of range"), "out of range")
                        .with_help(format!(
                            "give a number from {} to {}",
                            range.start(),
                            range.end()
                        )),
                );
                None
            }
        }
    }

    /// A number from 0 to 1 (`0.25`, `1`, `0`).
    pub(super) fn fraction(&self, cx: &mut Cx<'_>, key: &str) -> Option<f64> {
        let (_, v) = self.entry(key)?;
        let f = match v.get_ref() {
            DeValue::Float(f) => f.as_str().parse::<f64>().ok(),
            DeValue::Integer(i) => i.as_str().parse::<f64>().ok(),
            _ => {
                cx.push(wrong_type(
                    key,
                    v,
                    "a number",
                    &format!("a number from 0 to 1 without quotes, e.g. `{key} = 0.25`"),
                ));
                return None;
            }
        };
        match f {
            Some(f) if (0.0..=1.0).contains(&f) => Some(f),
            _ => {
                cx.push(
                    Problem::error(v.span(), format!("`{key}` is out of range"), "out of range")
                        .with_help("give a number from 0 to 1 (the share of traces kept)"),
                );
                None
            }
        }
    }

    /// A duration string (`"500ms"`, `"30s"`, `"10m"`, `"1h"`), at most `max`.
    pub(super) fn duration(&self, cx: &mut Cx<'_>, key: &str, max: Duration) -> Option<Duration> {
        let (_, v) = self.entry(key)?;
        if !matches!(v.get_ref(), DeValue::String(_)) {
            cx.push(wrong_type(key, v, "a duration string", &duration_help(key)));
            return None;
        }
        let s = string_value(cx, key, v)?;
        match humantime::parse_duration(s.value.trim()) {
            Ok(d) if d <= max => Some(d),
            Ok(_) => {
                cx.push(
                    Problem::error(s.span, format!("`{key}` is too long"), "too long").with_help(
                        format!("give at most `{}`", humantime::format_duration(max)),
                    ),
                );
                None
            }
            Err(e) => {
                cx.push(
                    Problem::error(
                        s.span,
                        format!("`{key}` is not a duration: {e}"),
                        "not a duration",
                    )
                    .with_help(duration_help(key)),
                );
                None
            }
        }
    }

    /// A sub-table (`[key]` or an inline table).
    pub(super) fn table(
        &self,
        cx: &mut Cx<'_>,
        key: &str,
        name: &'static str,
    ) -> Option<Table<'a, 'i>> {
        let (_, v) = self.entry(key)?;
        match v.get_ref() {
            DeValue::Table(t) => Some(Table {
                entries: t,
                span: (v.span().start, v.span().end),
                name,
            }),
            _ => {
                cx.push(wrong_type(
                    key,
                    v,
                    "a table",
                    &format!("write `[{key}]` on a line of its own, with its keys below it"),
                ));
                None
            }
        }
    }

    /// An array of tables (`[[key]]` sections).
    pub(super) fn tables(
        &self,
        cx: &mut Cx<'_>,
        key: &str,
        name: &'static str,
    ) -> Option<Vec<Table<'a, 'i>>> {
        let (_, v) = self.entry(key)?;
        let help = format!("write one `[[{key}]]` section (two brackets) per entry");
        let DeValue::Array(items) = v.get_ref() else {
            cx.push(wrong_type(key, v, "an array of tables", &help));
            return None;
        };
        let mut out = Vec::with_capacity(items.len());
        for item in items.iter() {
            match item.get_ref() {
                // toml spans a `[[key]]` section by its header only; the
                // table runs to the end of its last value.
                DeValue::Table(t) => out.push(Table {
                    entries: t,
                    span: (
                        item.span().start,
                        t.values()
                            .map(|v| v.span().end)
                            .fold(item.span().end, usize::max),
                    ),
                    name,
                }),
                _ => cx.push(wrong_type(key, item, "a table", &help)),
            }
        }
        Some(out)
    }

    /// A table of strings (`env = { A = "x" }`): each key with its span
    /// and each expanded value.
    pub(super) fn string_map(&self, cx: &mut Cx<'_>, key: &str) -> Option<Vec<(Str, Str)>> {
        let (_, v) = self.entry(key)?;
        let DeValue::Table(t) = v.get_ref() else {
            cx.push(wrong_type(
                key,
                v,
                "a table of strings",
                &format!("e.g. `{key} = {{ NAME = \"value\" }}`"),
            ));
            return None;
        };
        let mut out = Vec::with_capacity(t.len());
        let mut ok = true;
        for (k, item) in t.iter() {
            let name = Str {
                value: k.get_ref().to_string(),
                span: k.span(),
            };
            match string_value(cx, key, item) {
                Some(s) => out.push((name, s)),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }
}

fn duration_help(key: &str) -> String {
    format!(
        "a duration is a string with a unit, e.g. `{key} = \"30s\"`, `\"500ms\"`, `\"10m\"`, `\"1h\"`"
    )
}

/// A string value, `${VAR}`-expanded.
fn string_value(cx: &mut Cx<'_>, key: &str, v: &Spanned<DeValue<'_>>) -> Option<Str> {
    let DeValue::String(s) = v.get_ref() else {
        cx.push(wrong_type(
            key,
            v,
            "a string",
            &format!("quote it: `{key} = \"...\"`"),
        ));
        return None;
    };
    match expand(s, cx.env) {
        Ok(value) => Some(Str {
            value,
            span: v.span(),
        }),
        Err(e) => {
            cx.push(Problem::error(v.span(), e.message, "here").with_help(e.help));
            None
        }
    }
}

fn wrong_type(key: &str, v: &Spanned<DeValue<'_>>, expected: &str, help: &str) -> Problem {
    let found = v.get_ref().type_str();
    let article = if found.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    Problem::error(
        v.span(),
        format!("`{key}` must be {expected}, not {article} {found}"),
        format!("{article} {found}"),
    )
    .with_help(help)
}

/// The known key closest to a misspelt one, if one is close enough to be
/// what was meant (a case difference, or a couple of typos in a longer key).
pub(super) fn closest<'k>(key: &str, known: &[&'k str]) -> Option<&'k str> {
    let lower = key.to_ascii_lowercase().replace('-', "_");
    known
        .iter()
        .map(|k| (strsim::damerau_levenshtein(&lower, k), *k))
        .filter(|(d, k)| *d <= (k.len() / 4).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}
