//! What keeps one 2026-07-28 (sessionless) HTTP request apart from every
//! other caller's, on the relay they all share.
//!
//! Sessionless requests from every client go through one relay, so nothing
//! a request leaves in it may be reachable by another caller. This module
//! owns the rules the HTTP server applies before a sessionless message
//! reaches that relay:
//!
//! - [`check_versions`]: a request is sessionless only when it says so in
//!   both places the 2026-07-28 transport puts the version, the
//!   `MCP-Protocol-Version` header and `_meta["io.modelcontextprotocol/
//!   protocolVersion"]`, and they agree. A header without the `_meta`
//!   version is answered 400 with -32602 (the request lacks required
//!   metadata), a `_meta` version without the header or with a different
//!   one 400 with -32020 (header mismatch), as the 2026-07-28 transport
//!   says. So a request is never decided with another client's
//!   `initialize` (agent name, elicitation support): there is no such
//!   fallback to reach. An `initialize` carrying a 2026-07-28 header is
//!   refused as the removed method it is there (404, -32601, as SEP-2575
//!   says): it would set up a session that does not exist.
//! - [`check_standard_headers`]: `Mcp-Method` and `Mcp-Name` (SEP-2243),
//!   when sent, must match the body (one value each); else 400 with
//!   -32020. Warden never passes them on: toward an HTTP upstream it sets
//!   them itself from the body it decided (`http_upstream`).
//! - [`fresh_id`] and [`fresh_progress_token`]: each request goes to the
//!   relay under an id and a progress token warden drew at random for it,
//!   and restored toward its client. Another caller can neither guess them
//!   nor collide with them, so it cannot cancel the request or read its
//!   progress.
//! - [`Owner`]: who may act on something a request started (answer a
//!   question sent on its stream, cancel it by id): the bearer principal
//!   that sent it. Without bearer auth a sessionless request has no owner
//!   that a later POST could prove to be, so only its own stream acts on
//!   it (closing the stream cancels it; questions are asked in the result,
//!   `input_required`, with an unguessable `requestState`).

use crate::bearer::Caller;
use crate::jsonrpc::{self, Kind};
use serde_json::Value;

const PROTOCOL_HEADER: &str = "mcp-protocol-version";
const PROTOCOL_VERSION_META: &str = "io.modelcontextprotocol/protocolVersion";
/// The first protocol version without sessions.
pub(crate) const STATELESS_PROTOCOL: &str = "2026-07-28";
/// JSON-RPC error of the 2026-07-28 transport: a header contradicts the
/// body (SEP-2243).
pub(crate) const HEADER_MISMATCH: i64 = -32020;

/// A refusal: the JSON-RPC code and the message (always HTTP 400).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub(crate) code: i64,
    pub(crate) message: String,
}

impl Refusal {
    fn new(code: i64, message: impl Into<String>) -> Self {
        Refusal {
            code,
            message: message.into(),
        }
    }
}

/// The single `MCP-Protocol-Version` header, if any; `Err` when it is
/// repeated or not text.
fn header_version(headers: &axum::http::HeaderMap) -> Result<Option<&str>, Refusal> {
    single(headers, PROTOCOL_HEADER)
}

fn single<'a>(headers: &'a axum::http::HeaderMap, name: &str) -> Result<Option<&'a str>, Refusal> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(Refusal::new(
            HEADER_MISMATCH,
            format!("header mismatch: more than one `{name}` header"),
        ));
    }
    first.to_str().map(Some).map_err(|_| {
        Refusal::new(
            HEADER_MISMATCH,
            format!("header mismatch: the `{name}` header is not visible ASCII"),
        )
    })
}

fn meta_version(msg: &Value) -> Option<&str> {
    jsonrpc::meta(msg)
        .and_then(|m| m.get(PROTOCOL_VERSION_META))
        .and_then(Value::as_str)
}

/// Whether the message is for the sessionless transport: the header or the
/// `_meta` version names 2026-07-28 or later. [`check_versions`] then
/// insists on both.
pub(crate) fn is_stateless(headers: &axum::http::HeaderMap, msg: &Value) -> bool {
    let modern = |v: &str| v >= STATELESS_PROTOCOL;
    headers
        .get_all(PROTOCOL_HEADER)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(modern)
        || meta_version(msg).is_some_and(modern)
}

