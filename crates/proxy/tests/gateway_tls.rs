//! `serve_gateway` over TLS, as `warden serve` runs it with a `[tls]`
//! table: a real listener on 127.0.0.1, a self-signed certificate made
//! here, a stdio upstream (the testkit) behind `/servers/kit/mcp` and the
//! federated `/mcp`, and an HTTPS client that trusts only that certificate.

mod gateway_support;

use gateway_support::{call, open_session, start, write, write_policies};
use rcgen::{CertificateParams, KeyPair};
use serde_json::json;
use std::time::Duration;

fn client(cert_pem: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(cert_pem.as_bytes()).unwrap()])
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_serves_every_route_over_https_and_drains_on_stop() {
    let dir = tempfile::tempdir().unwrap();
    let key = KeyPair::generate().unwrap();
    let cert_pem = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap()
        .pem();
    write(dir.path(), "cert.pem", &cert_pem);
    write(dir.path(), "key.pem", &key.serialize_pem());
    write_policies(dir.path());
    let config = format!(
        "listen = \"127.0.0.1:0\"\npolicies = \"policies\"\n\n[tls]\ncert = \"cert.pem\"\nkey = \"key.pem\"\n\n[[server]]\nname = \"kit\"\ncommand = \"{}\"\n",
        gateway_support::testkit()
    );
    let tls = warden_proxy::tls::load_server_config(
        &dir.path().join("cert.pem"),
        &dir.path().join("key.pem"),
    )
    .unwrap();
    let gw = start(dir.path(), &config, Some(tls), "https").await;
    let c = client(&cert_pem);

    let health = c.get(format!("{}/healthz", gw.base)).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let ready = c.get(format!("{}/readyz", gw.base)).send().await.unwrap();
    assert_eq!(ready.status(), 200, "{:?}", ready.text().await);

    for path in ["/servers/kit/mcp", "/mcp"] {
        let url = format!("{}{path}", gw.base);
        let (session, result) = open_session(&c, &url).await;
        assert!(
            result["result"]["protocolVersion"].is_string(),
            "{path}: {result}"
        );
        let list = call(
            &c,
            &url,
            &session,
            json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
        )
        .await;
        let names: Vec<String> = list["result"]["tools"]
            .as_array()
            .unwrap_or_else(|| panic!("{path}: {list}"))
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_string())
            .collect();
        let echo = if path == "/mcp" {
            "kit__echo_meta"
        } else {
            "echo_meta"
        };
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

    let events = gw.stop().await;
    assert!(
        events.contains("Listening") && events.contains("tls: true"),
        "{events}"
    );
    assert!(events.contains("Drained { unfinished: 0 }"), "{events}");
}
