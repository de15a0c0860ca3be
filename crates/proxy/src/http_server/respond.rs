//! The small answers every handler gives: a JSON-RPC error with an HTTP
//! status, the 502 for an upstream that could not be started, and what the
//! client's `Accept` admits.

use crate::config::ProxyError;
use crate::jsonrpc;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

/// An `application/json` JSON-RPC error answer with HTTP `status`.
pub(super) fn rpc_error(
    status: StatusCode,
    id: Value,
    code: i64,
    message: impl Into<String>,
) -> Response {
    let body = jsonrpc::error(id, code, message, None).to_string();
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

/// Whether the request's `Accept` admits `mime` (or `*/*`).
pub(super) fn accepts(headers: &HeaderMap, mime: &str) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|m| {
            let m = m.split(';').next().unwrap_or("").trim();
            m.eq_ignore_ascii_case(mime) || m == "*/*"
        })
}

/// The 502 for a session whose endpoint could not be opened.
pub(super) fn upstream_failed(id: Value, e: &ProxyError) -> Response {
    tracing::error!("{e}");
    rpc_error(
        StatusCode::BAD_GATEWAY,
        id,
        jsonrpc::UPSTREAM_UNAVAILABLE,
        e.to_string(),
    )
}