/// The version rules for a sessionless message (see the module docs).
/// Notifications and responses carry no `_meta` version; only their header
/// must be well formed.
pub(crate) fn check_versions(
    headers: &axum::http::HeaderMap,
    msg: &Value,
    kind: &Kind,
) -> Result<(), Refusal> {
    let header = header_version(headers)?;
    let Kind::Request { method, .. } = kind else {
        return Ok(());
    };
    if method == "initialize" {
        // SEP-2575: `initialize` is a removed method in 2026-07-28, answered
        // as an unknown method (404, -32601), never a session to join.
        return Err(Refusal::new(
            jsonrpc::METHOD_NOT_FOUND,
            format!(
                "method not found: `initialize` with `MCP-Protocol-Version: {}` starts no session; send it without that header to start a session, or send 2026-07-28 requests (`server/discover`, ...) without initializing",
                header.unwrap_or(STATELESS_PROTOCOL)
            ),
        ));
    }
    match (header, meta_version(msg)) {
        (Some(h), Some(m)) if h == m => Ok(()),
        (Some(h), Some(m)) => Err(Refusal::new(
            HEADER_MISMATCH,
            format!(
                "header mismatch: `MCP-Protocol-Version: {h}` does not match the request's `_meta` protocolVersion `{m}`"
            ),
        )),
        (None, Some(m)) => Err(Refusal::new(
            HEADER_MISMATCH,
            format!(
                "header mismatch: the request's `_meta` protocolVersion is `{m}` but it has no `MCP-Protocol-Version` header"
            ),
        )),
        (Some(h), None) => Err(Refusal::new(
            jsonrpc::INVALID_PARAMS,
            format!(
                "invalid params: a `MCP-Protocol-Version: {h}` request must carry `_meta[\"{PROTOCOL_VERSION_META}\"]` (2026-07-28 requests have no session to fall back on)"
            ),
        )),
        (None, None) => Ok(()),
    }
}

/// Which params field a method's `Mcp-Name` header repeats (SEP-2243).
fn name_field(method: &str) -> Option<&'static str> {
    match method {
        "tools/call" | "prompts/get" => Some("name"),
        "resources/read" | "resources/subscribe" | "resources/unsubscribe" => Some("uri"),
        "tasks/get" | "tasks/update" | "tasks/cancel" | "tasks/result" => Some("taskId"),
        _ => None,
    }
}

/// A header value in SEP-2243's encoding: as is, or `=?base64?...?=`.
fn decode_header_text(raw: &str) -> Option<String> {
    match raw
        .strip_prefix("=?base64?")
        .and_then(|r| r.strip_suffix("?="))
    {
        Some(b64) => base64_decode(b64).and_then(|bytes| String::from_utf8(bytes).ok()),
        None => Some(raw.to_string()),
    }
}

/// Standard base64 (RFC 4648 section 4, padding optional); `None` when not
/// base64.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let digit = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let body = text.trim_end_matches('=');
    if text.len() - body.len() > 2 || body.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(body.len() * 3 / 4);
    for chunk in body.as_bytes().chunks(4) {
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            n |= digit(*c)? << (18 - 6 * i);
        }
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Some(out)
}

/// `Mcp-Method` and `Mcp-Name`, when the client sent them, must say what
/// the body says: a backend or gateway routing by header must never see a
/// call warden did not decide.
pub(crate) fn check_standard_headers(
    headers: &axum::http::HeaderMap,
    msg: &Value,
) -> Result<(), Refusal> {
    let Some(method) = msg.get("method").and_then(Value::as_str) else {
        return Ok(());
    };
    if let Some(h) = single(headers, "mcp-method")?
        && h != method
    {
        return Err(Refusal::new(
            HEADER_MISMATCH,
            format!(
                "header mismatch: `Mcp-Method: {h}` does not match the body's method `{method}`"
            ),
        ));
    }
    let Some(raw) = single(headers, "mcp-name")? else {
        return Ok(());
    };
    let body = name_field(method)
        .and_then(|f| msg.get("params").and_then(|p| p.get(f)))
        .and_then(Value::as_str);
    let decoded = decode_header_text(raw);
    match (decoded, body) {
        (Some(d), Some(b)) if d == b => Ok(()),
        (Some(d), Some(b)) => Err(Refusal::new(
            HEADER_MISMATCH,
            format!("header mismatch: `Mcp-Name: {d}` does not match the body's `{b}`"),
        )),
        (None, _) => Err(Refusal::new(
            HEADER_MISMATCH,
            "header mismatch: the `Mcp-Name` header is not valid `=?base64?...?=` text",
        )),
        (Some(d), None) => Err(Refusal::new(
            HEADER_MISMATCH,
            format!("header mismatch: `Mcp-Name: {d}` names nothing in a `{method}` body"),
        )),
    }
}

