//! What the relay refuses to take at face value from either side: method
//! names that are governed ones in disguise, `tools/call` sent as a
//! notification (finding 9), calls that cannot be attributed to a named
//! server (finding 3), and messages that are JSON but that serde_json will
//! not decode (a number like `1e400`, nesting deeper than 128; finding 6).

use super::pending::{DownPending, Fwd, UpPending, UpWait};
use super::{Outgoing, Relay, lock};
use crate::bearer::Caller;
use crate::govern;
use crate::jsonrpc::{self, id_key};
use crate::raw;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use warden_engine::{Denial, Retry};

/// The answer to a request whose method is a governed one spelled
/// differently: refused, never relayed.
pub(super) fn disguised_method(id: Value, method: &str, governed: &str) -> Value {
    jsonrpc::error(
        id,
        METHOD_NOT_FOUND,
        format!(
            "warden refuses method `{}`: it differs from `{governed}` only in case or spacing, and warden relays only the exact `{governed}`",
            method.escape_default()
        ),
        Some(json!({"warden/refused": {"method": method, "governed": governed}})),
    )
}

/// JSON-RPC's "method not found" code.
const METHOD_NOT_FOUND: i64 = -32601;

impl Relay {
    /// The upstream's name in policies, when it is known: `--name`, or the
    /// `serverInfo.name` the upstream gave in its initialize answer.
    pub(super) fn known_server_name(&self) -> Option<String> {
        if let Some(n) = &self.cfg.server_name {
            return Some(n.clone());
        }
        lock(&self.st).server_info_name.clone()
    }

