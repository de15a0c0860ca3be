//! The engine decides exactly as Cedar does over the whole compiled set.
//!
//! The engine evaluates only a call's slice, with core policies (without
//! the `server`/`tool` matchers), all as permits in one evaluation, and
//! combines the decision itself. This test checks all of that against the
//! plain reading: Cedar's `is_authorized` over every enforced policy of the
//! set, with the request built from the same call. Calls are generated from
//! a fixed seed out of the names and values the policies mention (and some
//! they do not), against policies/genomics.policy, policies/baseline.policy
//! and generated sets. The generated sets have compound scopes, budgets
//! and `during` windows too: the engine's state is fresh (every counter
//! 0, every budget's use 0), so the request supplies each budget the
//! call's own amount, and the local time of the call's wall clock (a
//! manual clock set per call near the 2026 DST changes) in each zone.

// Only `local` is used here; the reference test uses the rest.
#[allow(dead_code)]
#[path = "differential/clock.rs"]
mod clock;

use cedar_policy::{
    Authorizer, Context, Decision, Entities, Entity, EntityId, EntityTypeName, EntityUid,
    PolicySet, Request, RestrictedExpression,
};
use serde_json::{Value, json};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::str::FromStr;
use std::sync::Arc;
use warden_engine::args::project_args;
use warden_engine::memo::MemoMode;
use warden_engine::state::{Clock, ManualClock};
use warden_engine::{
    CallContext, Engine, EngineOptions, Identity, Outcome, PolicyBundle, Provenance,
    ToolAnnotations,
};
use warden_lang::ast::{Mode, RuleKind};
use warden_lang::{CompiledPolicySet, Sources, compile_policy_set};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn pick<T: Clone>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())].clone()
    }
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

fn compile(name: &str, text: &str) -> CompiledPolicySet {
    let mut s = Sources::new();
    s.add(name, text);
    match compile_policy_set(&s) {
        Ok(out) => out.policy_set,
        Err(d) => panic!(
            "{name}: {:?}",
            d.iter()
                .map(|d| d.message().to_string())
                .collect::<Vec<_>>()
        ),
    }
}

/// Every "quoted" string of a .policy text: servers, tools, groups, users,
/// values. Globs get their stars filled in.
fn literals(text: &str, rng: &mut Rng) -> Vec<String> {
    let mut out = BTreeSet::new();
    for (i, part) in text.split('"').enumerate() {
        if i % 2 == 1 && !part.contains('{') && part.len() < 40 {
            out.insert(part.replace('*', ""));
            out.insert(part.replace('*', "x"));
            out.insert(part.replace('*', &format!("v{}", rng.below(3))));
        }
    }
    out.into_iter().collect()
}

fn uid(ty: &str, id: &str) -> EntityUid {
    EntityUid::from_type_name_and_id(EntityTypeName::from_str(ty).unwrap(), EntityId::new(id))
}

/// A budget's amount on a call in units, when it is an exact one
/// (docs/language.md, "budget").
fn budget_amount(set: &CompiledPolicySet, rule: &str, call: &CallContext) -> Option<u64> {
    let budget = set.rule(rule)?.budget.as_ref()?;
    match call.arguments.pointer(&budget.pointer)? {
        Value::Number(n) => warden_lang::amount::parse_units(&n.to_string()).ok(),
        _ => None,
    }
}

