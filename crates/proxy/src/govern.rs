//! What the proxy adds to MCP: the denial result an agent reads, the
//! provenance a forwarded call carries, the confirmation question, and the
//! tools/list view (hidden tools, notes on tools that need confirmation or
//! are limited). Pure functions over the engine's values.

use serde_json::{Map, Value, json};
use warden_engine::message::human_duration;
use warden_engine::{CallContext, Decided, Denial, Engine, Outcome, Retry, ToolAnnotations};
use warden_lang::ast::{Mode, RuleKind};

/// The `_meta` key of the provenance on every forwarded `tools/call`.
pub const PROVENANCE_KEY: &str = "io.warden/provenance";
/// Client-sent `_meta` keys with this prefix are removed from every message.
pub const RESERVED_META_PREFIX: &str = "io.warden/";
/// Every prefix of warden's own `_meta` keys (lower case): client-sent
/// keys starting with one, in any ASCII case, are removed from every
/// message and every position (`params._meta`, `result._meta`).
pub const RESERVED_META_PREFIXES: &[&str] = &[RESERVED_META_PREFIX, "warden/"];
/// The methods whose handling warden changes. A client method that is one
/// of these only in another case or spacing (`Tools/call`, `"tools/call "`)
/// is refused, since a lenient upstream could take it for the real one.
pub const GOVERNED_METHODS: &[&str] = &["tools/call", "tools/list", "initialize"];
/// The key of the machine-readable decision in a denial's `_meta` and
/// `structuredContent`.
pub const DECISION_KEY: &str = "warden/decision";
/// The `inputRequests` key of warden's confirmation (protocol 2026-07-28).
pub const CONFIRM_INPUT_KEY: &str = "warden/confirm";

/// The `inputRequests` key of warden's approval-page request (2026-07-28,
/// URL-mode elicitation).
pub const APPROVE_INPUT_KEY: &str = "warden/approve";
/// Where the notes on a tool start in its description.
pub const NOTE_PREFIX: &str = "[warden] ";

/// What the proxy knows of one upstream tool from tools/list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ToolInfo {
    pub annotations: ToolAnnotations,
    /// The tool declares an `outputSchema`, so a `structuredContent` of
    /// warden's own could fail the client's validation.
    pub has_output_schema: bool,
    /// Its definition against the pinned one ([`crate::tool_pins`]).
    pub pin: PinVerdict,
}

/// A listed tool's definition against its pin.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PinVerdict {
    /// Not checked: pinning is off, or the tool was never listed.
    #[default]
    Unchecked,
    /// The pinned definition (or pinned now, on first sight).
    Pinned,
    /// Not the pinned definition: hidden, its calls refused until an
    /// operator approves the new one.
    Changed,
    /// As `Changed`, with the pins in this process's memory, which
    /// `warden tools approve` cannot reach.
    ChangedInMemory,
    /// Strict mode: the pin file has no such tool.
    NotInPinFile,
    /// Strict mode: the pin file pins another definition.
    DiffersFromPinFile,
    /// The state store could not check it (fail closed).
    Unavailable,
}

impl PinVerdict {
    /// Whether the tool is hidden and its calls refused.
    pub fn blocks(self) -> bool {
        matches!(
            self,
            PinVerdict::Changed
                | PinVerdict::ChangedInMemory
                | PinVerdict::NotInPinFile
                | PinVerdict::DiffersFromPinFile
                | PinVerdict::Unavailable
        )
    }

