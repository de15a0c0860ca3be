//! Quantified tests (`any args.tags == "pii"`, `all args.ids created by
//! agent`): each element of the list tested, three-valued, and the
//! results combined into the `context.each["<id>"] = {t, p}` the compiled
//! policies read (definitely true, possibly true).
//!
//! Per list: absent is false for `any` and `all` alike (t = p = false);
//! present but not an array is unknown (t = false, p = true). Per element
//! the test means what it means on a single argument: a value of a type
//! the test cannot read (a number for `matches`, `null` for anything but
//! `created by agent`) is unknown, `created by agent` on a value that is
//! no id is false. `any`: t = some element t, p = some element p; `all`:
//! t = every element t, p = every element p (an empty list: both true).
//!
//! The work is bounded: the arguments already passed [`ArgLimits`]
//! (`crate::args`), and a list longer than [`MAX_ELEMENTS`] is unknown
//! without being looked at. `created by agent` asks the record store once
//! per record kind, with every element's id.
//!
//! [`ArgLimits`]: crate::args::ArgLimits

use crate::args::{decimal_text, length_of, size_of};
use crate::call::CallContext;
use crate::index::{PolicyBundle, Slice};
use crate::records::{RecordError, RecordStore, id_of};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use warden_lang::compiled::{EachTest, ElementTest, ElementValue, decimal_units};
use warden_lang::paths::{fold_case, is_under, normalize_path};

/// Longest list whose elements are tested; a longer one is unknown.
pub const MAX_ELEMENTS: usize = 10_000;

/// One quantified test's answer: its id in `context.each`, definitely
/// true, possibly true.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EachResult {
    pub id: String,
    pub t: bool,
    pub p: bool,
}

/// The quantified tests of the slice's rules, each once, and whether an
/// enforced rule asks one about `created by agent` (then a record store
/// that cannot answer denies the call).
fn slice_tests<'a>(
    bundle: &'a PolicyBundle,
    slice: &Slice,
) -> (BTreeMap<&'a str, &'a EachTest>, bool) {
    let mut tests = BTreeMap::new();
    let mut created_enforced = false;
    for &i in &slice.rules {
        let rule = &bundle.rules()[i];
        for test in &rule.each_tests {
            tests.insert(test.id.as_str(), test);
            created_enforced |= rule.mode != warden_lang::ast::Mode::Shadow
                && matches!(test.test, ElementTest::CreatedByAgent { .. });
        }
    }
    (tests, created_enforced)
}

/// Every quantified test of the slice, answered for `call`. An error is
/// the record store's, when an enforced rule asks a `created by agent`
/// test; when only shadow rules ask, those tests are left out (unknown)
/// and the others answered.
pub(crate) fn each_results(
    bundle: &PolicyBundle,
    slice: &Slice,
    call: &CallContext,
    records: &dyn RecordStore,
) -> Result<Vec<EachResult>, RecordError> {
    let (tests, created_enforced) = slice_tests(bundle, slice);
    if tests.is_empty() {
        return Ok(Vec::new());
    }
    let created = match created_ids(&tests, call, records) {
        Ok(found) => Some(found),
        Err(e) if created_enforced => return Err(e),
        Err(_) => None,
    };
    let answered = created.is_some();
    let answerable =
        move |test: &EachTest| answered || !matches!(test.test, ElementTest::CreatedByAgent { .. });
    let created = created.unwrap_or_default();
    Ok(tests
        .values()
        .filter(|test| answerable(test))
        .map(|test| {
            let (t, p) = answer(test, &call.arguments, &created);
            EachResult {
                id: test.id.clone(),
                t,
                p,
            }
        })
        .collect())
}

/// The ids among the lists' elements that are agent-created records, per
/// kind: one store lookup per kind.
fn created_ids(
    tests: &BTreeMap<&str, &EachTest>,
    call: &CallContext,
    records: &dyn RecordStore,
) -> Result<BTreeMap<String, HashSet<String>>, RecordError> {
    let mut asked: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for test in tests.values() {
        let ElementTest::CreatedByAgent { kind } = &test.test else {
            continue;
        };
        if let Some(Value::Array(items)) = call.arguments.pointer(&test.pointer)
            && items.len() <= MAX_ELEMENTS
        {
            asked
                .entry(kind.as_str())
                .or_default()
                .extend(items.iter().filter_map(id_of));
        }
    }
    let mut found = BTreeMap::new();
    for (kind, ids) in asked {
        let ids: Vec<String> = ids.into_iter().collect();
        found.insert(
            kind.to_string(),
            records.agent_created(&call.server, kind, &ids)?,
        );
    }
    Ok(found)
}