/// The request the engine builds, over the whole set, with every counter 0
/// and every budget's use 0 (the engine's state is fresh: no call is ever
/// recorded here), at the wall time `now` (Unix seconds). A limit that
/// counts per model has no counter for a call that declares no model
/// (fail closed), and a budget none for an amount that is not exact.
/// The hints rules read for `call` (docs/language.md, "What the operator
/// says a tool is"): per hint the first annotation declaration covering
/// the tool, else the upstream's; destructive or not idempotent means not
/// read-only.
fn stated_hints(set: &CompiledPolicySet, call: &CallContext) -> warden_engine::ToolAnnotations {
    let covering: Vec<_> = set
        .stated_annotations()
        .iter()
        .filter(|a| a.covers(&call.server, &call.tool))
        .collect();
    let first = |f: fn(&warden_lang::CompiledAnnotation) -> Option<bool>| {
        covering.iter().find_map(|a| f(a))
    };
    let mut h = call.annotations;
    let (ro, de, id, ow) = (
        first(|a| a.read_only),
        first(|a| a.destructive),
        first(|a| a.idempotent),
        first(|a| a.open_world),
    );
    h.read_only_hint = ro.or(h.read_only_hint);
    h.destructive_hint = de.or(h.destructive_hint);
    h.idempotent_hint = id.or(h.idempotent_hint);
    h.open_world_hint = ow.or(h.open_world_hint);
    if de == Some(true) || id == Some(false) {
        h.read_only_hint = Some(false);
    }
    h
}

fn raw_request(set: &CompiledPolicySet, call: &CallContext, now: i64) -> (Request, Entities) {
    let user = uid("Warden::User", &call.identity.user);
    let tool = uid(
        "Warden::Tool",
        &format!("{}\u{0}{}", call.server, call.tool),
    );
    let action = uid("Warden::Action", warden_lang::cedar::ACTION_CALL_TOOL);
    let mut groups = HashSet::new();
    let mut entities = Vec::new();
    for g in &call.identity.groups {
        let g = uid("Warden::Group", g);
        if groups.insert(g.clone()) {
            entities.push(Entity::new_no_attrs(g, HashSet::new()));
        }
    }
    let name = HashMap::from([(
        "name".to_string(),
        RestrictedExpression::new_string(call.identity.user.clone()),
    )]);
    entities.push(Entity::new(user.clone(), name, groups).unwrap());
    let a = stated_hints(set, call).resolved();
    let attrs = HashMap::from([
        (
            "name".to_string(),
            RestrictedExpression::new_string(call.tool.clone()),
        ),
        (
            "server".to_string(),
            RestrictedExpression::new_string(call.server.clone()),
        ),
        (
            "read_only".to_string(),
            RestrictedExpression::new_bool(a.read_only),
        ),
        (
            "destructive".to_string(),
            RestrictedExpression::new_bool(a.destructive),
        ),
        (
            "idempotent".to_string(),
            RestrictedExpression::new_bool(a.idempotent),
        ),
        (
            "open_world".to_string(),
            RestrictedExpression::new_bool(a.open_world),
        ),
    ]);
    entities.push(Entity::new(tool.clone(), attrs, HashSet::new()).unwrap());
    let entities = Entities::from_entities(entities, None).unwrap();
    let scoped = |r: &&warden_lang::CompiledRule| {
        r.limit.is_some_and(|l| {
            !l.scope.contains(warden_lang::ast::Scope::Model) || call.identity.model.is_some()
        })
    };
    let counters = set
        .rules()
        .iter()
        .filter(|r| r.kind != RuleKind::Budget)
        .filter(scoped)
        .map(|r| (r.id.clone(), RestrictedExpression::new_long(0)));
    let budgets = set
        .rules()
        .iter()
        .filter(|r| r.kind == RuleKind::Budget)
        .filter(scoped)
        .filter_map(|r| {
            let units = budget_amount(set, &r.id, call)?;
            Some((
                r.id.clone(),
                RestrictedExpression::new_long(i64::try_from(units).unwrap_or(i64::MAX)),
            ))
        });
    let clock = set.clock_zones().iter().filter_map(|zone| {
        let (day, minute) = clock::local(zone, now)?;
        let local = RestrictedExpression::new_record([
            (
                "day".to_string(),
                RestrictedExpression::new_long(day.into()),
            ),
            (
                "minute".to_string(),
                RestrictedExpression::new_long(minute.into()),
            ),
        ])
        .unwrap();
        Some((zone.clone(), local))
    });
    let mut pairs = vec![
        (
            "via_agent".to_string(),
            RestrictedExpression::new_bool(call.provenance.via_agent),
        ),
        (
            "session".to_string(),
            RestrictedExpression::new_string(call.session.clone()),
        ),
        (
            "confirmed".to_string(),
            RestrictedExpression::new_set(
                call.confirmed
                    .iter()
                    .map(|c| RestrictedExpression::new_string(c.clone())),
            ),
        ),
        (
            "args".to_string(),
            project_args(&call.arguments, set.arg_fields()),
        ),
        (
            "counters".to_string(),
            RestrictedExpression::new_record(counters).unwrap(),
        ),
        (
            "budgets".to_string(),
            RestrictedExpression::new_record(budgets).unwrap(),
        ),
        (
            "clock".to_string(),
            RestrictedExpression::new_record(clock).unwrap(),
        ),
        (
            "verified".to_string(),
            RestrictedExpression::new_record(
                [
                    ("user", call.identity.verified.user),
                    ("groups", call.identity.verified.groups),
                    ("agent", call.identity.verified.agent),
                    ("model", call.identity.verified.model),
                ]
                .map(|(k, v)| (k.to_string(), RestrictedExpression::new_bool(v))),
            )
            .unwrap(),
        ),
        // The engine under test never stores a record (no tool result is
        // handed to it), so no argument is an agent-created id.
        (
            "agent_created".to_string(),
            RestrictedExpression::new_set(std::iter::empty()),
        ),
        // Nor does it label a session (only a decision that reserves does).
        (
            "labels".to_string(),
            RestrictedExpression::new_set(std::iter::empty()),
        ),
    ];
    for (key, value) in [
        ("via_server", &call.provenance.via_server),
        ("agent", &call.identity.agent),
        ("model", &call.identity.model),
    ] {
        if let Some(s) = value {
            pairs.push((key.to_string(), RestrictedExpression::new_string(s.clone())));
        }
    }
    let context = Context::from_pairs(pairs).unwrap();
    let request = Request::new(user, action, tool, context, None).unwrap();
    (request, entities)
}

