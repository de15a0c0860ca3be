//! The approvals webhook: each new pending approval is POSTed as JSON to
//! the operator's URL (a chat integration then tells the approver), signed
//! as ToolHive signs its webhooks: `Warden-Timestamp: <unix seconds>` and
//! `Warden-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">`
//! with the shared secret. Delivery is best effort, off the call's path:
//! the call is refused pending approval either way; a failed delivery is
//! logged on stderr.

use aws_lc_rs::hmac;
use serde_json::Value;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The header with the signature.
pub const SIGNATURE_HEADER: &str = "warden-signature";
/// The header with the signing time.
pub const TIMESTAMP_HEADER: &str = "warden-timestamp";

/// How long one delivery may take.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// Where pending approvals are POSTed, and the secret they are signed with
/// (`--approvals-webhook URL --approvals-webhook-secret FILE`,
/// `[approvals] webhook`, `webhook_secret_file`).
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSettings {
    pub url: String,
    /// The file holding the shared secret (its text, trimmed).
    pub secret_file: PathBuf,
}

impl std::fmt::Debug for WebhookSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSettings")
            .field("url", &warden_engine::remote::redacted(&self.url))
            .field("secret_file", &self.secret_file)
            .finish()
    }
}

/// Why the webhook cannot be used.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum WebhookError {
    #[error("the approvals webhook `{url}` is not an http(s) URL")]
    #[diagnostic(
        code(warden::approvals::webhook_url),
        help("give the receiver's URL, e.g. `https://chat.example.com/hooks/warden`")
    )]
    Url { url: String },
    #[error("the approvals webhook secret `{path}` cannot be read: {message}")]
    #[diagnostic(
        code(warden::approvals::webhook_secret),
        help(
            "a file holding the shared secret the receiver verifies signatures with (at least 16 characters)"
        )
    )]
    Secret { path: String, message: String },
}

/// A loaded webhook: its URL, key and HTTP client.
pub(crate) struct Webhook {
    url: String,
    key: hmac::Key,
    client: reqwest::Client,
}

/// Whether the webhook's URL and secret file are usable (`warden check`).
pub fn check(s: &WebhookSettings) -> Result<(), WebhookError> {
    Webhook::load(s).map(|_| ())
}

/// Whether `url` can be a webhook receiver: http or https, with a host.
pub fn is_http_url(url: &str) -> bool {
    reqwest::Url::parse(url)
        .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
}

impl Webhook {
    pub(crate) fn load(s: &WebhookSettings) -> Result<Webhook, WebhookError> {
        if !is_http_url(&s.url) {
            return Err(WebhookError::Url { url: s.url.clone() });
        }
        let secret_err = |message: String| WebhookError::Secret {
            path: s.secret_file.display().to_string(),
            message,
        };
        let secret =
            std::fs::read_to_string(&s.secret_file).map_err(|e| secret_err(e.to_string()))?;
        let secret = secret.trim();
        if secret.len() < 16 {
            return Err(secret_err("it holds fewer than 16 characters".into()));
        }
        let client = reqwest::Client::builder()
            .timeout(DELIVERY_TIMEOUT)
            .build()
            .map_err(|e| secret_err(format!("no HTTP client: {e}")))?;
        Ok(Webhook {
            url: s.url.clone(),
            key: hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes()),
            client,
        })
    }

    /// Sends `payload` in the background.
    pub(crate) fn deliver(&self, payload: Value) {
        let body = payload.to_string();
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let signature = signature(&self.key, timestamp, &body);
        let request = self
            .client
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(TIMESTAMP_HEADER, timestamp.to_string())
            .header(SIGNATURE_HEADER, signature)
            .body(body);
        let url = warden_engine::remote::redacted(&self.url);
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            match request.send().await {
                Ok(r) if r.status().is_success() => {}
                Ok(r) => tracing::warn!("the approvals webhook {url} answered {}", r.status()),
                Err(e) => tracing::warn!("the approvals webhook {url} was not reached: {e}"),
            }
        });
    }
}

/// `sha256=<hex>` of HMAC-SHA256 over `<timestamp>.<body>`.
pub(crate) fn signature(key: &hmac::Key, timestamp: u64, body: &str) -> String {
    let tag = hmac::sign(key, format!("{timestamp}.{body}").as_bytes());
    format!("sha256={}", warden_engine::log::chain::hex(tag.as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hmac_sha256_of_timestamp_dot_body() {
        // Python: hmac.new(b"0123456789abcdef", b"1700000000.{}", sha256).hexdigest()
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"0123456789abcdef");
        assert_eq!(
            signature(&key, 1_700_000_000, "{}"),
            "sha256=e4f8e2ecae2295b2ddb2f0b5584c8275e226c0ebe9b3b819e70156bb67122e3e"
        );
        assert_ne!(
            signature(&key, 1_700_000_001, "{}"),
            signature(&key, 1_700_000_000, "{}")
        );
    }
}