    /// The server a call is for. Without `--name` it is the name the
    /// upstream gave itself; while the client's initialize is on its way,
    /// the call waits for the answer (bounded by `internal_timeout`). A
    /// 2026-07-28 request (`msg`) has no initialize of the client's, so
    /// warden initializes the upstream itself to learn its name. `None`: no
    /// name, and none coming (a pre-2026-07-28 client sent no initialize,
    /// the upstream named no server, or it did not answer).
    pub(super) async fn attributed_server(&self, msg: &Value) -> Option<String> {
        if let Some(n) = &self.cfg.server_name {
            return Some(n.clone());
        }
        if self.req_ctx(msg).stateless {
            return self.learn_server_name().await;
        }
        let deadline = Instant::now() + self.cfg.internal_timeout;
        let mut named = self.named.subscribe();
        loop {
            {
                let st = lock(&self.st);
                if let Some(n) = &st.server_info_name {
                    return Some(n.clone());
                }
                if !st.pending.initializing() {
                    return None;
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            // The watch is bumped when the answer comes; the short wait is
            // only a backstop.
            let _ =
                tokio::time::timeout(left.min(Duration::from_millis(100)), named.changed()).await;
        }
    }

    /// Initializes the upstream on warden's own behalf (once; concurrent
    /// calls wait for the first) and keeps the `serverInfo.name` it gives.
    pub(super) async fn learn_server_name(&self) -> Option<String> {
        let _one_at_a_time = self.fetch_lock.lock().await;
        if let Some(n) = lock(&self.st).server_info_name.clone() {
            return Some(n);
        }
        let params = json!({
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "warden", "version": env!("CARGO_PKG_VERSION")},
        });
        let resp = match self.own_request("initialize", params, false).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!("cannot learn the upstream's name: {e}");
                return None;
            }
        };
        let name = resp
            .pointer("/result/serverInfo/name")
            .and_then(Value::as_str)
            .filter(|n| !n.trim().is_empty())?
            .to_string();
        self.notify_up(jsonrpc::notification("notifications/initialized", None))
            .await;
        let mut st = lock(&self.st);
        Some(st.server_info_name.get_or_insert(name).clone())
    }

    /// The error for a call no server name can be given to.
    pub(super) fn unattributed(&self, client_id: &Value) -> Value {
        {
            // An upstream that is down could not be asked: say that, not
            // that it has no name.
            let st = lock(&self.st);
            if !matches!(st.link, super::Link::Up { .. }) {
                return self.unavailable(client_id.clone(), &st);
            }
        }
        tracing::warn!(
            "tools/call {client_id} refused: the upstream has not named itself and warden runs without --name"
        );
        jsonrpc::error(
            client_id.clone(),
            jsonrpc::INVALID_REQUEST,
            "warden cannot tell which server this call is for: the upstream has not named itself (it answers `initialize` with its `serverInfo.name`, and this session has no answered initialize) and warden runs without `--name`. Send `initialize` first and wait for its answer, or ask the operator to start warden with `--name`",
            Some(json!({"warden/refused": {"reason": "unnamed_server"}})),
        )
    }

    /// A `tools/call` (or a disguised governed method) sent as a
    /// notification: no answer is possible, so it is never relayed. A
    /// tools/call one is decided as a call would be and logged as denied,
    /// so the decision log shows the attempt.
    pub(super) fn drop_governed_notification(
        &self,
        msg: &Value,
        method: &str,
        caller: Option<&Caller>,
    ) {
        tracing::warn!(
            "client sent `{}` as a notification (no id); dropped",
            method.escape_default()
        );
        if jsonrpc::loose_method(method) != "tools/call" {
            return;
        }
        let tool = msg
            .pointer("/params/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let server = self
            .known_server_name()
            .unwrap_or_else(|| self.cfg.upstream.default_name());
        let ctx = self.req_ctx(msg);
        let mut call = self.call_template(&server, ctx.agent, caller);
        call.tool = tool.clone();
        call.arguments = msg
            .pointer("/params/arguments")
            .cloned()
            .unwrap_or_else(|| json!({}));
        // Never forwarded, so it holds no slot of a cap or rate.
        let decided = self.engine.preview(&call);
        let denial = Denial {
            rules: Vec::new(),
            reason: format!(
                "`{tool}` was not called: a `tools/call` without an id (a notification) cannot be answered, so warden never forwards one"
            ),
            retry: Retry::Never,
            instead: "send tools/call as a request, with an id".to_string(),
        };
        self.audit(&call, &govern::as_denial(&decided, denial), None);
    }

    /// A client message that is no JSON serde_json decodes. A response to
    /// an upstream request that is still JSON (only too deep, or with a
    /// number out of `f64`'s range) goes to the upstream as it came; else
    /// the client gets a parse error, with the message's id when one can
    /// be read from it.
    pub(super) async fn client_unreadable(&self, bytes: &[u8], e: serde_json::Error) {
        tracing::warn!("client sent JSON warden cannot decode: {e}");
        let envelope = std::str::from_utf8(bytes).ok().and_then(raw::envelope);
        if let Some(env) = &envelope
            && env.is_response()
            && let Some(id) = env.id()
        {
            let pending = lock(&self.st).pending.take_down(&id_key(&id));
            match pending {
                // Warden cannot strip its reserved `_meta` keys from text it
                // cannot decode: an answer that might hold one (or hide one
                // behind a `\u` escape) is refused, not relayed (finding 14).
                Some(DownPending::Forward { up_id, epoch }) if may_hold_reserved_key(bytes) => {
                    tracing::warn!(
                        "the client's undecodable answer may carry a reserved `_meta` key; refused"
                    );
                    let refusal = jsonrpc::error(
                        up_id,
                        jsonrpc::PARSE_ERROR,
                        "the client's answer could not be decoded by warden and was not relayed"
                            .to_string(),
                        None,
                    );
                    let tx = Self::up_sender(&lock(&self.st), true);
                    if let Some((tx, g)) = tx
                        && g == epoch
                    {
                        let _ = tx.send(refusal.to_string()).await;
                    }
                    return;
                }
                Some(DownPending::Forward { up_id, epoch }) => {
                    let text = env.with_id(&up_id);
                    let tx = Self::up_sender(&lock(&self.st), true);
                    if let Some((tx, g)) = tx
                        && g == epoch
                    {
                        let _ = tx.send(text).await;
                    }
                    return;
                }
                Some(DownPending::Own(tx)) => {
                    let _ = tx.send(jsonrpc::error(
                        id,
                        jsonrpc::PARSE_ERROR,
                        format!("the client's answer could not be decoded: {e}"),
                        None,
                    ));
                    return;
                }
                None => {}
            }
        }
        let id = envelope
            .as_ref()
            .and_then(raw::Envelope::id)
            .unwrap_or(Value::Null);
        self.send_client(jsonrpc::error(
            id,
            jsonrpc::PARSE_ERROR,
            format!("parse error: {e}"),
            None,
        ))
        .await;
    }

    /// An upstream message that is no JSON serde_json decodes. When it is
    /// still JSON and answers a pending request, that request is answered
    /// at once instead of waiting out its timeout: a relayed request gets
    /// the answer as it came (only its id changed), a governed call or
    /// warden's own request an error saying why (warden must read those
    /// answers and cannot).
    pub(super) async fn upstream_unreadable(&self, bytes: &[u8], e: serde_json::Error) {
        let text = std::str::from_utf8(bytes).ok();
        let envelope = text.and_then(raw::envelope);
        let Some(env) = envelope.filter(raw::Envelope::is_response) else {
            tracing::warn!(
                "upstream sent invalid JSON ({e}): {}",
                super::clip(&String::from_utf8_lossy(bytes), 200)
            );
            return;
        };
        let Some(id) = env.id() else {
            tracing::warn!(
                "upstream sent an answer warden cannot decode ({e}), without a usable id; dropped"
            );
            return;
        };
        tracing::warn!("upstream answered request {id} with JSON warden cannot decode ({e})");
        let pending = lock(&self.st).pending.remove_up(&id_key(&id));
        let server = self.server_name();
        let message = format!(
            "the answer of upstream MCP server `{server}` could not be decoded by warden ({e}); it was not relayed. The request may have taken effect."
        );
        let data = json!({"warden/upstream": {"state": "undecodable", "server": server}});
        match pending.map(UpPending::into_wait) {
            Some(UpWait::Forward { client_id, kind }) => {
                lock(&self.st).pending.remove_client(&id_key(&client_id));
                if matches!(kind, Fwd::Plain) {
                    let out = Outgoing {
                        text: env.with_id(&client_id),
                        related: Some(client_id),
                        response: true,
                        detach: false,
                    };
                    let _ = self.to_client.send(out).await;
                } else {
                    if matches!(kind, Fwd::Initialize) {
                        self.named.send_modify(|n| *n += 1);
                    }
                    self.send_client(jsonrpc::error(
                        client_id,
                        jsonrpc::INTERNAL_ERROR,
                        message,
                        Some(data),
                    ))
                    .await;
                }
            }
            Some(UpWait::Own(tx)) => {
                let _ = tx.send(Ok(jsonrpc::error(
                    id,
                    jsonrpc::INTERNAL_ERROR,
                    message,
                    Some(data),
                )
                .into()));
            }
            None => tracing::debug!("nobody waits for request {id}; dropped"),
        }
    }
}