/// A JSON value for an argument: every JSON shape, some of them the type a
/// rule reads and some not.
fn arg_value(rng: &mut Rng, words: &[String]) -> Value {
    match rng.below(12) {
        0..=2 => json!(rng.pick(words)),
        3 => json!(rng.below(10_000)),
        4 => json!(-(rng.below(100) as i64)),
        5 => serde_json::from_str(&format!("{}.{}", rng.below(6000), rng.below(100_000))).unwrap(),
        6 => json!(rng.chance(50)),
        7 => Value::Null,
        8 => json!([rng.below(5), rng.pick(words)]),
        9 => json!({ "k": rng.pick(words) }),
        10 => serde_json::from_str("1e300").unwrap(),
        _ => json!(format!("{}", rng.below(6000))),
    }
}

/// Sets a JSON pointer's value in an object, creating objects on the way.
fn set_pointer(root: &mut Value, ptr: &str, v: Value) {
    let mut cur = root;
    let parts: Vec<String> = ptr
        .split('/')
        .skip(1)
        .map(|p| p.replace("~1", "/").replace("~0", "~"))
        .collect();
    for (i, part) in parts.iter().enumerate() {
        if !cur.is_object() {
            return;
        }
        let map = cur.as_object_mut().expect("object");
        if i + 1 == parts.len() {
            map.insert(part.clone(), v);
            return;
        }
        cur = map.entry(part.clone()).or_insert_with(|| json!({}));
    }
}

