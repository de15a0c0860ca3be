//! Who calls, as the relay sees it: what the client said in its
//! initialize (`ClientSession`, before 2026-07-28; also what a restarted
//! upstream is replayed), the per-request view of the caller (`ReqCtx`:
//! from a 2026-07-28 request's `_meta`, else from the session), and the
//! engine's `CallContext` a call is decided in, before the tool is known.

use super::{Relay, lock};
use crate::bearer::Caller;
use crate::jsonrpc;
use serde_json::{Map, Value, json};
use std::collections::BTreeSet;
use warden_engine::{CallContext, Identity, Provenance};

const PROTOCOL_VERSION_META: &str = "io.modelcontextprotocol/protocolVersion";
const CLIENT_INFO_META: &str = "io.modelcontextprotocol/clientInfo";
const CLIENT_CAPABILITIES_META: &str = "io.modelcontextprotocol/clientCapabilities";
/// Protocol versions from this one on have no initialize and carry the
/// client's identity and capabilities in every request's `_meta`.
const STATELESS_PROTOCOL: &str = "2026-07-28";

/// What the client said in initialize (protocol versions before 2026-07-28).
#[derive(Default)]
pub(super) struct ClientSession {
    /// The initialize params, replayed to a restarted upstream.
    pub(super) init_params: Option<Value>,
    pub(super) initialized: bool,
    pub(super) agent: Option<String>,
    pub(super) elicitation_form: bool,
    /// The client declared URL-mode elicitation (2025-11-25).
    pub(super) elicitation_url: bool,
    pub(super) log_level: Option<Value>,
    pub(super) subscriptions: BTreeSet<String>,
}

/// The per-request view of who calls and what the client can do.
#[derive(Debug, Clone, Default)]
pub(super) struct ReqCtx {
    pub(super) stateless: bool,
    pub(super) agent: Option<String>,
    pub(super) elicitation_form: bool,
    /// URL-mode elicitation (a session holds the call for it; a 2026-07-28
    /// request gets it as an `input_required`).
    pub(super) elicitation_url: bool,
    /// The `io.modelcontextprotocol/*` keys of the request's `_meta`, for
    /// warden's own requests on its behalf (2026-07-28 needs them).
    pub(super) mcp_meta: Map<String, Value>,
}

/// Whether client capabilities `caps` declare URL-mode elicitation
/// (`elicitation: {url: {}}`, 2025-11-25).
pub(super) fn elicitation_supports_url(caps: Option<&Value>) -> bool {
    caps.and_then(|c| c.get("elicitation"))
        .and_then(Value::as_object)
        .is_some_and(|e| e.contains_key("url"))
}

/// Whether client capabilities `caps` let warden ask the person with an
/// elicitation form.
pub(super) fn elicitation_supports_form(caps: Option<&Value>) -> bool {
    match caps.and_then(|c| c.get("elicitation")) {
        Some(Value::Object(e)) => {
            // 2025-06-18: `{}`. 2025-11-25: `{form?, url?}`, `{}` meaning form.
            e.contains_key("form") || !e.contains_key("url")
        }
        _ => false,
    }
}

impl Relay {
    /// Who calls and what the client can do, for the request `msg`: a
    /// 2026-07-28 request says it in its `_meta`, an earlier one said it in
    /// the session's initialize.
    pub(super) fn req_ctx(&self, msg: &Value) -> ReqCtx {
        let meta = jsonrpc::meta(msg);
        let stateless = meta
            .and_then(|m| m.get(PROTOCOL_VERSION_META))
            .and_then(Value::as_str)
            .is_some_and(|v| v >= STATELESS_PROTOCOL);
        if stateless {
            let meta = meta.cloned().unwrap_or_default();
            ReqCtx {
                stateless,
                agent: meta
                    .get(CLIENT_INFO_META)
                    .and_then(|i| i.get("name"))
                    .and_then(Value::as_str)
                    .map(str::to_string),
                elicitation_form: elicitation_supports_form(meta.get(CLIENT_CAPABILITIES_META)),
                elicitation_url: elicitation_supports_url(meta.get(CLIENT_CAPABILITIES_META)),
                mcp_meta: meta
                    .into_iter()
                    .filter(|(k, _)| k.starts_with("io.modelcontextprotocol/"))
                    .collect(),
            }
        } else {
            let st = lock(&self.st);
            ReqCtx {
                stateless,
                agent: st.session.agent.clone(),
                elicitation_form: st.session.elicitation_form,
                elicitation_url: st.session.elicitation_url,
                mcp_meta: Map::new(),
            }
        }
    }

    /// A call's context before the tool is known. `caller`: the identity a
    /// verified bearer token gave (HTTP); its attributes win over the
    /// operator's flags and the client's declared agent.
    pub(super) fn call_template(
        &self,
        server: &str,
        agent: Option<String>,
        caller: Option<&Caller>,
    ) -> CallContext {
        let agent = Some(agent.unwrap_or_else(|| "unknown".to_string()));
        let identity = match caller {
            Some(c) => c.identity(&self.cfg.groups, self.cfg.model.as_deref(), agent),
            None => Identity {
                user: self.cfg.user.clone(),
                groups: self.cfg.groups.clone(),
                agent,
                model: self.cfg.model.clone(),
                ..Identity::default()
            },
        };
        CallContext {
            identity,
            session: self.session_id.clone(),
            provenance: Provenance {
                via_agent: true,
                via_server: Some(server.to_string()),
            },
            server: server.to_string(),
            tool: String::new(),
            annotations: Default::default(),
            arguments: json!({}),
            confirmed: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::elicitation_supports_form;
    use serde_json::json;

    #[test]
    fn elicitation_form_support_by_protocol_version() {
        assert!(elicitation_supports_form(Some(&json!({"elicitation": {}}))));
        assert!(elicitation_supports_form(Some(
            &json!({"elicitation": {"form": {}, "url": {}}})
        )));
        assert!(!elicitation_supports_form(Some(
            &json!({"elicitation": {"url": {}}})
        )));
        assert!(!elicitation_supports_form(Some(
            &json!({"elicitation": true})
        )));
        assert!(!elicitation_supports_form(Some(&json!({}))));
        assert!(!elicitation_supports_form(None));
    }
}
