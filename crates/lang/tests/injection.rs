//! No name or string a policy author writes can change the structure of the
//! emitted Cedar. Hostile strings (Cedar syntax, quotes, backslashes,
//! newlines, NULs, reserved names) are put in every place a .policy file
//! carries text: server and tool patterns, `via server`, `user in group`,
//! `user ==`, `agent ==`, `model matches`, an argument name, an argument
//! value, an argument `matches` glob and the reason. For each we check that
//!
//! * the set compiles, to exactly the expected policies with the expected
//!   effects (nothing was smuggled in), also when the printed Cedar text is
//!   parsed back;
//! * the `@reason` annotation holds the original reason exactly;
//! * evaluated by Cedar's authorizer, the rule fires when every value equals
//!   the hostile text, and does not fire when any single one differs (so
//!   the hostile text did not turn any condition into `true`).

use cedar_policy::{
    Authorizer, Context, Decision, Effect, Entities, EntityId, EntityTypeName, EntityUid, PolicyId,
    PolicySet, Request, Response, Schema,
};
use serde_json::{Value as Json, json};
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::str::FromStr;
use warden_lang::glob::glob_matches;
use warden_lang::{CompileOutput, Sources, compile_policy_set};

/// Strings that would break out of a naively built Cedar string literal,
/// attribute name, entity id, `like` pattern or annotation.
const HOSTILE: &[&str] = &[
    r#"") || true || (""#,
    r#") || true || ("#,
    r#""; permit(principal, action, resource);"#,
    r#""}; permit(principal, action, resource) when { true }; forbid(principal, action, resource) when { ""#,
    r#"\" } when { true"#,
    r#"\"); permit(principal, action, resource); //"#,
    "*",
    "**",
    r#"*" || true || "*"#,
    "line one\nline two",
    "\n) || true || (\n",
    "\r\n\t",
    "\0",
    "a\0b\u{1}\u{1b}\u{7f}",
    "__cedar",
    r#"__cedar::ipaddr("127.0.0.1")"#,
    "]",
    r#""]) || true || (["#,
    r#"// ") || true"#,
    "/* ) || true */",
    "\\",
    "\\\\",
    "\\*",
    "a\\",
    "\\\"",
    "\\u{41}",
    r#"@reason("smuggled") permit(principal, action, resource);"#,
    r#"Warden::Group::"admins""#,
    "principal",
    "true",
    "context",
    "has",
    "like",
    "/a/b~c~0~1",
    "{user}",
    "}}{{",
    "\u{2028}\u{2029}\u{202e}\u{feff}\u{200b}",
    "🦀 ünïcödé",
];

/// Tool patterns must be valid MCP tool-name globs (`[A-Za-z0-9_.*-]`),
/// so only these characters can be hostile there.
const HOSTILE_TOOLS: &[&str] = &["*", "__cedar*", "*.*", "a*b*c", "-", "...", "x_-.*", "**"];

// ---------------------------------------------------------------------------
// Writing .policy text
// ---------------------------------------------------------------------------

/// A .policy string literal holding exactly `s`.
fn policy_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A reason showing `s` literally: braces doubled, so no placeholder.
fn literal_reason(s: &str) -> String {
    format!("blocked: {}", s.replace('{', "{{").replace('}', "}}"))
}

/// The argument name a case uses: the hostile text with each `*` made a
/// `+`, since a `*` in a path segment is refused (`wildcard-segment`: a
/// segment is a name, not a pattern) and everything else must get through.
fn arg_name(hostile: &str) -> String {
    hostile.replace('*', "+")
}

/// The RFC 6901 pointer the compiled Cedar names an argument by.
fn pointer(key: &str) -> String {
    format!("/{}", key.replace('~', "~0").replace('/', "~1"))
}

/// One hostile case: the same text in every slot of a rule.
struct Case<'a> {
    hostile: &'a str,
    tool: &'a str,
    reason: String,
}

impl<'a> Case<'a> {
    fn new(i: usize, hostile: &'a str) -> Self {
        Case {
            hostile,
            tool: HOSTILE_TOOLS[i % HOSTILE_TOOLS.len()],
            reason: literal_reason(hostile),
        }
    }