fn random_call(rng: &mut Rng, set: &CompiledPolicySet, words: &[String]) -> CallContext {
    let bool_opt = |rng: &mut Rng| match rng.below(3) {
        0 => None,
        1 => Some(true),
        _ => Some(false),
    };
    let mut args = json!({});
    // What budgets add up: an exact amount most of the time.
    for b in set.rules().iter().filter_map(|r| r.budget.as_ref()) {
        if rng.chance(80) {
            let text = rng.pick(&[
                "0.1", "2.5", "0", "10", "11", "-1", "0.00001", "1e300", "\"3\"", "null",
            ]);
            set_pointer(&mut args, &b.pointer, serde_json::from_str(text).unwrap());
        }
    }
    let fields: Vec<&String> = set.arg_fields().keys().collect();
    for _ in 0..rng.below(6) {
        if fields.is_empty() || rng.chance(10) {
            let key = rng.pick(words);
            args[key] = arg_value(rng, words);
        } else {
            let ptr = fields[rng.below(fields.len())];
            let v = arg_value(rng, words);
            set_pointer(&mut args, ptr, v);
        }
    }
    let ids: Vec<String> = set.rules().iter().map(|r| r.id.clone()).collect();
    CallContext {
        identity: Identity {
            user: rng.pick(words),
            groups: (0..rng.below(4)).map(|_| rng.pick(words)).collect(),
            agent: rng.chance(70).then(|| rng.pick(words)),
            model: rng.chance(60).then(|| rng.pick(words)),
            ..Identity::default()
        },
        session: format!("s{}", rng.below(3)),
        provenance: Provenance {
            via_agent: rng.chance(70),
            via_server: rng.chance(60).then(|| rng.pick(words)),
        },
        server: rng.pick(words),
        tool: rng.pick(words),
        annotations: ToolAnnotations {
            read_only_hint: bool_opt(rng),
            destructive_hint: bool_opt(rng),
            idempotent_hint: bool_opt(rng),
            open_world_hint: bool_opt(rng),
        },
        arguments: args,
        confirmed: (0..rng.below(3)).map(|_| rng.pick(&ids)).collect(),
    }
}

