//! Running compiled rules through Cedar's own authorizer with requests
//! built the way the engine builds them (the context contract in
//! `compile.rs`), for `semantics.rs` and `semantics_measures.rs`.

#![allow(dead_code)]

use cedar_policy::{Authorizer, Context, Decision, Entities, EntityUid, Request};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::str::FromStr;
use warden_lang::{ArgType, CompiledPolicySet, Sources, compile_policy_set};

pub fn compile(text: &str) -> CompiledPolicySet {
    let mut s = Sources::new();
    s.add("t.policy", text);
    match compile_policy_set(&s) {
        Ok(out) => out.policy_set,
        Err(d) => panic!(
            "{:?}",
            d.iter()
                .map(|d| d.message().to_string())
                .collect::<Vec<_>>()
        ),
    }
}

/// A tool call as the engine sees it.
pub struct Call {
    pub user: &'static str,
    pub groups: Vec<&'static str>,
    pub tool: &'static str,
    pub server: &'static str,
    pub via_agent: bool,
    pub via_server: Option<&'static str>,
    pub agent: Option<&'static str>,
    pub args: Value,
    pub confirmed: Vec<&'static str>,
    pub counters: Vec<(&'static str, i64)>,
    /// `context.budgets`: rule id and the used-plus-this-call amount, as
    /// decimal text (`"12.5000"`), supplied as a `Long` of 1/10,000 units.
    pub budgets: Vec<(&'static str, &'static str)>,
    /// `context.clock`: zone and (ISO day, minute of the day).
    pub clock: Vec<(&'static str, (u8, u16))>,
    /// `context.each`: test id and (definitely, possibly) true.
    pub each: Vec<(String, (bool, bool))>,
    pub destructive: bool,
}

impl Default for Call {
    fn default() -> Self {
        Call {
            user: "alice",
            groups: vec![],
            tool: "start_run",
            server: "genomics",
            via_agent: true,
            via_server: Some("genomics"),
            agent: Some("claude-code"),
            args: json!({}),
            confirmed: vec![],
            counters: vec![],
            budgets: vec![],
            clock: vec![],
            each: vec![],
            destructive: false,
        }
    }
}

/// Projects JSON arguments into `context.args` per the compiled set's
/// `arg_fields`, as the engine does: a value lands in the record of its JSON
/// type only; numbers become decimals when exactly representable.
pub fn project_args(set: &CompiledPolicySet, args: &Value) -> Value {
    let (mut str_, mut num, mut bool_) = (json!({}), json!({}), json!({}));
    let (mut path, mut ipath) = (json!({}), json!({}));
    let (mut istr, mut len, mut size) = (json!({}), json!({}), json!({}));
    let mut present = BTreeSet::new();
    let mut nulls = BTreeSet::new();
    for (ptr, types) in set.arg_fields() {
        let Some(v) = args.pointer(ptr) else { continue };
        present.insert(ptr.clone());
        if v.is_null() {
            nulls.insert(ptr.clone());
            continue;
        }
        // `ignoring case`, `length of`, `size of` (issue 12): the folded
        // string; characters of a string or elements of a list; bytes of a
        // string's UTF-8 or of any other value's compact JSON.
        if let Value::String(s) = v
            && types.contains(&ArgType::FoldedStr)
        {
            istr[ptr] = json!(s.to_lowercase());
        }
        if types.contains(&ArgType::Len) {
            match v {
                Value::String(s) => len[ptr] = json!(s.chars().count()),
                Value::Array(a) => len[ptr] = json!(a.len()),
                _ => {}
            }
        }
        if types.contains(&ArgType::Size) {
            size[ptr] = json!(match v {
                Value::String(s) => s.len(),
                other => serde_json::to_string(other).expect("json").len(),
            });
        }
        if let Value::String(s) = v
            && types.contains(&ArgType::Path)
            && let Some(normal) = warden_lang::paths::normalize_path(s)
        {
            ipath[ptr] = json!(warden_lang::paths::fold_case(&normal));
            path[ptr] = json!(normal);
        }
        match v {
            Value::String(s) if types.contains(&ArgType::Str) => str_[ptr] = json!(s),
            Value::Bool(b) if types.contains(&ArgType::Bool) => bool_[ptr] = json!(b),
            Value::Number(n) if types.contains(&ArgType::Num) => {
                let text = n.to_string();
                let dec = if text.contains('.') {
                    text
                } else {
                    format!("{text}.0")
                };
                num[ptr] = json!({"__extn": {"fn": "decimal", "arg": dec}});
            }
            _ => {}
        }
    }
    json!({"str": str_, "num": num, "bool": bool_, "path": path, "ipath": ipath,
           "istr": istr, "len": len, "size": size, "present": present, "null": nulls})
}

/// Decides a call against the enforced policies; returns the decision and
/// the ids of the policies behind it.
pub fn decide(set: &CompiledPolicySet, call: &Call) -> (Decision, Vec<String>) {
    let schema = set.schema();
    let action = EntityUid::from_str(r#"Warden::Action::"call_tool""#).unwrap();
    let principal = EntityUid::from_str(&format!("Warden::User::{}", json!(call.user))).unwrap();
    let resource = EntityUid::from_str(&format!(
        "Warden::Tool::{}",
        json!(format!("{}/{}", call.server, call.tool))
    ))
    .unwrap();
    let mut entities = vec![
        json!({
            "uid": {"type": "Warden::User", "id": call.user},
            "attrs": {"name": call.user},
            "parents": call.groups.iter().map(|g| json!({"type": "Warden::Group", "id": g})).collect::<Vec<_>>(),
        }),
        json!({
            "uid": {"type": "Warden::Tool", "id": format!("{}/{}", call.server, call.tool)},
            "attrs": {"name": call.tool, "server": call.server, "read_only": false,
                      "destructive": call.destructive, "idempotent": false, "open_world": true},
            "parents": [],
        }),
    ];
    for g in &call.groups {
        entities
            .push(json!({"uid": {"type": "Warden::Group", "id": g}, "attrs": {}, "parents": []}));
    }
    let entities = Entities::from_json_value(json!(entities), Some(schema)).expect("entities");
    let mut ctx = json!({
        "via_agent": call.via_agent,
        "session": "s1",
        "confirmed": call.confirmed,
        "args": project_args(set, &call.args),
        "counters": call.counters.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
        "verified": {"user": false, "groups": false, "agent": false, "model": false},
        "agent_created": [],
        "labels": [],
        // What the engine supplies for budgets, clocks and quantified tests;
        // what a call leaves out is unknown.
        "budgets": call.budgets.iter().map(|(k, v)| (k.to_string(), json!(warden_lang::amount::parse_units(v).expect("an exact amount")))).collect::<serde_json::Map<_, _>>(),
        "clock": call.clock.iter().map(|(z, (d, m))| (z.to_string(), json!({"day": d, "minute": m}))).collect::<serde_json::Map<_, _>>(),
        "each": call.each.iter().map(|(k, (t, p))| (k.clone(), json!({"t": t, "p": p}))).collect::<serde_json::Map<_, _>>(),
    });
    if let Some(v) = call.via_server {
        ctx["via_server"] = json!(v);
    }
    if let Some(a) = call.agent {
        ctx["agent"] = json!(a);
    }
    let context = Context::from_json_value(ctx, Some((schema, &action))).expect("context");
    let request =
        Request::new(principal, action, resource, context, Some(schema)).expect("request");
    let response = Authorizer::new().is_authorized(&request, set.enforced_policies(), &entities);
    assert!(
        response.diagnostics().errors().next().is_none(),
        "evaluation errors: {:?}",
        response
            .diagnostics()
            .errors()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
    );
    let mut ids: Vec<String> = response
        .diagnostics()
        .reason()
        .map(|p| p.to_string())
        .collect();
    ids.sort();
    (response.decision(), ids)
}

pub fn denied_by(set: &CompiledPolicySet, call: &Call) -> Vec<String> {
    let (d, ids) = decide(set, call);
    if d == Decision::Deny { ids } else { vec![] }
}
