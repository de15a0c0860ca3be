//! JSON arguments to Cedar values, per the contract of the compiled set
//! (`context.args` in `warden_lang::compile`): every argument a rule reads
//! is in `present`, and lands in the record of its JSON type (`str`, `num`,
//! `bool`). A number is a Cedar `decimal` when exactly representable (at
//! most 4 decimals, within range); otherwise it is present but unreadable,
//! which restricting rules treat as a match. `null` is present, of no type,
//! and also listed in `null`: an upstream may read it as "absent" or as a
//! value, so every test on it is unknown (`exists` included). A string read
//! as a path (`under`) lands in `path` in normal form and in `ipath`
//! case-folded ([`warden_lang::paths`]) when it normalises; otherwise it
//! is unknown too.
//!
//! Also the arguments' canonical JSON ([`canonical_json`]), which grants
//! bind to and signed provenance hashes.
//!
//! For `ignoring case`, a string lands in `istr` lowercased with
//! [`str::to_lowercase`] (the literal is lowercased the same way when the
//! policy is compiled). For `length of`, `len` holds a string's characters
//! (Unicode scalar values) or an array's elements; for `size of`, `size`
//! holds a string's UTF-8 bytes or any other value's compact JSON length.
//! `null` has neither (unknown, like every test on it), and a length of
//! anything but a string or an array is unknown.
//!
//! Arguments larger or deeper than [`ArgLimits`] are refused before any
//! work is done on them.

use cedar_policy::RestrictedExpression;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{LazyLock, RwLock};
use warden_lang::ArgType;

/// Bounds on the arguments of one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArgLimits {
    /// Nesting depth of objects and arrays.
    pub max_depth: usize,
    /// Number of JSON values (every object, array, string, number...).
    pub max_nodes: usize,
    /// Total bytes of strings and keys.
    pub max_string_bytes: usize,
}

impl Default for ArgLimits {
    fn default() -> Self {
        ArgLimits {
            max_depth: 32,
            max_nodes: 10_000,
            max_string_bytes: 1 << 20,
        }
    }
}

/// Why arguments were refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArgProblem {
    NotAnObject,
    TooDeep(usize),
    TooManyValues(usize),
    TooLarge(usize),
}

impl std::fmt::Display for ArgProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ArgProblem::NotAnObject => write!(f, "the arguments are not a JSON object"),
            ArgProblem::TooDeep(max) => {
                write!(f, "the arguments are nested deeper than {max} levels")
            }
            ArgProblem::TooManyValues(max) => {
                write!(f, "the arguments hold more than {max} values")
            }
            ArgProblem::TooLarge(max) => {
                write!(f, "the arguments hold more than {max} bytes of text")
            }
        }
    }
}

/// Checks `args` against the limits without recursion (so a hostile depth
/// cannot overflow the stack).
pub fn check_arg_limits(args: &Value, limits: &ArgLimits) -> Result<(), ArgProblem> {
    if !args.is_object() {
        return Err(ArgProblem::NotAnObject);
    }
    let mut stack: Vec<(&Value, usize)> = vec![(args, 1)];
    let (mut nodes, mut bytes) = (0usize, 0usize);
    while let Some((v, depth)) = stack.pop() {
        nodes += 1;
        if nodes > limits.max_nodes {
            return Err(ArgProblem::TooManyValues(limits.max_nodes));
        }
        if depth > limits.max_depth {
            return Err(ArgProblem::TooDeep(limits.max_depth));
        }
        match v {
            Value::String(s) => bytes += s.len(),
            Value::Array(items) => stack.extend(items.iter().map(|i| (i, depth + 1))),
            Value::Object(map) => {
                for (k, item) in map {
                    bytes += k.len();
                    stack.push((item, depth + 1));
                }
            }
            _ => {}
        }
        if bytes > limits.max_string_bytes {
            return Err(ArgProblem::TooLarge(limits.max_string_bytes));
        }
    }
    Ok(())
}