/// Decides `calls` calls with the engine and with Cedar over the whole set
/// and asserts they agree: the decision, the rules behind it, and the
/// shadow findings. Returns how many were allowed, confirmed and denied,
/// and how many of the denials a budget took part in.
fn agree(name: &str, set: &CompiledPolicySet, text: &str, seed: u64, calls: usize) -> [usize; 4] {
    let mut rng = Rng(seed);
    let mut words = literals(text, &mut rng);
    words.extend(
        [
            "genomics",
            "other",
            "alice",
            "staff",
            "qc",
            "1.5",
            "x",
            "delete_sample",
            "list_runs",
        ]
        .map(String::from),
    );
    let wall = Arc::new(ManualClock::default());
    let engine = Engine::new(
        PolicyBundle::new(set.clone(), "v".into()),
        EngineOptions {
            clock: wall.clone(),
            // Every memo hit is evaluated again and compared (below).
            memo: MemoMode::Verify,
            ..EngineOptions::default()
        },
    );
    // Around the 2026 DST changes in Berlin and New York, and a Wednesday.
    const ANCHORS: [i64; 5] = [
        1_774_746_000,
        1_792_890_000,
        1_772_953_200,
        1_793_512_800,
        1_796_196_600,
    ];
    let authorizer = Authorizer::new();
    let kind = |id: &str| set.rule(id).map(|r| r.kind);
    let mut tally = [0; 4];
    for n in 0..calls {
        let mut call = random_call(&mut rng, set, &words);
        // A session of its own: an allowed call labels its session (a
        // `label` rule), and the raw request has no labels.
        call.session = format!("differential-{n}");
        let now = rng.pick(&ANCHORS) - rng.below(6 * 3600) as i64;
        wall.step_wall(now * 1000 - wall.unix_millis());
        let (request, entities) = raw_request(set, &call, now);
        let cedar = authorizer.is_authorized(&request, set.enforced_policies(), &entities);
        assert!(
            cedar.diagnostics().errors().next().is_none(),
            "{name} #{n}: Cedar errs on {call:#?}"
        );
        let reasons: BTreeSet<String> = cedar
            .diagnostics()
            .reason()
            .map(|id| id.to_string())
            .collect();
        let decided = engine.decide(&call);
        let ctx = || {
            format!(
                "{name} #{n}: {call:#?}\nCedar: {:?} {reasons:?}\nwarden: {:#?}",
                cedar.decision(),
                decided.outcome
            )
        };
        match (&decided.outcome, cedar.decision()) {
            (Outcome::Allow { rules }, Decision::Allow) => {
                let rules: BTreeSet<String> = rules.iter().cloned().collect();
                assert_eq!(rules, reasons, "{}", ctx());
                tally[0] += 1;
            }
            (Outcome::Confirm(c), Decision::Deny) => {
                let rules: BTreeSet<String> = c.rules.iter().map(|h| h.rule.clone()).collect();
                assert_eq!(rules, reasons, "{}", ctx());
                assert!(
                    reasons
                        .iter()
                        .all(|r| kind(r) == Some(RuleKind::RequireConfirm)),
                    "{}",
                    ctx()
                );
                tally[1] += 1;
            }
            (Outcome::Deny(d), Decision::Deny) => {
                let rules: BTreeSet<String> = d.rules.iter().map(|h| h.rule.clone()).collect();
                let restricting: BTreeSet<String> = reasons
                    .iter()
                    .filter(|r| kind(r) != Some(RuleKind::RequireConfirm))
                    .cloned()
                    .collect();
                assert_eq!(rules, restricting, "{}", ctx());
                if rules.iter().any(|r| kind(r) == Some(RuleKind::Budget)) {
                    tally[3] += 1;
                }
                if restricting.is_empty() && !reasons.is_empty() {
                    // Only confirmations refuse, yet warden denies: that is
                    // right only when nothing grants the call, so the
                    // person's yes would not help.
                    let mut confirmed = call.clone();
                    confirmed.confirmed = reasons.iter().cloned().collect();
                    assert!(
                        !engine.decide(&confirmed).is_allow(),
                        "a confirmation was refused that would have allowed the call\n{}",
                        ctx()
                    );
                }
                tally[2] += 1;
            }
            _ => panic!("decisions differ\n{}", ctx()),
        }

        // Shadow rules: each alone through Cedar.
        let mut expected = BTreeSet::new();
        for rule in set.rules().iter().filter(|r| r.mode == Mode::Shadow) {
            let p = set
                .shadow_policies()
                .policy(&cedar_policy::PolicyId::new(&rule.id))
                .expect("shadow policy");
            let mut one = PolicySet::new();
            one.add(p.clone()).unwrap();
            let r = authorizer.is_authorized(&request, &one, &entities);
            assert!(r.diagnostics().errors().next().is_none(), "{}", ctx());
            if r.diagnostics().reason().next().is_some() {
                expected.insert(rule.id.clone());
            }
        }
        let found: BTreeSet<String> = decided.shadow.iter().map(|f| f.rule.clone()).collect();
        assert_eq!(found, expected, "shadow findings\n{}", ctx());
    }
    let memo = engine.memo_stats();
    assert_eq!(
        memo.mismatches, 0,
        "{name}: the decision memo answered differently from a fresh evaluation: {memo:?}"
    );
    tally
}