    /// Why a call to `tool` was refused, and what to do instead.
    pub fn refusal(self, tool: &str) -> Option<(String, &'static str)> {
        let why = match self {
            PinVerdict::Changed | PinVerdict::ChangedInMemory | PinVerdict::DiffersFromPinFile => {
                format!(
                    "`{tool}` was not called: its definition changed since it was approved (a tool's description, schema or annotations are not what warden pinned); an operator must review it"
                )
            }
            PinVerdict::NotInPinFile => format!(
                "`{tool}` was not called: the tool is not in warden's pin file (strict mode), so no operator has approved its definition"
            ),
            PinVerdict::Unavailable => format!(
                "`{tool}` was not called: state store unavailable: the tool's pinned definition could not be checked"
            ),
            PinVerdict::Unchecked | PinVerdict::Pinned => return None,
        };
        let instead = match self {
            PinVerdict::Unavailable => {
                "report this to the platform team; it is not caused by the agent"
            }
            PinVerdict::ChangedInMemory => {
                "do not retry; tell the person that an operator must review the tool: this warden keeps its pins in memory, so only a restart trusts the new definition (with --state, `warden tools diff` and `warden tools approve` review it)"
            }
            // Strict mode trusts the committed pin file alone.
            PinVerdict::NotInPinFile | PinVerdict::DiffersFromPinFile => {
                "do not retry; tell the person that an operator must review the tool and put its definition in warden's pin file"
            }
            _ => {
                "do not retry; tell the person that an operator must review the tool (`warden tools diff`, then `warden tools approve`)"
            }
        };
        Some((why, instead))
    }
}

impl ToolInfo {
    /// Reads a tool object of a tools/list result. Hints that are missing
    /// or not booleans stay unset: the engine reads them cautiously.
    pub fn from_tool(tool: &Value) -> ToolInfo {
        let ann = tool.get("annotations");
        let hint = |k: &str| ann.and_then(|a| a.get(k)).and_then(Value::as_bool);
        ToolInfo {
            annotations: ToolAnnotations {
                read_only_hint: hint("readOnlyHint"),
                destructive_hint: hint("destructiveHint"),
                idempotent_hint: hint("idempotentHint"),
                open_world_hint: hint("openWorldHint"),
            },
            has_output_schema: tool.get("outputSchema").is_some_and(|s| !s.is_null()),
            pin: PinVerdict::Unchecked,
        }
    }
}

/// The `_meta` provenance object of a forwarded call.
pub fn provenance(call: &CallContext, decided: &Decided) -> Value {
    let mut p = json!({
        "via_agent": call.provenance.via_agent,
        "server": call.server,
        "user": call.identity.user,
        "groups": call.identity.groups,
        "agent": call.identity.agent,
        "model": call.identity.model,
        "session": call.session,
        "policy_version": decided.policy_version,
        "decision_id": decided.id,
        "confirmed": call.confirmed,
    });
    // Only when something was verified (a bearer token on HTTP): which
    // identity attributes warden checked rather than took as declared.
    if !call.identity.verified.is_none() {
        p["verified"] = json!(call.identity.verified);
    }
    p
}

fn retry_value(retry: Retry) -> Value {
    serde_json::to_value(retry).unwrap_or(Value::Null)
}

fn retry_text(retry: Retry) -> String {
    match retry {
        Retry::Never => "retrying the same call will be denied again".to_string(),
        Retry::AfterSeconds { seconds } => format!(
            "retrying can succeed after {} ({seconds} s)",
            human_duration(seconds.max(1))
        ),
        // Not "a call the person confirms": while the cap holds, a call it
        // counts is refused before anyone is asked (finding 20).
        Retry::AfterStreakEnds => "retrying can succeed once the streak ends: after a call to a tool this limit does not count".to_string(),
        Retry::AtAnotherTime => "retrying now will be denied again; the rule depends on the time of day, so the same call can succeed at another time".to_string(),
        Retry::AfterApproval => "retrying the same call succeeds once the approval is given".to_string(),
    }
}

/// The machine-readable decision attached to a denial.
pub fn decision_value(decided: &Decided, denial: &Denial) -> Value {
    json!({
        "decision": "deny",
        "rules": denial.rules.iter().map(|h| h.rule.as_str()).collect::<Vec<_>>(),
        "reason": denial.reason,
        "retry": retry_value(denial.retry),
        "instead": denial.instead,
        "decision_id": decided.id,
        "policy_version": decided.policy_version,
    })
}