/// Whether undecoded message text could hold one of warden's reserved
/// `_meta` keys: a prefix in any ASCII case, or any `\u` escape (which
/// could spell one).
fn may_hold_reserved_key(bytes: &[u8]) -> bool {
    let text = String::from_utf8_lossy(bytes).to_ascii_lowercase();
    text.contains("\\u")
        || crate::govern::RESERVED_META_PREFIXES
            .iter()
            .any(|p| text.contains(&p.to_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::may_hold_reserved_key;

    #[test]
    fn finding_14_undecodable_answers_that_may_hold_a_reserved_key_are_caught() {
        let deep = format!("{}1e400{}", "[".repeat(200), "]".repeat(200));
        assert!(
            !may_hold_reserved_key(deep.as_bytes()),
            "plain deep JSON passes"
        );
        for hostile in [
            r#"{"result":{"_meta":{"io.warden/provenance":{}},"n":1e400}}"#,
            r#"{"result":{"_meta":{"IO.WARDEN/provenance":{}},"n":1e400}}"#,
            r#"{"result":{"_meta":{"Warden/decision":{}},"n":1e400}}"#,
            r#"{"result":{"_meta":{"io.w\u0061rden/provenance":{}},"n":1e400}}"#,
        ] {
            assert!(may_hold_reserved_key(hostile.as_bytes()), "{hostile}");
        }
    }
}
