//! The headers of upstream requests besides the session's: the
//! configured ones (checked: none may name a header warden sets), the
//! 2026-07-28 standard `Mcp-Method`/`Mcp-Name`, the W3C trace context of
//! the body's `_meta`, and the provenance headers of a forwarded
//! `tools/call`, with values that cannot travel plainly sent
//! base64-encoded.

use super::LAST_EVENT_ID_HEADER;
use crate::config::ProxyError;
use crate::govern::PROVENANCE_KEY;
use crate::jsonrpc;
use crate::provenance_token::{TOKEN_HEADER, TOKEN_META_KEY};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;

/// The provenance headers, by the `_meta` provenance field they carry.
pub const PROVENANCE_HEADERS: [(&str, &str); 7] = [
    ("via_agent", "warden-via-agent"),
    ("server", "warden-server"),
    ("user", "warden-user"),
    ("agent", "warden-agent"),
    ("session", "warden-session"),
    ("decision_id", "warden-decision-id"),
    ("policy_version", "warden-policy-version"),
];

/// Headers warden sets itself on upstream requests (or that frame the
/// request), which configured headers must not name.
const RESERVED_HEADERS: [&str; 13] = [
    "accept",
    "content-type",
    "content-length",
    "content-encoding",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
    "host",
    LAST_EVENT_ID_HEADER,
];

/// Whether `name` may be configured as an extra header on every request
/// to an HTTP upstream (`headers` in the gateway config). Refused, so a
/// configured header can never override what warden sets: the MCP headers
/// (any `Mcp-*`: `Mcp-Session-Id`, `MCP-Protocol-Version`, `Mcp-Method`,
/// `Mcp-Name` and those to come), warden's provenance headers (any
/// `Warden-*`), `Content-Type`, `Accept`, `Last-Event-ID`, `Host` and the
/// headers that frame the body or the connection. Names compare without
/// case. The error is a lowercase sentence naming the header.
pub fn check_upstream_header(name: &str) -> Result<(), String> {
    if HeaderName::from_bytes(name.as_bytes()).is_err() {
        return Err(format!(
            "`{name}` is not a valid HTTP header name (letters, digits and `-`, no spaces)"
        ));
    }
    let lower = name.to_ascii_lowercase();
    if lower.starts_with("mcp-") {
        return Err(format!(
            "`{name}` is an MCP transport header, which warden sets itself"
        ));
    }
    if lower.starts_with("warden-") {
        return Err(format!(
            "`{name}` is a warden provenance header, which warden sets itself"
        ));
    }
    if matches!(lower.as_str(), "traceparent" | "tracestate") {
        return Err(format!(
            "`{name}` is W3C trace context, which warden sends from each request's `_meta`"
        ));
    }
    if RESERVED_HEADERS.contains(&lower.as_str()) {
        return Err(format!(
            "`{name}` is set by warden (or its HTTP client) on every upstream request"
        ));
    }
    Ok(())
}

/// Whether `value` can be sent as the value of a configured upstream
/// header: printable ASCII (spaces and tabs inside), no surrounding blanks
/// (a server would strip them, so the header would not say what was
/// configured). The error names no part of the value, which may be a
/// secret.
pub fn check_upstream_header_value(value: &str) -> Result<(), String> {
    if value.starts_with([' ', '\t']) || value.ends_with([' ', '\t']) {
        return Err("the value starts or ends with a blank".to_string());
    }
    // HeaderValue takes bytes above 0x7f (obs-text), which servers read
    // in differing charsets: only ASCII is sent as configured.
    if !value.is_ascii() || HeaderValue::from_str(value).is_err() {
        return Err(
            "the value has a character that cannot travel in an HTTP header (only printable ASCII)"
                .to_string(),
        );
    }
    Ok(())
}

/// The configured headers as a map, each checked; a name given twice
/// (in any case) is refused rather than one silently winning.
pub(super) fn configured_headers(headers: &[(String, String)]) -> Result<HeaderMap, ProxyError> {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        let bad = |message: String| ProxyError::Header {
            name: name.clone(),
            message,
        };
        check_upstream_header(name).map_err(bad)?;
        check_upstream_header_value(value).map_err(bad)?;
        let (Ok(n), Ok(mut v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) else {
            return Err(bad("it cannot be sent".to_string()));
        };
        // Kept out of any `Debug` print (reqwest's, a log line).
        v.set_sensitive(true);
        if map.insert(n, v).is_some() {
            return Err(bad("it is given more than once".to_string()));
        }
    }
    Ok(map)
}

