//! [`McpService`] answering requests directly (no listener) in front of a
//! scripted endpoint: what the endpoint receives, what it sends back when
//! the test says so, and what the service counts meanwhile.

use super::McpService;
use crate::config::{ProxyConfig, ProxyError, Upstream};
use crate::endpoint::{BoxFuture, ClientEndpoint, EndpointFactory, OpenedEndpoint};
use crate::framing::Frame;
use crate::relay::{ClientOut, Hints, Outgoing};
use axum::body::Body;
use axum::extract::Request;
use axum::http::StatusCode;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// An endpoint that passes each client line to the test and answers only
/// when the test sends an answer.
struct Scripted {
    lines: mpsc::UnboundedSender<Value>,
    hints: Hints,
}

impl ClientEndpoint for Scripted {
    fn client_frame(
        self: Arc<Self>,
        frame: Frame,
        _caller: Option<Arc<crate::bearer::Caller>>,
    ) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            if let Frame::Line(line) = frame
                && let Ok(v) = serde_json::from_slice(&line)
            {
                let _ = self.lines.send(v);
            }
        })
    }

    fn client_gone(self: Arc<Self>) -> BoxFuture<'static, ()> {
        Box::pin(async {})
    }

    fn policies_changed(self: Arc<Self>) -> BoxFuture<'static, ()> {
        Box::pin(async {})
    }

    fn hints(&self) -> Hints {
        Arc::clone(&self.hints)
    }
}

struct ScriptedFactory {
    lines: mpsc::UnboundedSender<Value>,
    /// Where the last opened endpoint sends what is for the client.
    to_client: Mutex<Option<ClientOut>>,
}

impl EndpointFactory for ScriptedFactory {
    fn open(
        &self,
        _label: String,
        to_client: ClientOut,
    ) -> BoxFuture<'_, Result<OpenedEndpoint, ProxyError>> {
        Box::pin(async move {
            *self.to_client.lock().unwrap() = Some(to_client);
            Ok(OpenedEndpoint {
                endpoint: Arc::new(Scripted {
                    lines: self.lines.clone(),
                    hints: Hints::default(),
                }),
                shutdown: CancellationToken::new(),
            })
        })
    }
}

impl ScriptedFactory {
    /// The endpoint answers request `id`.
    async fn answer(&self, id: i64) {
        let tx = self.to_client.lock().unwrap().clone().expect("an endpoint");
        tx.send(Outgoing {
            text: json!({"jsonrpc": "2.0", "id": id, "result": {}}).to_string(),
            related: Some(json!(id)),
            response: true,
            detach: false,
        })
        .await
        .unwrap();
    }
}

fn service() -> (
    Arc<McpService>,
    Arc<ScriptedFactory>,
    mpsc::UnboundedReceiver<Value>,
) {
    let (lines, rx) = mpsc::unbounded_channel();
    let factory = Arc::new(ScriptedFactory {
        lines,
        to_client: Mutex::new(None),
    });
    let cfg = ProxyConfig::new(Upstream::Url("http://127.0.0.1:9/mcp".into()), "alice");
    let svc = McpService::new(cfg, factory.clone(), true, "/mcp".into());
    (svc, factory, rx)
}

fn post(body: Value, session: Option<&str>, accept: &str) -> Request {
    let mut b = Request::builder()
        .method("POST")
        .uri("/mcp")
        .header("host", "localhost")
        .header("content-type", "application/json")
        .header("accept", accept);
    if let Some(s) = session {
        b = b.header("mcp-session-id", s);
    }
    b.body(Body::from(body.to_string())).unwrap()
}

fn request(id: i64, method: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": {}})
}

const BOTH: &str = "application/json, text/event-stream";

#[tokio::test]
async fn a_held_post_counts_as_in_flight_and_an_answered_one_does_not() {
    let (svc, factory, mut lines) = service();
    assert_eq!(svc.requests_in_flight(), 0);

    // A JSON-only request: the handler holds it until the answer comes.
    let held = tokio::spawn(Arc::clone(&svc).handle(post(
        request(1, "initialize"),
        None,
        "application/json",
    )));
    let got = lines.recv().await.unwrap();
    assert_eq!(got["method"], "initialize");
    assert_eq!(svc.requests_in_flight(), 1, "held while unanswered");
    assert_eq!(svc.session_count(), 1);
    factory.answer(1).await;
    let resp = held.await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(svc.requests_in_flight(), 0, "answered");
    let sid = resp.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_string();

    // An SSE answer: the handler returns at once, the open stream counts
    // until it carries the response.
    let resp = Arc::clone(&svc)
        .handle(post(request(2, "tools/list"), Some(&sid), BOTH))
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(lines.recv().await.unwrap()["id"], 2);
    assert_eq!(svc.requests_in_flight(), 1, "its stream is open");
    factory.answer(2).await;
    let body = tokio::time::timeout(
        Duration::from_secs(5),
        axum::body::to_bytes(resp.into_body(), usize::MAX),
    )
    .await
    .expect("the stream ends with its response")
    .unwrap();
    assert!(String::from_utf8_lossy(&body).contains(r#""id":2"#));
    assert_eq!(svc.requests_in_flight(), 0, "its stream ended");

    // A client dropping an unanswered stream ends the count too.
    let resp = Arc::clone(&svc)
        .handle(post(request(3, "tools/list"), Some(&sid), BOTH))
        .await;
    assert_eq!(svc.requests_in_flight(), 1);
    drop(resp);
    assert_eq!(svc.requests_in_flight(), 0, "the client went away");

    // A notification is answered (202) before the handler returns.
    let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let resp = Arc::clone(&svc).handle(post(note, Some(&sid), BOTH)).await;
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    assert_eq!(svc.requests_in_flight(), 0);
}

#[tokio::test]
async fn other_methods_get_405_and_close_all_ends_every_session() {
    let (svc, factory, mut lines) = service();
    let put = Request::builder()
        .method("PUT")
        .uri("/mcp")
        .header("host", "localhost")
        .body(Body::empty())
        .unwrap();
    let resp = Arc::clone(&svc).handle(put).await;
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        svc.resource_metadata().status(),
        StatusCode::NOT_FOUND,
        "no bearer auth, no metadata"
    );

    let held = tokio::spawn(Arc::clone(&svc).handle(post(
        request(1, "initialize"),
        None,
        "application/json",
    )));
    lines.recv().await.unwrap();
    factory.answer(1).await;
    let sid = held.await.unwrap().headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(svc.session_count(), 1);
    svc.close_all().await;
    assert_eq!(svc.session_count(), 0);
    let resp = Arc::clone(&svc)
        .handle(post(request(2, "tools/list"), Some(&sid), BOTH))
        .await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND, "the session ended");
}