    fn rule(&self, kind: &str) -> String {
        let h = policy_str(self.hostile);
        let a = policy_str(&arg_name(self.hostile));
        format!(
            "{kind} hostile {{\n  server {h}\n  tool {tool}\n  when via server {h} and user in group {h} and user == {h} and agent == {h}\n    and model matches {h} and args.{a} == {h} and args.x matches {h}\n  reason {reason}\n}}\n",
            tool = policy_str(self.tool),
            reason = policy_str(&self.reason),
        )
    }
}

fn compile(text: &str) -> CompileOutput {
    let mut sources = Sources::new();
    sources.add("hostile.policy", text);
    match compile_policy_set(&sources) {
        Ok(out) => {
            let errors: Vec<_> = out.warnings.iter().filter(|d| d.is_error()).collect();
            assert!(errors.is_empty(), "errors among warnings: {errors:?}");
            out
        }
        Err(d) => panic!("does not compile: {d:?}\n--- text ---\n{text}"),
    }
}

// ---------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------

/// The values a request carries in each slot the rule reads.
#[derive(Clone, Debug)]
struct Call {
    server: String,
    tool: String,
    via_server: String,
    group: String,
    user: String,
    agent: String,
    model: String,
    /// `context.args.str` entries, by pointer.
    args: Vec<(String, String)>,
    counters: Vec<(String, i64)>,
}

impl Call {
    /// A call whose every value makes the hostile rule's condition hold.
    fn matching(case: &Case<'_>) -> Call {
        Call {
            server: case.hostile.replace('*', ""),
            tool: case.tool.replace('*', ""),
            via_server: case.hostile.to_string(),
            group: case.hostile.to_string(),
            user: case.hostile.to_string(),
            agent: case.hostile.to_string(),
            model: case.hostile.replace('*', ""),
            args: vec![
                (pointer(&arg_name(case.hostile)), case.hostile.to_string()),
                ("/x".to_string(), case.hostile.replace('*', "")),
            ],
            counters: vec![],
        }
    }

    /// The same call with one slot changed so that the rule must not fire;
    /// `None` when no value can fail the slot (a pattern of only `*`).
    fn differing(case: &Case<'_>, slot: &str) -> Option<Call> {
        let mut c = Call::matching(case);
        let benign = |glob: &str| {
            ["benign", "zzz", "Q"]
                .into_iter()
                .find(|b| !glob_matches(glob, b))
                .map(str::to_string)
        };
        match slot {
            "server" => c.server = benign(case.hostile)?,
            "tool" => c.tool = benign(case.tool)?,
            "via server" => c.via_server = "benign".into(),
            "group" => c.group = "benign".into(),
            "user" => c.user = "alice".into(),
            "agent" => c.agent = "benign".into(),
            "model" => c.model = benign(case.hostile)?,
            "argument value" => c.args[0].1 = "benign".into(),
            "matches" => c.args[1].1 = benign(case.hostile)?,
            other => unreachable!("slot {other}"),
        }
        Some(c)
    }
}

const SLOTS: &[&str] = &[
    "server",
    "tool",
    "via server",
    "group",
    "user",
    "agent",
    "model",
    "argument value",
    "matches",
];

fn uid(ty: &str, id: &str) -> EntityUid {
    EntityUid::from_type_name_and_id(
        EntityTypeName::from_str(ty).expect("type name"),
        EntityId::new(id),
    )
}

fn action() -> EntityUid {
    uid("Warden::Action", "call_tool")
}