/// What `context.args` holds of one argument a slice reads: every test
/// a policy can make on it reads only these.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Projected<'a> {
    /// In `present` (the pointer resolves).
    pub present: bool,
    /// In `null`.
    pub null: bool,
    /// `path` and the case-folded `ipath`: the string in normal form.
    pub path: Option<(String, String)>,
    /// `istr`: the string lowercased.
    pub istr: Option<String>,
    /// `len`: characters of a string, elements of an array.
    pub len: Option<usize>,
    /// `size`: bytes of a string, compact JSON length of anything else.
    pub size: Option<usize>,
    /// `str`.
    pub str_: Option<&'a str>,
    /// `bool`.
    pub bool_: Option<bool>,
    /// `num`: the `decimal(..)` text, when exactly one.
    pub num: Option<String>,
}

/// The projection of `args` on `fields`, one entry per field, in the
/// fields' order: the exact content of `context.args`, before it becomes
/// Cedar values (the decision memo keys on it, see `crate::memo`).
pub fn projection<'a>(
    args: &'a Value,
    fields: &'a BTreeMap<String, BTreeSet<ArgType>>,
) -> Vec<(&'a str, Projected<'a>)> {
    fields
        .iter()
        .map(|(ptr, types)| (ptr.as_str(), project_one(args.pointer(ptr), types)))
        .collect()
}

fn project_one<'a>(v: Option<&'a Value>, types: &BTreeSet<ArgType>) -> Projected<'a> {
    let mut out = Projected::default();
    let Some(v) = v else { return out };
    out.present = true;
    if v.is_null() {
        out.null = true;
        return out;
    }
    if let Value::String(s) = v
        && types.contains(&ArgType::Path)
        && let Some(normal) = warden_lang::paths::normalize_path(s)
    {
        let folded = warden_lang::paths::fold_case(&normal);
        out.path = Some((normal, folded));
    }
    if types.contains(&ArgType::FoldedStr)
        && let Value::String(s) = v
    {
        out.istr = Some(s.to_lowercase());
    }
    if types.contains(&ArgType::Len) {
        out.len = length_of(v);
    }
    if types.contains(&ArgType::Size) {
        out.size = Some(size_of(v));
    }
    match v {
        Value::String(s) if types.contains(&ArgType::Str) => out.str_ = Some(s),
        Value::Bool(b) if types.contains(&ArgType::Bool) => out.bool_ = Some(*b),
        Value::Number(n) if types.contains(&ArgType::Num) => {
            out.num = decimal_text(&n.to_string());
        }
        _ => {}
    }
    out
}

/// Builds `context.args` for the arguments `fields` names.
pub fn project_args(
    args: &Value,
    fields: &BTreeMap<String, BTreeSet<ArgType>>,
) -> RestrictedExpression {
    args_expr(&projection(args, fields))
}