/// The id a sessionless request goes to the relay with: random, so that no
/// other caller can name it.
pub(crate) fn fresh_id() -> Value {
    Value::String(format!("http:{}", uuid::Uuid::new_v4().simple()))
}

/// The progress token a sessionless request goes to the relay with.
pub(crate) fn fresh_progress_token() -> Value {
    Value::String(format!("http-progress:{}", uuid::Uuid::new_v4().simple()))
}

/// Who may act later on what a sessionless request started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Owner {
    /// The bearer principal (the token's user) that sent it.
    Principal(String),
    /// No bearer auth: nobody but the request's own stream.
    Nobody,
}

impl Owner {
    pub(crate) fn of(caller: Option<&Caller>) -> Owner {
        match caller {
            Some(c) => Owner::Principal(c.user.clone()),
            None => Owner::Nobody,
        }
    }

    /// Whether `caller` may act on something this owner's request started.
    pub(crate) fn admits(&self, caller: Option<&Caller>) -> bool {
        match (self, caller) {
            (Owner::Principal(user), Some(c)) => &c.user == user,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderMap, HeaderValue};
    use serde_json::json;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    fn request(meta_version: Option<&str>) -> (Value, Kind) {
        let mut msg = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "list_samples", "arguments": {}}});
        if let Some(v) = meta_version {
            msg["params"]["_meta"] = json!({PROTOCOL_VERSION_META: v});
        }
        let kind = jsonrpc::classify(&msg).unwrap();
        (msg, kind)
    }

    #[test]
    fn versions_must_be_in_the_header_and_in_meta_and_agree() {
        let modern = headers(&[(PROTOCOL_HEADER, "2026-07-28")]);
        let (m, k) = request(Some("2026-07-28"));
        assert_eq!(check_versions(&modern, &m, &k), Ok(()));
        let (m, k) = request(None);
        assert_eq!(
            check_versions(&modern, &m, &k).unwrap_err().code,
            jsonrpc::INVALID_PARAMS
        );
        let (m, k) = request(Some("2026-07-28"));
        assert_eq!(
            check_versions(&HeaderMap::new(), &m, &k).unwrap_err().code,
            HEADER_MISMATCH
        );
        let (m, k) = request(Some("2027-01-01"));
        assert_eq!(
            check_versions(&modern, &m, &k).unwrap_err().code,
            HEADER_MISMATCH
        );
        let twice = headers(&[
            (PROTOCOL_HEADER, "2026-07-28"),
            (PROTOCOL_HEADER, "2026-07-28"),
        ]);
        let (m, k) = request(Some("2026-07-28"));
        assert!(check_versions(&twice, &m, &k).is_err());
    }

    #[test]
    fn standard_headers_must_match_the_body() {
        let (m, _) = request(Some("2026-07-28"));
        assert_eq!(check_standard_headers(&HeaderMap::new(), &m), Ok(()));
        let ok = headers(&[("mcp-method", "tools/call"), ("mcp-name", "list_samples")]);
        assert_eq!(check_standard_headers(&ok, &m), Ok(()));
        let encoded = headers(&[("mcp-name", "=?base64?bGlzdF9zYW1wbGVz?=")]);
        assert_eq!(check_standard_headers(&encoded, &m), Ok(()));
        for bad in [
            headers(&[("mcp-name", "delete_sample")]),
            headers(&[("mcp-method", "tools/list")]),
            headers(&[("mcp-name", "list_samples"), ("mcp-name", "delete_sample")]),
        ] {
            assert_eq!(
                check_standard_headers(&bad, &m).unwrap_err().code,
                HEADER_MISMATCH
            );
        }
    }

    #[test]
    fn owners_admit_only_the_same_principal() {
        let alice = Caller {
            user: "alice".into(),
            groups: None,
            agent: None,
            model: None,
        };
        let bob = Caller {
            user: "bob".into(),
            ..alice.clone()
        };
        assert!(Owner::of(Some(&alice)).admits(Some(&alice)));
        assert!(!Owner::of(Some(&alice)).admits(Some(&bob)));
        assert!(!Owner::of(Some(&alice)).admits(None));
        assert!(!Owner::of(None).admits(None));
        assert_ne!(fresh_id(), fresh_id());
    }
}
