//! Who may talk to an MCP service: the Origin and Host checks (DNS
//! rebinding), the bearer check (401 with `WWW-Authenticate`), a session's
//! owner (403 for another user's token), and the RFC 9728 protected
//! resource metadata the 401 points at.

use super::respond::rpc_error;
use super::service::McpService;
use super::session::Session;
use super::{SESSION_HEADER, lock};
use crate::bearer::{AuthError, Caller, Verifier};
use crate::jsonrpc;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::sync::Arc;

/// Where the RFC 9728 protected resource metadata is served (followed by
/// the MCP path: `/.well-known/oauth-protected-resource/mcp`).
pub(crate) const RESOURCE_METADATA_PATH: &str = "/.well-known/oauth-protected-resource";
/// The JSON-RPC code of warden's "no such session" answer.
const SESSION_NOT_FOUND: i64 = -32001;

impl McpService {
    /// The Origin and Host checks; the response refusing the request if
    /// they fail.
    pub(super) fn check_origin(&self, headers: &HeaderMap, uri: &Uri) -> Result<(), Box<Response>> {
        if let Some(origin) = headers.get(header::ORIGIN) {
            let ok = origin
                .to_str()
                .is_ok_and(|o| origin_allowed(o, &self.settings.allowed_origins));
            if !ok {
                tracing::warn!("request from origin {origin:?} refused");
                return Err(Box::new(rpc_error(
                    StatusCode::FORBIDDEN,
                    Value::Null,
                    jsonrpc::INVALID_REQUEST,
                    format!(
                        "forbidden: origin {} is not allowed (only loopback origins and those given with --allow-origin)",
                        String::from_utf8_lossy(origin.as_bytes())
                    ),
                )));
            }
        }
        if self.loopback_bind {
            let host = headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_string)
                .or_else(|| uri.authority().map(|a| a.to_string()));
            if !host.as_deref().is_some_and(host_is_loopback) {
                return Err(Box::new(rpc_error(
                    StatusCode::FORBIDDEN,
                    Value::Null,
                    jsonrpc::INVALID_REQUEST,
                    "forbidden: warden listens on a loopback address and accepts only loopback Host headers",
                )));
            }
        }
        Ok(())
    }

    /// The bearer check: the caller a valid token names (`None` when no
    /// bearer auth is configured), or the 401 refusing the request.
    pub(super) fn authenticate(
        &self,
        headers: &HeaderMap,
    ) -> Result<Option<Arc<Caller>>, Box<Response>> {
        let Some(verifier) = &self.settings.bearer else {
            return Ok(None);
        };
        let values = headers
            .get_all(header::AUTHORIZATION)
            .iter()
            .map(HeaderValue::as_bytes);
        match verifier.verify_header(values) {
            Ok(caller) => Ok(Some(Arc::new(caller))),
            Err(why) => {
                tracing::info!("request refused: {why}");
                Err(Box::new(unauthorized(
                    &why,
                    &metadata_url(verifier, headers, &self.path),
                )))
            }
        }
    }

    /// The session a request names; the error response when it names none
    /// or an unknown one, or when it belongs to another user than the
    /// request's bearer token names.
    pub(super) fn session_of(
        &self,
        headers: &HeaderMap,
        id: Value,
        caller: Option<&Caller>,
    ) -> Result<Arc<Session>, Box<Response>> {
        let Some(sid) = headers.get(SESSION_HEADER) else {
            return Err(Box::new(rpc_error(
                StatusCode::BAD_REQUEST,
                id,
                jsonrpc::INVALID_REQUEST,
                "bad request: missing Mcp-Session-Id header (initialize first)",
            )));
        };
        let sid = sid.to_str().unwrap_or("");
        match lock(&self.sessions).get(sid) {
            Some(s) => {
                // Fail closed: a session opened with a token is usable only
                // with a token of the same user.
                if let Some(owner) = &s.subject
                    && caller.is_none_or(|c| &c.user != owner)
                {
                    tracing::warn!("a request on another user's session was refused");
                    return Err(Box::new(rpc_error(
                        StatusCode::FORBIDDEN,
                        id,
                        jsonrpc::INVALID_REQUEST,
                        "forbidden: this session belongs to another user; initialize a session of your own",
                    )));
                }
                s.touch();
                Ok(Arc::clone(s))
            }
            None => Err(Box::new(rpc_error(
                StatusCode::NOT_FOUND,
                id,
                SESSION_NOT_FOUND,
                match super::session::other_replica(sid) {
                    Some(tag) => format!(
                        "session not found on this warden replica (`{}`): it was opened on replica `{tag}`; \
                         behind a load balancer, every request of a session must reach the replica that opened it \
                         (session affinity on Mcp-Session-Id, docs/scale-out.md); or initialize a new session",
                        super::session::replica_tag()
                    ),
                    None => {
                        "session not found: it ended or timed out; initialize a new one".to_string()
                    }
                },
            ))),
        }
    }

    /// RFC 9728 protected resource metadata: the resource (warden, named by
    /// the first audience) and the authorization server that issues its
    /// tokens. 404 without bearer auth.
    pub(crate) fn resource_metadata(&self) -> Response {
        let Some(verifier) = &self.settings.bearer else {
            return StatusCode::NOT_FOUND.into_response();
        };
        axum::Json(json!({
            "resource": verifier.audiences().first(),
            "authorization_servers": [verifier.issuer()],
            "bearer_methods_supported": ["header"],
            "resource_name": "warden MCP proxy",
        }))
        .into_response()
    }
}