/// Evaluates `call` against the enforced policies, building every part of
/// the request through the generated schema (so it is validated).
fn authorize(out: &CompileOutput, call: &Call) -> Response {
    let schema: &Schema = out.policy_set.schema();
    let entities = json!([
        {
            "uid": {"type": "Warden::User", "id": call.user},
            "attrs": {"name": call.user},
            "parents": [{"type": "Warden::Group", "id": call.group}],
        },
        {
            "uid": {"type": "Warden::Group", "id": call.group},
            "attrs": {},
            "parents": [],
        },
        {
            "uid": {"type": "Warden::Tool", "id": "t"},
            "attrs": {
                "name": call.tool,
                "server": call.server,
                "read_only": false,
                "destructive": true,
                "idempotent": false,
                "open_world": false,
            },
            "parents": [],
        },
    ]);
    let entities = Entities::from_json_value(entities, Some(schema))
        .unwrap_or_else(|e| panic!("entities: {e}\n{call:?}"));

    let str_args: serde_json::Map<String, Json> = call
        .args
        .iter()
        .map(|(k, v)| (k.clone(), Json::String(v.clone())))
        .collect();
    let present: Vec<&str> = call.args.iter().map(|(k, _)| k.as_str()).collect();
    let counters: serde_json::Map<String, Json> = call
        .counters
        .iter()
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    let context = json!({
        "via_agent": true,
        "via_server": call.via_server,
        "agent": call.agent,
        "model": call.model,
        "session": "s-1",
        "confirmed": [],
        "args": {"str": str_args, "num": {}, "bool": {}, "path": {}, "ipath": {}, "istr": {}, "len": {}, "size": {}, "present": present, "null": []},
        "counters": counters,
        "budgets": {},
        "each": {},
        "clock": {},
        "verified": {"user": false, "groups": false, "agent": false, "model": false},
        "agent_created": [],
        "labels": [],
    });
    let action = action();
    let context = Context::from_json_value(context, Some((schema, &action)))
        .unwrap_or_else(|e| panic!("context: {e}\n{call:?}"));
    let request = Request::new(
        uid("Warden::User", &call.user),
        action,
        uid("Warden::Tool", "t"),
        context,
        Some(schema),
    )
    .unwrap_or_else(|e| panic!("request: {e}\n{call:?}"));
    let response =
        Authorizer::new().is_authorized(&request, out.policy_set.enforced_policies(), &entities);
    let errors: Vec<String> = response
        .diagnostics()
        .errors()
        .map(ToString::to_string)
        .collect();
    assert!(errors.is_empty(), "evaluation errors: {errors:?}\n{call:?}");
    response
}

fn reasons(response: &Response) -> BTreeSet<String> {
    response
        .diagnostics()
        .reason()
        .map(ToString::to_string)
        .collect()
}