/// The `tools/call` result for a denied call: `isError: true`, a text the
/// agent can act on, and the decision under [`DECISION_KEY`] in `_meta`
/// (and in `structuredContent` unless the tool declares an output schema).
pub fn denial_result(decided: &Decided, denial: &Denial, tool: ToolInfo) -> Value {
    let rules = match denial.rules.as_slice() {
        [] => String::new(),
        [one] => format!(" (rule `{}`)", one.rule),
        many => format!(
            " (rules {})",
            many.iter()
                .map(|h| format!("`{}`", h.rule))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    // The engine's reasons already name the tool ("`x` was not called: ...").
    let text = format!(
        "Denied by warden policy{rules}: {}\nWhat to do instead: {}\nRetry: {}.\n(decision {})",
        denial.reason,
        denial.instead,
        retry_text(denial.retry),
        decided.id
    );
    let decision = decision_value(decided, denial);
    let mut result = Map::new();
    result.insert("content".into(), json!([{"type": "text", "text": text}]));
    if !tool.has_output_schema {
        result.insert(
            "structuredContent".into(),
            json!({ DECISION_KEY: decision }),
        );
    }
    result.insert("isError".into(), Value::Bool(true));
    result.insert("_meta".into(), json!({ DECISION_KEY: decision }));
    Value::Object(result)
}

/// A copy of `decided` turned into a denial (for confirmations the person
/// did not give, and for refusals the proxy adds), so the log shows what
/// the agent was told.
pub fn as_denial(decided: &Decided, denial: Denial) -> Decided {
    let mut d = decided.clone();
    d.outcome = Outcome::Deny(denial);
    d
}

/// The question put to the person for a confirmation; `decision_id` is
/// the decision log's id of the call, where the whole call can be read.
/// See [`crate::confirm_text`].
pub fn confirm_message(call: &CallContext, message: &str, decision_id: &str) -> String {
    crate::confirm_text::question(call, message, decision_id)
}

/// `elicitation/create` params for a confirmation: a form with no fields,
/// so accept means yes.
pub fn confirm_elicitation_params(message: String) -> Value {
    json!({
        "message": message,
        "requestedSchema": {"type": "object", "properties": {}},
    })
}

/// How a tool appears in the agent's tools/list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolView {
    /// No call of this tool could be allowed: the agent does not see it.
    Hidden { rule: Option<String> },
    /// Shown, with these notes appended to its description.
    Shown { notes: Vec<String> },
}

/// Decides how `probe.tool` appears, from a probe call with no arguments
/// and the rules that can match the tool. Conservative: a tool is hidden
/// only when every call of it in this session is certain to be denied,
/// i.e. the probe is denied for good (`retry: never`) and
///
/// - by an enforced `deny` rule that reads no argument (whatever the
///   arguments, it matches again: identity, provenance and annotations are
///   the same for every call of the session), or
/// - by no rule at all (nothing allows it) while no enforced `allow` rule
///   for the tool reads an argument (with other arguments none could
///   start to match).
///
/// "Reads an argument" counts every kind of argument read: comparisons,
/// `exists`, `matches`, and `created by agent` (the engine's
/// `created_args`), since with other arguments such a rule can match or
/// stop matching. Notes say what the engine will do: a `require-confirm`
/// rule that reads no argument and held for the probe needs the person for
/// every call that is allowed (also when the probe itself was denied for
/// want of an allow that reads arguments); one that reads arguments for
/// some calls.
pub fn tool_view(engine: &Engine, probe: &CallContext) -> ToolView {
    // A preview: probing a tool must not hold a slot a real call needs.
    let decided = engine.preview(probe);
    let bundle = engine.policies();
    let slice = bundle.slice(&probe.server, &probe.tool);
    let enforced: Vec<_> = slice
        .rules
        .iter()
        .map(|&i| &bundle.rules()[i])
        .filter(|r| r.mode == Mode::Enforce)
        .collect();
    if let Outcome::Deny(d) = &decided.outcome
        && d.retry == Retry::Never
    {
        if d.rules.is_empty() {
            let args_could_allow = enforced
                .iter()
                .any(|r| r.kind == RuleKind::Allow && reads_args(r));
            if !args_could_allow {
                return ToolView::Hidden { rule: None };
            }
        } else if let Some(hit) = d.rules.iter().find(|h| {
            h.kind == RuleKind::Deny
                && bundle
                    .rules()
                    .iter()
                    .find(|r| r.id == h.rule)
                    .is_some_and(|r| !reads_args(r))
        }) {
            return ToolView::Hidden {
                rule: Some(hit.rule.clone()),
            };
        }
    }
    // Require-confirm rules whose conditions held for the probe, whatever
    // its outcome (a probe without arguments is denied when the only allow
    // reads an argument, yet every call that allow lets through asks).
    let confirms_now: Vec<&str> = match &decided.outcome {
        Outcome::Confirm(c) => c.rules.iter().map(|h| h.rule.as_str()).collect(),
        _ => Vec::new(),
    };
    let held = |id: &str| confirms_now.contains(&id) || decided.restricting.iter().any(|r| r == id);
    let mut notes = Vec::new();
    for rule in &enforced {
        let id = &rule.id;
        match (rule.kind, rule.limit) {
            (RuleKind::RequireConfirm, _) => {
                // Four eyes: the approval is someone else's, not a yes of
                // the person in the chat.
                let whose = match rule.approval.as_ref().and_then(|a| a.approver.as_ref()) {
                    Some(by) => format!("the approval of {}", by.who()),
                    None => "the person's confirmation".to_string(),
                };
                if reads_args(rule) {
                    notes.push(format!("Some calls need {whose} (rule `{id}`)."));
                } else if held(id) {
                    notes.push(format!("Needs {whose} (rule `{id}`)."));
                }
            }
            (RuleKind::CapConsecutive, Some(l)) => notes.push(format!(
                "At most {} consecutive calls {} (rule `{id}`).",
                l.max,
                l.scope.phrase()
            )),
            (RuleKind::RateLimit, Some(l)) => notes.push(format!(
                "At most {} calls per {} {} (rule `{id}`).",
                l.max,
                human_duration(l.window_secs.unwrap_or(0)),
                l.scope.phrase()
            )),
            (RuleKind::Budget, Some(l)) => notes.push(format!(
                "At most {} of `{}` per {} {} (rule `{id}`).",
                warden_lang::amount::format_units(l.max),
                rule.budget.as_ref().map_or("?", |b| b.written.as_str()),
                human_duration(l.window_secs.unwrap_or(0)),
                l.scope.phrase()
            )),
            _ => {}
        }
    }
    ToolView::Shown { notes }
}

/// Whether a rule reads any argument of the call, `created by agent`
/// included.
fn reads_args(rule: &warden_lang::CompiledRule) -> bool {
    !rule.arg_fields.is_empty() || !rule.created_args.is_empty()
}

/// Appends notes to a tool's description.
pub fn annotate_description(tool: &mut Value, notes: &[String]) {
    if notes.is_empty() {
        return;
    }
    let Some(obj) = tool.as_object_mut() else {
        return;
    };
    let note = format!("{NOTE_PREFIX}{}", notes.join(" "));
    let text = match obj.get("description").and_then(Value::as_str) {
        Some(d) if !d.is_empty() => format!("{d}\n\n{note}"),
        _ => note,
    };
    obj.insert("description".into(), Value::String(text));
}

#[cfg(test)]
mod tests {
    use super::*;
    use warden_engine::{EngineOptions, Identity, PolicyBundle, Provenance};

    fn engine(policy: &str) -> Engine {
        let mut sources = warden_lang::Sources::new();
        sources.add("t.policy", policy);
        let out = warden_lang::compile_policy_set(&sources)
            .unwrap_or_else(|d| panic!("policy does not compile: {d:?}"));
        Engine::new(
            PolicyBundle::new(out.policy_set, "v".into()),
            EngineOptions::default(),
        )
    }

    fn probe(tool: &str) -> CallContext {
        CallContext {
            identity: Identity {
                user: "u".into(),
                agent: Some("a".into()),
                ..Identity::default()
            },
            session: "s".into(),
            provenance: Provenance {
                via_agent: true,
                via_server: Some("srv".into()),
            },
            server: "srv".into(),
            tool: tool.into(),
            arguments: json!({}),
            ..CallContext::default()
        }
    }

    fn view(policy: &str) -> ToolView {
        tool_view(&engine(policy), &probe("t"))
    }

    const RECORDS: &str = r#"
records sample {
  created by tool "create" at "/id"
}
"#;

    #[test]
    fn finding_19_a_tool_an_argument_read_can_allow_is_never_hidden() {
        // One allow per kind of argument read; with other arguments than
        // the probe's each can allow the call.
        for (kind, cond) in [
            ("string comparison", r#"args.x == "s""#),
            ("number comparison", "args.n > 3"),
            ("boolean", "args.b == true"),
            ("exists", "args.x exists"),
            ("matches", r#"args.x matches "a*""#),
            ("in a list", r#"args.x in ["a", "b"]"#),
            ("created by agent", "args.id created by agent as sample"),
            (
                "negated created by agent",
                "not args.id created by agent as sample",
            ),
        ] {
            let policy =
                format!("default deny\n{RECORDS}\nallow r {{\n  tool \"t\"\n  when {cond}\n}}\n");
            assert!(
                matches!(view(&policy), ToolView::Shown { .. }),
                "{kind}: an allow reading an argument hides the tool:\n{policy}"
            );
        }
    }

    #[test]
    fn finding_19_a_deny_reading_created_by_agent_does_not_hide() {
        // The genomics case: update only samples an agent created.
        let policy = format!(
            "default allow\n{RECORDS}\ndeny d {{\n  tool \"t\"\n  when not args.id created by agent as sample\n}}\n"
        );
        assert!(matches!(view(&policy), ToolView::Shown { .. }));
    }

    #[test]
    fn hiding_stays_for_calls_that_cannot_be_allowed() {
        assert!(matches!(
            view("default deny\nallow r {\n  tool \"other\"\n}\n"),
            ToolView::Hidden { rule: None }
        ));
        assert_eq!(
            view("default allow\ndeny d {\n  tool \"t\"\n  when via agent\n}\n"),
            ToolView::Hidden {
                rule: Some("d".into())
            }
        );
    }

    fn notes(policy: &str) -> Vec<String> {
        match view(policy) {
            ToolView::Shown { notes } => notes,
            hidden => panic!("hidden: {hidden:?}\n{policy}"),
        }
    }

    #[test]
    fn finding_27_confirmation_notes_match_the_engine_per_combination() {
        let needs = "Needs the person's confirmation (rule `c`).".to_string();
        let some = "Some calls need the person's confirmation (rule `c`).".to_string();
        let allow_plain = "allow a {\n  tool \"t\"\n}\n";
        let allow_args = "allow a {\n  tool \"t\"\n  when args.repo == \"r\"\n}\n";
        let confirm_plain = "require-confirm c {\n  tool \"t\"\n  when via agent\n}\n";
        let confirm_args = "require-confirm c {\n  tool \"t\"\n  when args.force == true\n}\n";
        let confirm_other_agent =
            "require-confirm c {\n  tool \"t\"\n  when agent == \"someone-else\"\n}\n";
        for (what, policy, want) in [
            (
                "allow, confirm",
                format!("default deny\n{allow_plain}{confirm_plain}"),
                vec![needs.clone()],
            ),
            // Finding 27: the allow reads an argument, the probe is denied,
            // yet every call the allow lets through asks.
            (
                "allow(args), confirm",
                format!("default deny\n{allow_args}{confirm_plain}"),
                vec![needs.clone()],
            ),
            (
                "allow, confirm(args)",
                format!("default deny\n{allow_plain}{confirm_args}"),
                vec![some.clone()],
            ),
            (
                "allow(args), confirm(args)",
                format!("default deny\n{allow_args}{confirm_args}"),
                vec![some.clone()],
            ),
            (
                "default allow, confirm",
                format!("default allow\n{confirm_plain}"),
                vec![needs.clone()],
            ),
            (
                "confirm for another agent",
                format!("default deny\n{allow_args}{confirm_other_agent}"),
                vec![],
            ),
        ] {
            assert_eq!(notes(&policy), want, "{what}:\n{policy}");
        }
    }

    #[test]
    fn a_rule_someone_else_approves_says_whose_approval_not_the_persons() {
        let policy = "default allow\nrequire-confirm c {\n  tool \"t\"\n  when args.big == true\n  by group \"lab-leads\"\n}\n";
        assert_eq!(
            notes(policy),
            vec![
                "Some calls need the approval of a member of group `lab-leads` (rule `c`)."
                    .to_string()
            ]
        );
        let policy = "default allow\nrequire-confirm c {\n  tool \"t\"\n  by user \"lena\"\n}\n";
        assert_eq!(
            notes(policy),
            vec!["Needs the approval of user `lena` (rule `c`).".to_string()]
        );
    }
}