/// `context.args` of a projection.
pub(crate) fn args_expr(projected: &[(&str, Projected<'_>)]) -> RestrictedExpression {
    let mut str_ = Vec::new();
    let mut num = Vec::new();
    let mut bool_ = Vec::new();
    let mut path = Vec::new();
    let mut ipath = Vec::new();
    let mut istr = Vec::new();
    let mut len = Vec::new();
    let mut size = Vec::new();
    let mut present = Vec::new();
    let mut null = Vec::new();
    let string = |s: &str| RestrictedExpression::new_string(s.to_string());
    for (ptr, p) in projected {
        let ptr = ptr.to_string();
        if p.present {
            present.push(string(&ptr));
        }
        if p.null {
            null.push(string(&ptr));
        }
        if let Some((normal, folded)) = &p.path {
            path.push((ptr.clone(), string(normal)));
            ipath.push((ptr.clone(), string(folded)));
        }
        if let Some(s) = &p.istr {
            istr.push((ptr.clone(), string(s)));
        }
        if let Some(n) = p.len {
            len.push((ptr.clone(), long(n)));
        }
        if let Some(n) = p.size {
            size.push((ptr.clone(), long(n)));
        }
        if let Some(s) = p.str_ {
            str_.push((ptr.clone(), string(s)));
        }
        if let Some(b) = p.bool_ {
            bool_.push((ptr.clone(), RestrictedExpression::new_bool(b)));
        }
        if let Some(d) = &p.num {
            num.push((ptr, decimal_expr(d.clone())));
        }
    }
    let record = |fields: Vec<(String, RestrictedExpression)>| {
        RestrictedExpression::new_record(fields).expect("pointers are unique map keys")
    };
    record(vec![
        ("str".to_string(), record(str_)),
        ("num".to_string(), record(num)),
        ("bool".to_string(), record(bool_)),
        ("path".to_string(), record(path)),
        (ArgType::FOLDED_PATH_RECORD.to_string(), record(ipath)),
        (ArgType::FoldedStr.record().to_string(), record(istr)),
        (ArgType::Len.record().to_string(), record(len)),
        (ArgType::Size.record().to_string(), record(size)),
        (
            "present".to_string(),
            RestrictedExpression::new_set(present),
        ),
        ("null".to_string(), RestrictedExpression::new_set(null)),
    ])
}

fn long(n: usize) -> RestrictedExpression {
    RestrictedExpression::new_long(i64::try_from(n).unwrap_or(i64::MAX))
}

/// `length of`: a string's characters (Unicode scalar values), an
/// array's elements; `None` (unknown) for any other value.
pub(crate) fn length_of(v: &Value) -> Option<usize> {
    match v {
        Value::String(s) => Some(s.chars().count()),
        Value::Array(items) => Some(items.len()),
        _ => None,
    }
}

/// `size of`: a string's UTF-8 bytes, any other value's compact JSON
/// text length (counted, not built). Callers leave out `null`, which
/// is unknown to every test.
pub(crate) fn size_of(v: &Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    match v {
        Value::String(s) => s.len(),
        other => {
            let mut count = Count(0);
            // Writing a `Value` to a sink that never fails cannot fail.
            let _ = serde_json::to_writer(&mut count, other);
            count.0
        }
    }
}

/// Most decimal expressions [`decimal_expr`] keeps.
const MAX_CACHED_DECIMALS: usize = 4096;

static DECIMALS: LazyLock<RwLock<HashMap<String, RestrictedExpression>>> =
    LazyLock::new(Default::default);

/// `decimal("<text>")`. `RestrictedExpression::new_decimal` runs Cedar's
/// parser on the name `decimal` every time (about a fifth of a decision
/// before this cache), so expressions are kept per text, up to a bound.
fn decimal_expr(text: String) -> RestrictedExpression {
    if let Ok(cache) = DECIMALS.read()
        && let Some(e) = cache.get(&text)
    {
        return e.clone();
    }
    let e = RestrictedExpression::new_decimal(text.clone());
    if let Ok(mut cache) = DECIMALS.write() {
        if cache.len() >= MAX_CACHED_DECIMALS {
            cache.clear();
        }
        cache.insert(text, e.clone());
    }
    e
}

/// Cedar's decimal range, in units of 10^-4.
const DECIMAL_MAX_SCALED: i128 = i64::MAX as i128;

/// The text of `decimal(..)` for a JSON number, when exactly representable:
/// at most 4 decimal places and within decimal's range. JSON's exponent
/// form (`1e3`, `2.5E-2`) is handled exactly.
pub fn decimal_text(json_number: &str) -> Option<String> {
    let (negative, rest) = match json_number.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, json_number),
    };
    let (mantissa, exponent) = match rest.find(['e', 'E']) {
        Some(i) => (&rest[..i], rest[i + 1..].parse::<i32>().ok()?),
        None => (rest, 0),
    };
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int_part.is_empty()
        || !int_part.bytes().all(|b| b.is_ascii_digit())
        || !frac_part.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    // value = digits * 10^(exponent - frac_len); we need it in 10^-4 units.
    let digits = format!("{int_part}{frac_part}");
    let digits = digits.trim_start_matches('0');
    let shift = exponent
        .checked_sub(frac_part.len() as i32)?
        .checked_add(4)?;
    let scaled: i128 = if digits.is_empty() {
        0
    } else if shift >= 0 {
        if digits.len() as i32 + shift > 20 {
            return None;
        }
        let base: i128 = digits.parse().ok()?;
        base.checked_mul(10i128.checked_pow(shift as u32)?)?
    } else {
        let cut = (-shift) as usize;
        if cut >= digits.len() {
            // All significant digits fall below 10^-4.
            return None;
        }
        let (keep, dropped) = digits.split_at(digits.len() - cut);
        if dropped.bytes().any(|b| b != b'0') || keep.len() > 20 {
            return None;
        }
        keep.parse().ok()?
    };
    if scaled > DECIMAL_MAX_SCALED {
        return None;
    }
    let sign = if negative && scaled != 0 { "-" } else { "" };
    Some(format!("{sign}{}.{:04}", scaled / 10_000, scaled % 10_000))
}