/// (definitely true, possibly true) of one quantified test.
pub fn answer(
    test: &EachTest,
    args: &Value,
    created: &BTreeMap<String, HashSet<String>>,
) -> (bool, bool) {
    let items = match args.pointer(&test.pointer) {
        None => return (false, false),
        Some(Value::Array(items)) if items.len() <= MAX_ELEMENTS => items,
        Some(_) => return (false, true),
    };
    let no_ids = HashSet::new();
    let ids = match &test.test {
        ElementTest::CreatedByAgent { kind } => created.get(kind).unwrap_or(&no_ids),
        _ => &no_ids,
    };
    let results = items.iter().map(|v| element(&test.test, v, ids));
    if test.all {
        results.fold((true, true), |(t, p), (et, ep)| (t && et, p && ep))
    } else {
        results.fold((false, false), |(t, p), (et, ep)| (t || et, p || ep))
    }
}

/// (definitely true, possibly true) of `test` on one element. `created`
/// holds the agent-created ids of the test's record kind.
pub fn element(test: &ElementTest, v: &Value, created: &HashSet<String>) -> (bool, bool) {
    const UNKNOWN: (bool, bool) = (false, true);
    let definite = |b: bool| (b, b);
    match test {
        ElementTest::CreatedByAgent { .. } => {
            definite(id_of(v).is_some_and(|id| created.contains(&id)))
        }
        ElementTest::Not(inner) => {
            let (t, p) = element(inner, v, created);
            (!p, !t)
        }
        // An upstream may read `null` as absent or as a value.
        _ if v.is_null() => UNKNOWN,
        ElementTest::Measure { size, op, value } => {
            let n = if *size {
                Some(size_of(v))
            } else {
                length_of(v)
            };
            match n.and_then(|n| i64::try_from(n).ok()) {
                Some(n) => definite(op.holds(n, *value)),
                None => UNKNOWN,
            }
        }
        ElementTest::Exists => definite(true),
        ElementTest::Under { prefix } => {
            let Some(normal) = v.as_str().and_then(normalize_path) else {
                return UNKNOWN;
            };
            (
                is_under(&normal, prefix),
                is_under(&fold_case(&normal), &fold_case(prefix)),
            )
        }
        ElementTest::OneOf { values, fold } => match one_of(values, *fold, v) {
            Some(b) => definite(b),
            None => UNKNOWN,
        },
        ElementTest::Number { op, value } => match number_units(v) {
            Some(n) => definite(op.holds(n, *value)),
            None => UNKNOWN,
        },
        ElementTest::Matches { glob, fold } => match v.as_str() {
            Some(s) if *fold => definite(warden_lang::glob::glob_matches(glob, &s.to_lowercase())),
            Some(s) => definite(warden_lang::glob::glob_matches(glob, s)),
            None => UNKNOWN,
        },
    }
}

/// Whether `v` is one of `values` (all of one JSON type); `None` when it
/// is of another type, or a number that is not exactly a decimal.
fn one_of(values: &[ElementValue], fold: bool, v: &Value) -> Option<bool> {
    match (values.first()?, v) {
        (ElementValue::Str(_), Value::String(s)) => {
            let s = if fold { s.to_lowercase() } else { s.clone() };
            Some(values.contains(&ElementValue::Str(s)))
        }
        (ElementValue::Bool(_), Value::Bool(b)) => Some(values.contains(&ElementValue::Bool(*b))),
        (ElementValue::Num(_), Value::Number(_)) => {
            Some(values.contains(&ElementValue::Num(number_units(v)?)))
        }
        _ => None,
    }
}

/// A JSON number in units of 1/10,000, when exactly a Cedar decimal.
fn number_units(v: &Value) -> Option<i64> {
    let Value::Number(n) = v else { return None };
    decimal_units(&decimal_text(&n.to_string())?)
}
