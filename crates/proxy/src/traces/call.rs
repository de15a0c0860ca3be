//! The spans of one governed call: the call's SERVER span (continuing the
//! client's trace), and its children: each decision, the wait for the
//! person's confirmation, and the upstream call (a CLIENT span whose
//! context goes upstream). A [`CallTrace`] made while traces are off does
//! nothing, so the relay calls it the same way either way.

use super::Traces;
use super::context::{META_TRACEPARENT, META_TRACESTATE, pairs_of, parent_of};
use crate::jsonrpc;
use crate::raw::Message;
use opentelemetry::trace::{Span as _, SpanKind, Status, TraceContextExt, Tracer as _};
use opentelemetry::{Context, Key, KeyValue, StringValue, Value};
use serde_json::Value as JsonValue;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;
use warden_engine::{CallContext, Decided, Outcome, UpstreamOutcome};

/// The longest tool name put on a span (a client chooses it).
const MAX_TOOL_CHARS: usize = 200;

/// The spans of one governed call.
#[derive(Default)]
pub(crate) struct CallTrace {
    on: Option<On>,
}

struct On {
    traces: Arc<Traces>,
    /// The call's own span, as the parent of the others.
    cx: Context,
    /// What goes on the call's span when it ends, by key: a later value
    /// (the decision after a confirmation) replaces an earlier one, which
    /// the SDK's `set_attribute` would keep as a duplicate.
    attributes: Mutex<BTreeMap<Key, Value>>,
}

impl On {
    fn set(&self, kv: KeyValue) {
        self.attributes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(kv.key, kv.value);
    }
}

impl Traces {
    /// Starts the span of a `tools/call` (`msg`) that came with
    /// `client_id` in session `session`, continuing the trace in its
    /// `_meta` if it carries a valid one.
    pub(crate) fn start_call(self: &Arc<Self>, msg: &JsonValue, session: &str) -> CallTrace {
        let parent = parent_of(jsonrpc::meta(msg));
        let mut attributes = vec![
            KeyValue::new("mcp.method.name", "tools/call"),
            KeyValue::new("gen_ai.operation.name", "execute_tool"),
            KeyValue::new("warden.session", session.to_string()),
        ];
        if let Some(id) = msg.get("id") {
            attributes.push(KeyValue::new("jsonrpc.request.id", id_text(id)));
        }
        if let Some(tool) = msg.pointer("/params/name").and_then(JsonValue::as_str) {
            attributes.push(KeyValue::new("gen_ai.tool.name", clip(tool)));
        }
        let span = self
            .tracer
            .span_builder("tools/call")
            .with_kind(SpanKind::Server)
            .with_attributes(attributes)
            .start_with_context(&self.tracer, &parent);
        CallTrace {
            on: Some(On {
                traces: Arc::clone(self),
                cx: parent.with_span(span),
                attributes: Mutex::default(),
            }),
        }
    }
}

impl CallTrace {
    /// Whether spans are being recorded for this call.
    fn recording(&self) -> Option<&On> {
        self.on.as_ref().filter(|on| on.cx.span().is_recording())
    }

    /// The argument names whose values go on the span (none while off).
    pub(crate) fn argument_names(&self) -> &[String] {
        match self.recording() {
            Some(on) => &on.traces.arguments,
            None => &[],
        }
    }

    /// The configured arguments' values, as the decision log writes them
    /// (`logged`: the call's arguments redacted and bounded).
    pub(crate) fn arguments(&self, logged: &JsonValue) {
        let Some(on) = self.recording() else { return };
        for name in &on.traces.arguments {
            if let Some(v) = logged.get(name) {
                on.set(KeyValue::new(
                    format!("warden.argument.{name}"),
                    v.to_string(),
                ));
            }
        }
    }

    /// One decision, from `started` (before the decide lock) to now: a
    /// child span, and what was decided on the call's span (a later
    /// decision, after a confirmation, overwrites it). `listed`: whether
    /// the upstream's catalog lists the tool, so that it may name the span
    /// (asked only while recording).
    pub(crate) fn decided(
        &self,
        started: SystemTime,
        call: &CallContext,
        decided: &Decided,
        listed: impl FnOnce() -> bool,
        shadow_all: bool,
    ) {
        let Some(on) = self.recording() else { return };
        let (outcome, rules) = match &decided.outcome {
            Outcome::Allow { rules } => ("allow", rules.clone()),
            Outcome::Deny(d) => ("deny", d.rules.iter().map(|h| h.rule.clone()).collect()),
            Outcome::Confirm(c) => ("confirm", c.rules.iter().map(|h| h.rule.clone()).collect()),
        };
        let mut attributes = vec![
            KeyValue::new("warden.outcome", outcome),
            KeyValue::new(
                "warden.rule",
                rules
                    .first()
                    .cloned()
                    .unwrap_or_else(|| crate::metrics::NO_RULE.to_string()),
            ),
            KeyValue::new("warden.rules", string_array(rules)),
            KeyValue::new("warden.decision_id", decided.id.clone()),
            KeyValue::new("warden.policy_version", decided.policy_version.clone()),
            KeyValue::new("warden.mode", if shadow_all { "shadow" } else { "enforce" }),
            KeyValue::new("warden.server", call.server.clone()),
        ];
        if !decided.grants.is_empty() {
            attributes.push(KeyValue::new(
                "warden.grants",
                string_array(decided.grants.iter().map(|g| g.grant.clone()).collect()),
            ));
        }
        if !decided.shadow.is_empty() {
            attributes.push(KeyValue::new(
                "warden.shadow_rules",
                string_array(decided.shadow.iter().map(|f| f.rule.clone()).collect()),
            ));
        }
        let mut span = on
            .traces
            .tracer
            .span_builder("warden.decide")
            .with_kind(SpanKind::Internal)
            .with_start_time(started)
            .with_attributes(attributes.clone())
            .start_with_context(&on.traces.tracer, &on.cx);
        span.end();
        for kv in attributes {
            on.set(kv);
        }
        if listed() {
            on.cx
                .span()
                .update_name(format!("tools/call {}", clip(&call.tool)));
        }
    }