/// The canonical JSON of a value: object keys sorted (by their UTF-8
/// bytes), no whitespace, strings and numbers as serde_json writes them.
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_canonical(&map[k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(v, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn decimals_are_exact_or_refused() {
        assert_eq!(decimal_text("3").as_deref(), Some("3.0000"));
        assert_eq!(decimal_text("-2.5").as_deref(), Some("-2.5000"));
        assert_eq!(decimal_text("0.0001").as_deref(), Some("0.0001"));
        assert_eq!(decimal_text("1e3").as_deref(), Some("1000.0000"));
        assert_eq!(decimal_text("2.5E-2").as_deref(), Some("0.0250"));
        assert_eq!(decimal_text("1.00000").as_deref(), Some("1.0000"));
        assert_eq!(
            decimal_text("0.00001"),
            None,
            "a fifth decimal is not exact"
        );
        assert_eq!(decimal_text("1e300"), None);
        assert_eq!(
            decimal_text("922337203685477.5807").as_deref(),
            Some("922337203685477.5807")
        );
        assert_eq!(decimal_text("922337203685477.5808"), None);
        assert_eq!(decimal_text("-0").as_deref(), Some("0.0000"));
    }

    #[test]
    fn lengths_count_characters_and_elements_sizes_count_bytes() {
        assert_eq!(length_of(&json!("héllo")), Some(5));
        assert_eq!(length_of(&json!([1, [2, 3], "x"])), Some(3));
        assert_eq!(length_of(&json!(12)), None);
        assert_eq!(length_of(&json!({"a": 1})), None);
        assert_eq!(size_of(&json!("héllo")), 6);
        assert_eq!(size_of(&json!({"a": [1, 2]})), r#"{"a":[1,2]}"#.len());
        assert_eq!(size_of(&json!(1.5)), 3);
        assert_eq!(size_of(&json!(true)), 4);
    }

    #[test]
    fn the_folded_length_and_size_records_hold_what_rules_read_that_way() {
        let fields: BTreeMap<String, BTreeSet<ArgType>> = [
            ("/sql", vec![ArgType::FoldedStr]),
            ("/ids", vec![ArgType::Len, ArgType::Size]),
            ("/n", vec![ArgType::Len, ArgType::Size, ArgType::FoldedStr]),
            ("/none", vec![ArgType::Size]),
        ]
        .into_iter()
        .map(|(p, t)| (p.to_string(), t.into_iter().collect()))
        .collect();
        let args = json!({"sql": "DROP Table", "ids": ["a", "b"], "n": 7, "none": null});
        let e = project_args(&args, &fields);
        let text = format!("{e:?}");
        let v =
            cedar_policy::Context::from_pairs([("args".to_string(), e)]).expect("a valid context");
        let json = v.to_json_value().expect("json");
        let a = &json["args"];
        assert_eq!(a["istr"], json!({"/sql": "drop table"}), "{text}");
        assert_eq!(a["len"], json!({"/ids": 2}));
        assert_eq!(a["size"], json!({"/ids": 9, "/n": 1}), "null has no size");
    }

    #[test]
    fn limits_refuse_deep_wide_and_large_arguments() {
        let limits = ArgLimits {
            max_depth: 3,
            max_nodes: 10,
            max_string_bytes: 8,
        };
        assert!(check_arg_limits(&json!({"a": {"b": 1}}), &limits).is_ok());
        assert_eq!(
            check_arg_limits(&json!({"a": {"b": {"c": 1}}}), &limits),
            Err(ArgProblem::TooDeep(3))
        );
        assert_eq!(
            check_arg_limits(&json!({"a": [1,2,3,4,5,6,7,8,9,10]}), &limits),
            Err(ArgProblem::TooManyValues(10))
        );
        assert_eq!(
            check_arg_limits(&json!({"a": "123456789"}), &limits),
            Err(ArgProblem::TooLarge(8))
        );
        assert_eq!(
            check_arg_limits(&json!([1]), &limits),
            Err(ArgProblem::NotAnObject)
        );
        // Deep nesting is refused without recursing.
        let mut deep = json!(1);
        for _ in 0..2_000 {
            deep = json!([deep]);
        }
        let deep = json!({ "x": deep });
        assert_eq!(
            check_arg_limits(&deep, &ArgLimits::default()),
            Err(ArgProblem::TooDeep(32))
        );
    }
}