/// The URL of the protected resource metadata for `WWW-Authenticate`: by
/// RFC 9728, the resource's (the first audience's) origin, the well-known
/// path and the resource's path; for an audience that is no URL, the
/// request's Host and the path the service is mounted at.
fn metadata_url(verifier: &Verifier, headers: &HeaderMap, path: &str) -> String {
    if let Some(aud) = verifier.audiences().first()
        && let Ok(url) = reqwest::Url::parse(aud)
        && matches!(url.scheme(), "http" | "https")
        && let Some(host) = url.host_str()
    {
        let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
        let path = url.path().trim_end_matches('/');
        return format!(
            "{}://{host}{port}{RESOURCE_METADATA_PATH}{path}",
            url.scheme()
        );
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    format!("http://{host}{RESOURCE_METADATA_PATH}{path}")
}

/// A header parameter's quoted-string: no quotes, backslashes or
/// characters a header cannot carry.
fn quoted(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '"' | '\\' => '\'',
            c if c == ' ' || c.is_ascii_graphic() => c,
            _ => '?',
        })
        .collect()
}

/// The 401 for a refused bearer token: `WWW-Authenticate` (RFC 6750,
/// with RFC 9728's `resource_metadata`) and a JSON-RPC error body, both
/// giving the reason.
fn unauthorized(why: &AuthError, metadata: &str) -> Response {
    let reason = why.to_string();
    let challenge = if matches!(why, AuthError::Missing) {
        // RFC 6750: no error code when the request carried no credentials.
        format!(
            r#"Bearer realm="warden", error_description="{}", resource_metadata="{}""#,
            quoted(&reason),
            quoted(metadata)
        )
    } else {
        format!(
            r#"Bearer realm="warden", error="invalid_token", error_description="{}", resource_metadata="{}""#,
            quoted(&reason),
            quoted(metadata)
        )
    };
    let body = jsonrpc::error(
        Value::Null,
        jsonrpc::INVALID_REQUEST,
        format!("unauthorized: {reason}"),
        Some(json!({"error": "invalid_token", "error_description": reason})),
    )
    .to_string();
    let mut resp = (
        StatusCode::UNAUTHORIZED,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    resp
}

/// Whether an Origin is a loopback one or explicitly allowed.
pub(crate) fn origin_allowed(origin: &str, allowed: &[String]) -> bool {
    let o = origin.trim().trim_end_matches('/');
    if allowed
        .iter()
        .any(|a| a.trim().trim_end_matches('/').eq_ignore_ascii_case(o))
    {
        return true;
    }
    let Ok(url) = reqwest::Url::parse(o) else {
        return false;
    };
    matches!(url.scheme(), "http" | "https") && url.host_str().is_some_and(host_is_loopback)
}

/// Whether a Host header (host and optional port) names a loopback host.
pub(crate) fn host_is_loopback(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_origins_pass_others_need_allowing() {
        let none: Vec<String> = Vec::new();
        for ok in [
            "http://localhost",
            "http://localhost:3000",
            "https://127.0.0.1:8443",
            "http://[::1]:9",
        ] {
            assert!(origin_allowed(ok, &none), "{ok}");
        }
        for bad in [
            "http://evil.example",
            "http://localhost.evil.example",
            "null",
            "file://",
            "http://127.0.0.1.nip.io",
        ] {
            assert!(!origin_allowed(bad, &none), "{bad}");
        }
        let allowed = vec!["https://app.example.com".to_string()];
        assert!(origin_allowed("https://app.example.com/", &allowed));
        assert!(!origin_allowed("https://app.example.com:444", &allowed));
    }

    #[test]
    fn loopback_hosts() {
        for ok in [
            "localhost",
            "localhost:8931",
            "127.0.0.1:1",
            "[::1]:80",
            "[::1]",
        ] {
            assert!(host_is_loopback(ok), "{ok}");
        }
        for bad in ["evil.example", "evil.example:8931", "10.0.0.1:80", ""] {
            assert!(!host_is_loopback(bad), "{bad}");
        }
    }
}