fn ids(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

// ---------------------------------------------------------------------------
// Structure of the emitted set
// ---------------------------------------------------------------------------

/// The enforced set holds exactly `expected` (id, effect) pairs, and the
/// hostile rule's annotations hold the original texts; the printed Cedar
/// parses back to as many policies with the same effects and reasons.
fn assert_structure(out: &CompileOutput, case: &Case<'_>, expected: &[(&str, Effect)]) {
    let enforced = out.policy_set.enforced_policies();
    let mut got: Vec<(String, Effect)> = enforced
        .policies()
        .map(|p| (p.id().to_string(), p.effect()))
        .collect();
    got.sort_by(|a, b| a.0.cmp(&b.0));
    let mut want: Vec<(String, Effect)> = expected
        .iter()
        .map(|(id, e)| (id.to_string(), *e))
        .collect();
    want.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(got, want, "enforced policies for {:?}", case.hostile);
    assert_eq!(out.policy_set.shadow_policies().policies().count(), 0);
    assert_eq!(out.policy_set.counting_policies().policies().count(), 0);

    let rule = enforced
        .policy(&PolicyId::new("hostile"))
        .expect("the hostile rule's policy");
    assert_eq!(rule.annotation("reason"), Some(case.reason.as_str()));
    assert_eq!(rule.annotation("id"), Some("hostile"));
    let kind = if expected.contains(&("hostile", Effect::Permit)) {
        "allow"
    } else {
        "deny"
    };
    assert_eq!(rule.annotation("kind"), Some(kind));
    assert_eq!(rule.annotation("mode"), Some("enforce"));

    // The rule as the compiler understood it: the texts came through.
    let compiled = out.policy_set.rule("hostile").expect("compiled rule");
    assert_eq!(compiled.servers, Some(vec![case.hostile.to_string()]));
    assert_eq!(compiled.tools, Some(vec![case.tool.to_string()]));
    assert_eq!(
        compiled.reason_source.as_deref(),
        Some(case.reason.as_str())
    );
    let fields: BTreeSet<&str> = out
        .policy_set
        .arg_fields()
        .keys()
        .map(String::as_str)
        .collect();
    let ptr = pointer(&arg_name(case.hostile));
    assert_eq!(fields, BTreeSet::from([ptr.as_str(), "/x"]));

    // The text `warden compile` prints holds the same policies.
    let printed = out.policy_set.cedar_text();
    let reparsed = PolicySet::from_str(&printed)
        .unwrap_or_else(|e| panic!("printed Cedar does not parse: {e}\n{printed}"));
    let mut effects: Vec<Effect> = reparsed.policies().map(|p| p.effect()).collect();
    let mut want_effects: Vec<Effect> = expected.iter().map(|(_, e)| *e).collect();
    effects.sort_by_key(|e| format!("{e:?}"));
    want_effects.sort_by_key(|e| format!("{e:?}"));
    assert_eq!(effects, want_effects, "printed Cedar:\n{printed}");
    let reparsed_reasons: Vec<&str> = reparsed
        .policies()
        .filter_map(|p| p.annotation("reason"))
        .collect();
    assert_eq!(reparsed_reasons, vec![case.reason.as_str()]);
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[test]
fn hostile_text_in_a_deny_rule_changes_nothing() {
    for (i, hostile) in HOSTILE.iter().enumerate() {
        let case = Case::new(i, hostile);
        let text = format!("default allow\n\n{}", case.rule("deny"));
        let out = compile(&text);
        assert_structure(
            &out,
            &case,
            &[("#default", Effect::Permit), ("hostile", Effect::Forbid)],
        );

        let fires = authorize(&out, &Call::matching(&case));
        assert_eq!(
            fires.decision(),
            Decision::Deny,
            "{hostile:?}: the rule should fire on the exact values"
        );
        assert_eq!(reasons(&fires), ids(&["hostile"]), "{hostile:?}");

        let mut checked = 0;
        for slot in SLOTS {
            let Some(call) = Call::differing(&case, slot) else {
                continue;
            };
            checked += 1;
            let r = authorize(&out, &call);
            assert_eq!(
                r.decision(),
                Decision::Allow,
                "{hostile:?}: the rule fired although the {slot} differs\n{call:?}"
            );
            assert_eq!(reasons(&r), ids(&["#default"]), "{hostile:?} / {slot}");
        }
        assert!(checked >= 5, "{hostile:?}: only {checked} slots checked");
    }
}

/// The same in an allow rule under `default deny`: hostile text must not
/// grant anything (the permit side is compiled differently, from the
/// "definitely true" form of the condition).
#[test]
fn hostile_text_in_an_allow_rule_grants_nothing() {
    for (i, hostile) in HOSTILE.iter().enumerate() {
        let case = Case::new(i, hostile);
        let text = format!("default deny\n\n{}", case.rule("allow"));
        let out = compile(&text);
        assert_structure(&out, &case, &[("hostile", Effect::Permit)]);

        let grants = authorize(&out, &Call::matching(&case));
        assert_eq!(
            grants.decision(),
            Decision::Allow,
            "{hostile:?}: the rule should allow the exact values"
        );
        assert_eq!(reasons(&grants), ids(&["hostile"]), "{hostile:?}");

        let mut checked = 0;
        for slot in SLOTS {
            let Some(call) = Call::differing(&case, slot) else {
                continue;
            };
            checked += 1;
            let r = authorize(&out, &call);
            assert_eq!(
                r.decision(),
                Decision::Deny,
                "{hostile:?}: the rule allowed although the {slot} differs\n{call:?}"
            );
            assert!(reasons(&r).is_empty(), "{hostile:?} / {slot}");
        }
        assert!(checked >= 5, "{hostile:?}: only {checked} slots checked");
    }
}

/// Every hostile string in one file, one rule each: still exactly one
/// policy per rule, each reason intact.
#[test]
fn many_hostile_rules_in_one_set_stay_separate() {
    let mut text = String::from("default allow\n\n");
    let mut names = Vec::new();
    for (i, hostile) in HOSTILE.iter().enumerate() {
        let case = Case::new(i, hostile);
        let name = format!("hostile-{i}");
        text.push_str(&case.rule("deny").replacen("hostile", &name, 1));
        text.push('\n');
        names.push((name, case.reason));
    }
    let out = compile(&text);
    let enforced = out.policy_set.enforced_policies();
    assert_eq!(enforced.policies().count(), HOSTILE.len() + 1);
    for (name, reason) in &names {
        let p = enforced
            .policy(&PolicyId::new(name))
            .unwrap_or_else(|| panic!("policy {name}"));
        assert_eq!(p.effect(), Effect::Forbid);
        assert_eq!(p.annotation("reason"), Some(reason.as_str()));
    }
    let reparsed = PolicySet::from_str(&out.policy_set.cedar_text()).expect("printed Cedar parses");
    assert_eq!(reparsed.policies().count(), HOSTILE.len() + 1);
    let forbids = reparsed
        .policies()
        .filter(|p| p.effect() == Effect::Forbid)
        .count();
    assert_eq!(forbids, HOSTILE.len());
}

/// Rule names end up as policy ids, annotations and counter names in
/// `context.counters`; names that are Cedar keywords must stay names.
#[test]
fn rule_names_that_are_cedar_keywords_stay_names() {
    const NAMES: &[&str] = &[
        "true",
        "false",
        "if",
        "then",
        "else",
        "in",
        "is",
        "like",
        "has",
        "principal",
        "action",
        "resource",
        "context",
        "permit",
        "forbid",
        "when",
        "unless",
        "template",
        "entity",
        "namespace",
        "type",
        "appliesTo",
        "decimal",
        "ip",
        "Set",
        "Long",
        "String",
        "Bool",
        "Record",
        "Entity",
        "Extension",
        "Warden",
        "X__cedar",
        "a-b",
        "a_b-",
        "default",
        "deny",
        "allow",
    ];
    let mut text = String::from("default allow\n\n");
    for name in NAMES {
        let _ = writeln!(
            text,
            "cap-consecutive {name} {{\n  tool \"t*\"\n  max 2 per session\n  reason \"{{rule}} hit {{limit}}\"\n}}\n"
        );
    }
    let out = compile(&text);
    let enforced = out.policy_set.enforced_policies();
    assert_eq!(enforced.policies().count(), NAMES.len() + 1);
    assert_eq!(
        out.policy_set.counting_policies().policies().count(),
        NAMES.len()
    );
    for name in NAMES {
        let p = enforced
            .policy(&PolicyId::new(*name))
            .unwrap_or_else(|| panic!("policy {name}"));
        assert_eq!(p.effect(), Effect::Forbid);
        assert_eq!(p.annotation("id"), Some(*name));
        assert_eq!(p.annotation("reason"), Some("{rule} hit {limit}"));
    }

    let below: Vec<(String, i64)> = NAMES.iter().map(|n| (n.to_string(), 1)).collect();
    let call = Call {
        server: "s".into(),
        tool: "t1".into(),
        via_server: "s".into(),
        group: "g".into(),
        user: "alice".into(),
        agent: "a".into(),
        model: "m".into(),
        args: vec![],
        counters: below.clone(),
    };
    let r = authorize(&out, &call);
    assert_eq!(r.decision(), Decision::Allow, "no cap is reached");
    for (i, name) in NAMES.iter().enumerate() {
        let mut reached = call.clone();
        reached.counters = below.clone();
        reached.counters[i].1 = 2;
        let r = authorize(&out, &reached);
        assert_eq!(r.decision(), Decision::Deny, "cap {name} is reached");
        assert_eq!(reasons(&r), ids(&[name]), "only {name} fires");
    }
}

#[test]
fn hostile_text_in_records_and_created_by_agent_changes_nothing() {
    for (i, hostile) in HOSTILE.iter().enumerate() {
        let h = policy_str(hostile);
        let tool = policy_str(HOSTILE_TOOLS[i % HOSTILE_TOOLS.len()]);
        // A pointer must start with `/` and escape `~`; the rest is hostile.
        let ptr = policy_str(&pointer(hostile));
        let a = policy_str(&arg_name(hostile));
        let text = format!(
            "default allow\nrecords r {{\n  server {h}\n  created by tool {tool} at {ptr}\n}}\ndeny hostile {{\n  server {h}\n  when not args.{a} created by agent\n}}\n"
        );
        let out = compile(&text);
        let ids: Vec<&str> = out
            .policy_set
            .rules()
            .iter()
            .map(|r| r.id.as_str())
            .collect();
        assert_eq!(ids, ["hostile"], "{hostile:?}");
        // The printed Cedar parses back to the default permit and one forbid.
        let parsed = PolicySet::from_str(&out.policy_set.cedar_text())
            .unwrap_or_else(|e| panic!("{hostile:?}: {e}"));
        let effects: Vec<Effect> = parsed.policies().map(|p| p.effect()).collect();
        assert_eq!(effects.len(), 2, "{hostile:?}");
        assert_eq!(
            effects.iter().filter(|e| **e == Effect::Forbid).count(),
            1,
            "{hostile:?}"
        );
        // The argument is named by its exact pointer, quoted once.
        let rule = &out.policy_set.rules()[0];
        assert_eq!(
            rule.created_args
                .iter()
                .map(|a| (a.kind.as_str(), a.pointer.as_str()))
                .collect::<Vec<_>>(),
            [("r", pointer(&arg_name(hostile)).as_str())],
            "{hostile:?}"
        );
        let records = out.policy_set.records();
        assert_eq!(records[0].creators[0].1, pointer(hostile));
        assert_eq!(
            records[0].servers.as_deref(),
            Some(&[hostile.to_string()][..])
        );
    }
}

/// Issue 12's places for text: a folded comparison, a length and a size of
/// a hostile argument name, and a budget summing one. Each set compiles to
/// exactly the default, the rule and the budget with its counting policy
/// (also when the printed Cedar is parsed back, against a schema that
/// validated); the argument is one field, its exact pointer; a `during`
/// zone that is hostile text is refused, never emitted.
#[test]
fn hostile_text_in_issue_12_conditions_and_budgets_changes_nothing() {
    for hostile in HOSTILE {
        let h = policy_str(hostile);
        let a = policy_str(&arg_name(hostile));
        let text = format!(
            "default allow\ndeny hostile {{\n  when args.{a} == {h} ignoring case and length of args.{a} > 1\n    and size of args.{a} < 10 KB\n}}\nbudget spend {{\n  server {h}\n  sum args.{a}\n  max 10 per 1d per user\n  reason {reason}\n}}\n",
            reason = policy_str(&literal_reason(hostile)),
        );
        let out = compile(&text);
        let ptr = pointer(&arg_name(hostile));
        let fields: Vec<&str> = out
            .policy_set
            .arg_fields()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(fields, [ptr.as_str()], "{hostile:?}");
        let ids: Vec<&str> = out
            .policy_set
            .rules()
            .iter()
            .map(|r| r.id.as_str())
            .collect();
        assert_eq!(ids, ["hostile", "spend"], "{hostile:?}");
        let printed = out.policy_set.cedar_text();
        let parsed =
            PolicySet::from_str(&printed).unwrap_or_else(|e| panic!("{hostile:?}: {e}\n{printed}"));
        let mut effects: Vec<String> = parsed
            .policies()
            .map(|p| format!("{:?}", p.effect()))
            .collect();
        effects.sort();
        // The default permit, the deny, the budget's forbid and its
        // counting policy (a permit that only counts).
        assert_eq!(parsed.policies().count(), 4, "{hostile:?}:\n{printed}");
        assert_eq!(
            effects.iter().filter(|e| e.as_str() == "Forbid").count(),
            2,
            "{hostile:?}:\n{printed}"
        );
        let zone = format!("default allow\ndeny night {{\n  when during weekdays {h}\n}}\n");
        let mut sources = Sources::new();
        sources.add("zone.policy", zone.as_str());
        let refused = compile_policy_set(&sources).expect_err("an unknown zone is refused");
        assert!(
            refused.iter().any(|d| d.code().id() == "unknown-time-zone"),
            "{hostile:?}"
        );
    }
}