    /// The person is being asked: a child span until [`ConfirmSpan::end`].
    pub(crate) fn confirmation_wait(&self) -> ConfirmSpan {
        let Some(on) = self.recording() else {
            return ConfirmSpan { span: None };
        };
        let span = on
            .traces
            .tracer
            .span_builder("warden.confirmation")
            .with_kind(SpanKind::Internal)
            .start_with_context(&on.traces.tracer, &on.cx);
        ConfirmSpan {
            span: Some(on.cx.with_span(span)),
        }
    }

    /// How the confirmation went (`asked`, `accepted`, ...), on the call's
    /// span.
    pub(crate) fn confirmation(&self, outcome: &'static str) {
        if let Some(on) = self.recording() {
            on.set(KeyValue::new("warden.confirmation", outcome));
        }
    }

    /// The upstream call begins: a CLIENT span, whose context replaces the
    /// client's in `msg`'s `_meta` (so the upstream's spans hang under
    /// warden's). While off, `msg` keeps what the client sent.
    pub(crate) fn upstream(&self, msg: &mut Message, tool: &str, listed: bool) -> UpstreamSpan {
        let Some(on) = &self.on else {
            return UpstreamSpan { cx: None };
        };
        let name = if listed {
            format!("tools/call {}", clip(tool))
        } else {
            "tools/call".to_string()
        };
        let span = on
            .traces
            .tracer
            .span_builder(name)
            .with_kind(SpanKind::Client)
            .with_attributes([
                KeyValue::new("mcp.method.name", "tools/call"),
                KeyValue::new("gen_ai.tool.name", clip(tool)),
            ])
            .start_with_context(&on.traces.tracer, &on.cx);
        let cx = on.cx.with_span(span);
        if let Some(meta) = jsonrpc::meta_mut(msg.edit(&[
            &["params", "_meta", META_TRACEPARENT],
            &["params", "_meta", META_TRACESTATE],
        ])) {
            meta.remove(META_TRACESTATE);
            for (key, value) in pairs_of(&cx) {
                meta.insert(key.to_string(), JsonValue::String(value));
            }
        }
        UpstreamSpan { cx: Some(cx) }
    }

    /// The call is answered (`reply`), or was cancelled by the client
    /// (`None`): its span ends, an error answer marked as one.
    pub(crate) fn finish(self, reply: Option<&JsonValue>) {
        let Some(on) = self.on else { return };
        let span = on.cx.span();
        match reply {
            None => on.set(KeyValue::new("warden.cancelled", true)),
            Some(r) => {
                if let Some(e) = r.get("error") {
                    let code = e.get("code").map(JsonValue::to_string).unwrap_or_default();
                    on.set(KeyValue::new("error.type", code));
                    let message = e.get("message").and_then(JsonValue::as_str).unwrap_or("");
                    span.set_status(Status::error(message.to_string()));
                }
            }
        }
        let attributes =
            std::mem::take(&mut *on.attributes.lock().unwrap_or_else(|p| p.into_inner()));
        span.set_attributes(attributes.into_iter().map(|(k, v)| KeyValue::new(k, v)));
        span.end();
    }
}

/// The span of the wait for a confirmation.
pub(crate) struct ConfirmSpan {
    span: Option<Context>,
}

impl ConfirmSpan {
    /// The wait is over: how it ended (`accepted`, `declined`, ...).
    pub(crate) fn end(self, outcome: &'static str) {
        if let Some(cx) = self.span {
            let span = cx.span();
            span.set_attribute(KeyValue::new("warden.confirmation", outcome));
            span.end();
        }
    }
}

/// The span of the upstream call.
pub(crate) struct UpstreamSpan {
    cx: Option<Context>,
}

impl UpstreamSpan {
    /// No span (traces off, or the span already taken).
    pub(crate) fn none() -> Self {
        UpstreamSpan { cx: None }
    }

    /// The upstream answered (or did not): the span ends, a failure marked
    /// as an error on it and on the call's span (`tool_error`: the tool's
    /// result says `isError`, MCP's `error.type` "tool_error").
    pub(crate) fn end(self, outcome: &UpstreamOutcome, tool_error: bool, call: &CallTrace) {
        let Some(cx) = self.cx else { return };
        let span = cx.span();
        if !outcome.ok {
            let why = outcome.error.clone().unwrap_or_default();
            let kind = if tool_error {
                "tool_error"
            } else {
                "upstream_error"
            };
            span.set_attribute(KeyValue::new("error.type", kind));
            span.set_status(Status::error(why.clone()));
            if let Some(on) = &call.on {
                on.set(KeyValue::new("error.type", kind));
                on.cx.span().set_status(Status::error(why));
            }
        }
        span.end();
    }
}

/// A JSON-RPC id as span text: a string as it is, a number as written.
fn id_text(id: &JsonValue) -> String {
    match id {
        JsonValue::String(s) => clip(s),
        other => other.to_string(),
    }
}

fn clip(s: &str) -> String {
    s.chars().take(MAX_TOOL_CHARS).collect()
}

fn string_array(items: Vec<String>) -> Value {
    Value::Array(opentelemetry::Array::String(
        items.into_iter().map(StringValue::from).collect(),
    ))
}
