//! SSE streams from the upstream: reading one (a POST's answer or the
//! GET stream), resuming a request's stream the server closed before the
//! response (GET with `Last-Event-ID`), and the GET stream for
//! server-initiated messages, reopened when it ends.

use super::sse::{SseEvent, SseParser};
use super::{Conn, LAST_EVENT_ID_HEADER, SESSION_HEADER, error_chain, response_id};
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderValue};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

impl Conn {
    /// Reads an SSE stream, feeding each message. Returns whether the
    /// response to `request_id` was among them.
    pub(super) async fn read_sse(
        &self,
        mut resp: reqwest::Response,
        request_id: Option<&Value>,
        is_init: bool,
        last_event: &mut Option<(Option<String>, Option<u64>)>,
    ) -> bool {
        let mut parser = SseParser::new(self.max());
        let mut answered = false;
        loop {
            let chunk = match resp.chunk().await {
                Ok(Some(c)) => c,
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!("upstream SSE stream ended: {}", error_chain(&e));
                    break;
                }
            };
            for ev in parser.push(&chunk) {
                match ev {
                    SseEvent::Message { data, .. } => {
                        if let Some(id) = request_id
                            && response_id(&data).as_ref() == Some(id)
                        {
                            answered = true;
                        }
                        self.feed(data, request_id, is_init).await;
                    }
                    SseEvent::TooLarge { len, head } => self.feed_too_large(len, head).await,
                }
            }
            if answered {
                // The response ends a request's stream; a resumed GET
                // stream may stay open.
                break;
            }
            if let Some(l) = last_event {
                l.0 = parser.last_id.clone();
                l.1 = parser.retry_ms;
            }
        }
        if let Some(l) = last_event {
            l.0 = parser.last_id.clone();
            l.1 = parser.retry_ms;
        }
        answered
    }

    /// Resumes the response stream of request `id` after the server closed
    /// it: GET with `Last-Event-ID`, the first time at once, then after the
    /// server's `retry` (at most 5 s), up to 5 times. Returns whether the
    /// response came.
    pub(super) async fn resume(
        &self,
        id: &Value,
        last: &mut Option<(Option<String>, Option<u64>)>,
    ) -> bool {
        for attempt in 0..5u32 {
            if attempt > 0 {
                let retry = last.as_ref().and_then(|l| l.1).unwrap_or(1000).min(5000);
                tokio::time::sleep(Duration::from_millis(retry)).await;
            }
            let Some(event_id) = last.as_ref().and_then(|l| l.0.clone()) else {
                return false;
            };
            let mut headers = self.session_headers(None);
            headers.insert(ACCEPT, HeaderValue::from_static("text/event-stream"));
            let Ok(v) = HeaderValue::from_str(&event_id) else {
                return false;
            };
            headers.insert(LAST_EVENT_ID_HEADER, v);
            let resp = match self
                .up
                .client
                .request(Method::GET, self.up.url.clone())
                .headers(headers)
                .send()
                .await
            {
                Ok(r) => r,
                Err(e) => {
                    tracing::debug!("resuming a response stream failed: {}", error_chain(&e));
                    continue;
                }
            };
            let is_sse = resp
                .headers()
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|c| c.to_ascii_lowercase().starts_with("text/event-stream"));
            if !resp.status().is_success() || !is_sse {
                tracing::debug!(
                    "the upstream refused to resume a response stream (HTTP {})",
                    resp.status()
                );
                return false;
            }
            if self.read_sse(resp, Some(id), false, last).await {
                return true;
            }
        }
        false
    }

    /// The GET stream for server-initiated messages, reopened when it ends
    /// (with `Last-Event-ID`), until the server says it has none.
    pub(super) async fn listen(self: Arc<Self>) {
        let mut last: Option<(Option<String>, Option<u64>)> = Some((None, None));
        loop {
            let mut headers = self.session_headers(None);
            headers.insert(ACCEPT, HeaderValue::from_static("text/event-stream"));
            if let Some((Some(id), _)) = &last
                && let Ok(v) = HeaderValue::from_str(id)
            {
                headers.insert(LAST_EVENT_ID_HEADER, v);
            }
            let sent_session = headers.contains_key(SESSION_HEADER);
            let resp = self
                .up
                .client
                .request(Method::GET, self.up.url.clone())
                .headers(headers)
                .send()
                .await;
            let resp = match resp {
                Ok(r) => r,
                Err(e) => {
                    self.fail(format!("is not reachable ({})", error_chain(&e)));
                    return;
                }
            };
            let status = resp.status();
            if status == StatusCode::NOT_FOUND && sent_session {
                self.fail("ended the session (HTTP 404)".to_string());
                return;
            }
            let is_sse = resp
                .headers()
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|c| c.to_ascii_lowercase().starts_with("text/event-stream"));
            if !status.is_success() || !is_sse {
                if status != StatusCode::METHOD_NOT_ALLOWED {
                    tracing::debug!("upstream has no GET stream (HTTP {status})");
                }
                return;
            }
            self.read_sse(resp, None, false, &mut last).await;
            let retry = last.as_ref().and_then(|l| l.1).unwrap_or(1000).min(30_000);
            tokio::time::sleep(Duration::from_millis(retry)).await;
        }
    }
}
