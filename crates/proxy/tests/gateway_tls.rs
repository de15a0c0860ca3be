//! `serve_gateway` over TLS, as `warden serve` runs it with a `[tls]`
//! table: a real listener on 127.0.0.1, a self-signed certificate made
//! here, a stdio upstream (the testkit) behind `/servers/kit/mcp` and the
//! federated `/mcp`, and an HTTPS client that trusts only that certificate.

use rcgen::{CertificateParams, KeyPair};
use serde_json::{Value, json};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use warden_engine::{DecisionLog, Engine, EngineOptions, load_bundle};
use warden_proxy::gateway::config::GatewayConfig;
use warden_proxy::gateway::{GatewayEvent, GatewayRuntime, serve_gateway};

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

struct Gateway {
    base: String,
    cert_pem: String,
    stop: Option<oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<Result<(), warden_proxy::ProxyError>>,
    events: Arc<Mutex<Vec<String>>>,
}

async fn start(dir: &Path) -> Gateway {
    let key = KeyPair::generate().unwrap();
    let cert_pem = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap()
        .pem();
    write(dir, "cert.pem", &cert_pem);
    write(dir, "key.pem", &key.serialize_pem());
    std::fs::create_dir_all(dir.join("policies")).unwrap();
    write(
        &dir.join("policies"),
        "p.policy",
        "default allow\n\ndeny no-crash {\n  tool \"crash\"\n  server \"kit\"\n  reason \"not through warden\"\n}\n",
    );
    let upstream = env!("CARGO_BIN_EXE_warden-test-upstream");
    let text = format!(
        "listen = \"127.0.0.1:0\"\npolicies = \"policies\"\n\n[tls]\ncert = \"cert.pem\"\nkey = \"key.pem\"\n\n[[server]]\nname = \"kit\"\ncommand = \"{upstream}\"\n"
    );
    write(dir, "warden.toml", &text);
    let config = GatewayConfig::load(&dir.join("warden.toml")).expect("the config is valid");
    let tls_files = config.tls.clone().expect("[tls] given");
    let tls = warden_proxy::tls::load_server_config(&tls_files.cert, &tls_files.key).unwrap();
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
        Some(tls),
        reloads,
        Arc::new(move |e: GatewayEvent| seen.lock().unwrap().push(format!("{e:?}"))),
        async move {
            let _ = stop_rx.await;
        },
    ));
    Gateway {
        base: format!("https://127.0.0.1:{}", addr.port()),
        cert_pem,
        stop: Some(stop_tx),
        done,
        events,
    }
}

fn client(cert_pem: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(cert_pem.as_bytes()).unwrap()])
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

async fn post(
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

fn initialize() -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "tls-test", "version": "1"}}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_serves_every_route_over_https_and_drains_on_stop() {
    let dir = tempfile::tempdir().unwrap();
    let mut gw = start(dir.path()).await;
    let c = client(&gw.cert_pem);

    let health = c.get(format!("{}/healthz", gw.base)).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let ready = c.get(format!("{}/readyz", gw.base)).send().await.unwrap();
    assert_eq!(ready.status(), 200, "{:?}", ready.text().await);

    for path in ["/servers/kit/mcp", "/mcp"] {
        let url = format!("{}{path}", gw.base);
        let init = post(&c, &url, None, initialize()).await;
        assert_eq!(init.status(), 200, "{path}");
        let session = init.headers()["mcp-session-id"]
            .to_str()
            .unwrap()
            .to_string();
        let result: Value = init.json().await.unwrap();
        assert!(
            result["result"]["protocolVersion"].is_string(),
            "{path}: {result}"
        );
        let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        assert_eq!(post(&c, &url, Some(&session), note).await.status(), 202);
        let list: Value = post(
            &c,
            &url,
            Some(&session),
            json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
        )
        .await
        .json()
        .await
        .unwrap();
        let names: Vec<String> = list["result"]["tools"]
            .as_array()
            .unwrap_or_else(|| panic!("{path}: {list}"))
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_string())
            .collect();
        let echo = if path == "/mcp" { "kit__echo_meta" } else { "echo_meta" };
        assert!(names.iter().any(|n| n == echo), "{path}: {names:?}");
        assert!(
            !names.iter().any(|n| n.ends_with("crash")),
            "the denied tool is hidden on {path}: {names:?}"
        );
    }

    // Plain HTTP to the TLS port gets no MCP answer, and HTTPS goes on.
    let plain = reqwest::Client::new()
        .get(gw.base.replace("https://", "http://") + "/healthz")
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    assert!(plain.is_err() || !plain.unwrap().status().is_success());
    assert_eq!(
        c.get(format!("{}/healthz", gw.base))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    gw.stop.take().unwrap().send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(20), &mut gw.done)
        .await
        .expect("the gateway stops")
        .unwrap()
        .expect("and returns Ok");
    let events = gw.events.lock().unwrap().join("\n");
    assert!(
        events.contains("Listening") && events.contains("tls: true"),
        "{events}"
    );
    assert!(events.contains("Drained { unfinished: 0 }"), "{events}");
}