/// `Mcp-Method` and `Mcp-Name` (2026-07-28), from the body.
pub(super) fn standard_headers(h: &mut HeaderMap, method: &str, params: Option<&Value>) {
    if let Ok(v) = HeaderValue::from_str(method) {
        h.insert("mcp-method", v);
    }
    let key = match method {
        "tools/call" | "prompts/get" => "name",
        "resources/read" | "resources/subscribe" | "resources/unsubscribe" => "uri",
        "tasks/get" | "tasks/update" | "tasks/cancel" => "taskId",
        _ => return,
    };
    if let Some(name) = params.and_then(|p| p.get(key)).and_then(Value::as_str)
        && let Ok(v) = HeaderValue::from_str(&header_text(name))
    {
        h.insert("mcp-name", v);
    }
}

/// `traceparent` and `tracestate`, saying what the body's `_meta` says
/// (warden's upstream span on a traced call, else what the client sent),
/// so an HTTP server that reads trace context from headers joins the same
/// trace. Only a valid context is sent, written anew by the propagator.
pub(super) fn trace_headers(h: &mut HeaderMap, msg: &Value) {
    for (name, value) in crate::traces::header_pairs(msg) {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(HeaderName::from_static(name), v);
        }
    }
}

/// The provenance headers of a forwarded tools/call, from its `_meta`.
pub(super) fn provenance_headers(h: &mut HeaderMap, msg: &Value) {
    let Some(p) = jsonrpc::meta(msg).and_then(|m| m.get(PROVENANCE_KEY)) else {
        return;
    };
    for (field, header) in PROVENANCE_HEADERS {
        let text = match p.get(field) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Bool(b)) => b.to_string(),
            Some(Value::Number(n)) => n.to_string(),
            _ => continue,
        };
        if let Ok(v) = HeaderValue::from_str(&header_text(&text)) {
            h.insert(HeaderName::from_static(header), v);
        }
    }
    // The signed token (with --signing-key) is base64url text already.
    if let Some(token) = jsonrpc::meta(msg)
        .and_then(|m| m.get(TOKEN_META_KEY))
        .and_then(Value::as_str)
        && let Ok(v) = HeaderValue::from_str(token)
    {
        h.insert(HeaderName::from_static(TOKEN_HEADER), v);
    }
}

/// A header value as is, or `=?base64?…?=` when it cannot travel plainly.
pub(crate) fn header_text(value: &str) -> String {
    let blank_edge = value.starts_with([' ', '\t']) || value.ends_with([' ', '\t']);
    let printable = value.chars().all(|c| (' '..='~').contains(&c));
    let looks_encoded = value.starts_with("=?base64?") && value.ends_with("?=");
    if printable && !blank_edge && !looks_encoded {
        value.to_string()
    } else {
        format!("=?base64?{}?=", base64(value.as_bytes()))
    }
}

fn base64(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for c in bytes.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http_upstream::prepare;

    #[test]
    fn configured_headers_cannot_name_what_warden_sets() {
        for name in [
            "Mcp-Session-Id",
            "MCP-Protocol-Version",
            "mcp-method",
            "Mcp-Name",
            "Mcp-Param-Region",
            "Content-Type",
            "ACCEPT",
            "Last-Event-ID",
            "Warden-User",
            "warden-provenance-token",
            "Content-Length",
            "Transfer-Encoding",
            "Host",
            "Traceparent",
            "tracestate",
        ] {
            let err = check_upstream_header(name).expect_err(name);
            assert!(err.contains(&format!("`{name}`")), "{err}");
            let e = prepare("http://127.0.0.1:1/mcp", &[(name.into(), "x".into())])
                .err()
                .unwrap_or_else(|| panic!("{name} accepted"));
            assert!(matches!(e, ProxyError::Header { .. }), "{e}");
        }
        for name in ["", "Bad Name", "a:b", "x\n"] {
            assert!(check_upstream_header(name).is_err(), "{name:?}");
        }
        for name in ["Authorization", "X-Tenant", "User-Agent", "Cookie"] {
            assert_eq!(check_upstream_header(name), Ok(()), "{name}");
        }
        for value in [
            " Bearer x",
            "Bearer x\t",
            "a\r\nX-Evil: 1",
            "José",
            "a\u{7f}",
        ] {
            let err = check_upstream_header_value(value).expect_err(value);
            assert!(
                !err.contains(value.trim()),
                "the value is not echoed: {err}"
            );
        }
        assert_eq!(check_upstream_header_value("Bearer a b\tc"), Ok(()));
        let twice = [
            ("Authorization".to_string(), "a".to_string()),
            ("authorization".to_string(), "b".to_string()),
        ];
        let e = prepare("http://127.0.0.1:1/mcp", &twice)
            .err()
            .expect("refused");
        assert!(e.to_string().contains("more than once"), "{e}");
    }

    #[test]
    fn header_values_that_cannot_travel_plainly_are_base64() {
        assert_eq!(header_text("alice"), "alice");
        assert_eq!(header_text("José"), "=?base64?Sm9zw6k=?=");
        assert_eq!(header_text(" x"), "=?base64?IHg=?=");
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(base64(b"abc"), "YWJj");
        assert_eq!(base64(b"a"), "YQ==");
    }
}
