//! Running `serve_gateway` in a test: a config file written into a temp
//! dir, a real listener on 127.0.0.1, the events it reports, and JSON-RPC
//! POSTs to its routes (answers as one JSON message: the client accepts
//! only JSON).

#![allow(dead_code)] // each test file uses part of it

use serde_json::{Value, json};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use warden_engine::{DecisionLog, Engine, EngineOptions, load_bundle};
use warden_proxy::gateway::config::GatewayConfig;
use warden_proxy::gateway::{GatewayEvent, GatewayRuntime, serve_gateway};

pub fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

/// The testkit upstream (`warden-test-upstream`).
pub fn testkit() -> &'static str {
    env!("CARGO_BIN_EXE_warden-test-upstream")
}

/// A policy set: everything allowed but the testkit's `crash` tool.
pub fn write_policies(dir: &Path) {
    std::fs::create_dir_all(dir.join("policies")).unwrap();
    write(
        &dir.join("policies"),
        "p.policy",
        "default allow\n\ndeny no-crash {\n  tool \"crash\"\n  server \"kit\"\n  reason \"not through warden\"\n}\n",
    );
}

pub struct Gateway {
    pub base: String,
    stop: Option<oneshot::Sender<()>>,
    pub done: tokio::task::JoinHandle<Result<(), warden_proxy::ProxyError>>,
    pub events: Arc<Mutex<Vec<String>>>,
}

impl Gateway {
    /// Stops it and waits for the drain; its events, one per line.
    pub async fn stop(mut self) -> String {
        self.stop.take().unwrap().send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(20), &mut self.done)
            .await
            .expect("the gateway stops")
            .unwrap()
            .expect("and returns Ok");
        self.events.lock().unwrap().join("\n")
    }
}

/// Serves `dir/warden.toml` (holding `config`), with `tls` if given.
pub async fn start(
    dir: &Path,
    config: &str,
    tls: Option<Arc<rustls::ServerConfig>>,
    scheme: &str,
) -> Gateway {
    write(dir, "warden.toml", config);
    let config = GatewayConfig::load(&dir.join("warden.toml")).expect("the config is valid");
    let engine = Arc::new(Engine::new(
        load_bundle(&config.policies).unwrap(),
        EngineOptions::default(),
    ));
    let rt = GatewayRuntime {
        engine,
        log: Arc::new(DecisionLog::to_writer(std::io::sink())),
        signer: None,
        bearer: None,
        user: "tester".into(),
        confirm_key: warden_proxy::seal::SealKey::process(),
        metrics: None,
        traces: None,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let events = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&events);
    let (_reloads_tx, reloads) = mpsc::unbounded_channel();
    let done = tokio::spawn(serve_gateway(
        config,
        rt,
        listener,
        tls,
        reloads,
        Arc::new(move |e: GatewayEvent| seen.lock().unwrap().push(format!("{e:?}"))),
        async move {
            let _ = stop_rx.await;
        },
    ));
    Gateway {
        base: format!("{scheme}://127.0.0.1:{}", addr.port()),
        stop: Some(stop_tx),
        done,
        events,
    }
}

pub async fn post(
    c: &reqwest::Client,
    url: &str,
    session: Option<&str>,
    body: Value,
) -> reqwest::Response {
    let mut req = c
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json");
    if let Some(s) = session {
        req = req
            .header("mcp-session-id", s)
            .header("mcp-protocol-version", "2025-06-18");
    }
    req.body(body.to_string()).send().await.unwrap()
}

pub fn initialize() -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "gateway-test", "version": "1"}}})
}

/// Initializes a session on `url`; its id and the initialize result.
pub async fn open_session(c: &reqwest::Client, url: &str) -> (String, Value) {
    let init = post(c, url, None, initialize()).await;
    assert_eq!(init.status(), 200, "{url}");
    let session = init.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_string();
    let result: Value = init.json().await.unwrap();
    let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    assert_eq!(post(c, url, Some(&session), note).await.status(), 202);
    (session, result)
}

/// One request on a session; its JSON-RPC answer.
pub async fn call(c: &reqwest::Client, url: &str, session: &str, body: Value) -> Value {
    post(c, url, Some(session), body)
        .await
        .json()
        .await
        .unwrap()
}