fn shipped(name: &str) -> String {
    let path = format!("{}/../../policies/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(path).expect("shipped policy")
}

#[test]
fn genomics_decides_as_cedar_over_the_whole_set() {
    let text = shipped("genomics.policy");
    let set = compile("genomics.policy", &text);
    // 20,000 calls: a confirmation needs an agent's paid run on the
    // genomics server with an exact amount that fits the budget, which the
    // words of the grown policy make rarer (none in 3,000 since issue 17).
    let [allowed, confirmed, denied, _] = agree("genomics", &set, &text, 1, 20_000);
    assert!(
        allowed > 30 && confirmed > 0 && denied > 30,
        "{allowed} {confirmed} {denied}"
    );
}

#[test]
fn baseline_decides_as_cedar_over_the_whole_set() {
    let text = shipped("baseline.policy");
    let set = compile("baseline.policy", &text);
    let [allowed, _, denied, _] = agree("baseline", &set, &text, 2, 3_000);
    assert!(allowed > 30 && denied > 30, "{allowed} {denied}");
}

/// A set of `n` random rules of every kind over a few servers and tools.
fn generated(rng: &mut Rng, n: usize) -> String {
    const SERVERS: &[&str] = &["genomics", "lims", "lab-a", "lab-b", "other"];
    const TOOLS: &[&str] = &[
        "list_runs",
        "delete_sample",
        "start_run",
        "export_x",
        "list_*",
        "*_sample",
        "delete_*",
        "*",
    ];
    const ATOMS: &[&str] = &[
        "via agent",
        "via server \"genomics\"",
        "tool.destructive",
        "tool.read_only",
        "user in group \"staff\"",
        "user == \"alice\"",
        "agent == \"claude-code\"",
        "model matches \"claude-*\"",
        "args.pipeline == \"qc\"",
        "args.pipeline != \"qc\"",
        "args.count > 100",
        "args.count <= 1.5",
        "args.force == true",
        "args.sample.id matches \"S-*\"",
        "args.pipeline in [\"qc\", \"x\"]",
        "args.note exists",
        "during weekdays 08:00-18:00 \"Europe/Berlin\"",
        "during 22:00-06:00 \"America/New_York\"",
        "during sat,sun 02:00-03:00 \"Europe/Berlin\"",
    ];
    let mut out = String::from(if rng.chance(50) {
        "default deny\n"
    } else {
        "default allow\n"
    });
    for i in 0..n {
        let kind = rng.pick(&[
            "allow",
            "allow",
            "deny",
            "require-confirm",
            "cap-consecutive",
            "rate-limit",
            "budget",
        ]);
        out.push_str(&format!("{kind} r{i} {{\n"));
        if rng.chance(80) {
            let a = rng.pick(SERVERS);
            let b = rng.pick(&["lab-*", "genomics", "lims"]);
            out.push_str(
                &format!("  server [\"{a}\", \"{b}\"]\n").replace(&format!(", \"{a}\""), ""),
            );
        }
        if rng.chance(80) {
            out.push_str(&format!("  tool \"{}\"\n", rng.pick(TOOLS)));
        }
        if kind == "deny" || rng.chance(70) {
            let a = rng.pick(ATOMS);
            let b = rng.pick(ATOMS);
            let cond = match rng.below(4) {
                0 => a.to_string(),
                1 => format!("{a} and {b}"),
                2 => format!("{a} or not {b}"),
                _ => format!("not ({a} and {b})"),
            };
            out.push_str(&format!("  when {cond}\n"));
        }
        let scope = rng.pick(&[
            "per session",
            "per user",
            "per model",
            "per tool",
            "per user per tool",
            "per agent per model",
        ]);
        match kind {
            "cap-consecutive" => out.push_str(&format!("  max 3 {scope}\n")),
            "rate-limit" => out.push_str(&format!("  max 10 per 1m {scope}\n")),
            "budget" => out.push_str(&format!("  sum args.cost\n  max 10 per 1h {scope}\n")),
            _ => {}
        }
        if rng.chance(15) {
            out.push_str("  mode shadow\n");
        }
        out.push_str("}\n");
    }
    out
}

#[test]
fn generated_sets_decide_as_cedar_over_the_whole_set() {
    let mut rng = Rng(3);
    let mut tally = [0; 4];
    for k in 0..12 {
        // A random set may hold a condition the checker refuses (two
        // tests no call passes together): draw another.
        let (text, set) = loop {
            let text = generated(&mut rng, 25);
            let mut sources = Sources::new();
            sources.add(format!("generated-{k}.policy"), &text);
            if let Ok(out) = compile_policy_set(&sources) {
                break (text, out.policy_set);
            }
        };
        let t = agree(&format!("generated-{k}"), &set, &text, 100 + k, 400);
        for i in 0..4 {
            tally[i] += t[i];
        }
    }
    assert!(tally.iter().all(|&n| n > 30), "{tally:?}");
}
