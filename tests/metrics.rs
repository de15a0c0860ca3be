//! Prometheus metrics through the real binary: `warden proxy
//! --metrics-listen` serves `/metrics` apart from MCP; after real calls it
//! counts them by outcome, rule, server and catalog tool, and times them;
//! Debian's `promtool check metrics` accepts the text; a real `prometheus`
//! server started here scrapes warden and its query API returns the
//! decision counter. `.ci/run` installs the `prometheus` package: a
//! machine without it fails these tests.

mod common;

use common::Res;
use common::raw_proxy::RawProxy;
use serde_json::{Value, json};
use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const POLICY: &str = r#"default allow

deny no-secrets {
  tool "echo_meta"
  when args.path == "/secrets"
  reason "secrets are off limits"
}
"#;

fn free_port() -> Res<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

async fn call(p: &mut RawProxy, id: u64, args: Value) -> Res<Value> {
    let msg = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": {"name": "echo_meta", "arguments": args}});
    p.send_line(msg.to_string().as_bytes()).await?;
    loop {
        let v: Value = serde_json::from_str(&p.next_line().await?)?;
        if v["id"] == id {
            return Ok(v);
        }
    }
}

/// The proxy with metrics on `port`, initialized, after three allowed
/// calls and one denied.
async fn proxy_after_calls(port: u16) -> Res<RawProxy> {
    let addr = format!("127.0.0.1:{port}");
    let mut p = RawProxy::start(POLICY, None, &["--metrics-listen", &addr]).await?;
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                   "clientInfo": {"name": "metrics-client", "version": "1"}}});
    p.send_line(init.to_string().as_bytes()).await?;
    p.next_line().await?;
    p.send_line(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#)
        .await?;
    for id in 1..=3 {
        let answer = call(&mut p, id, json!({"path": "/reads.fa"})).await?;
        assert!(answer["result"]["isError"] != true, "{answer}");
    }
    let denied = call(&mut p, 4, json!({"path": "/secrets"})).await?;
    assert_eq!(denied["result"]["isError"], true, "{denied}");
    Ok(p)
}

async fn scrape(port: u16) -> Res<String> {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        match reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await {
            Ok(r) => {
                assert_eq!(r.status(), 200);
                let kind = r
                    .headers()
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                assert!(kind.starts_with("text/plain; version=0.0.4"), "{kind}");
                return Ok(r.text().await?);
            }
            Err(e) if Instant::now() < until => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// The value of the one sample whose name and labels contain all of `parts`.
fn sample(text: &str, name: &str, parts: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter(|l| l[name.len()..].starts_with(['{', ' ']) && parts.iter().all(|p| l.contains(p)))
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .next()
}

#[tokio::test]
async fn metrics_count_and_time_the_calls_and_promtool_accepts_them() -> Res<()> {
    let port = free_port()?;
    let p = proxy_after_calls(port).await?;
    let text = scrape(port).await?;
    let allow = sample(
        &text,
        "warden_decisions_total",
        &[
            r#"outcome="allow""#,
            r##"rule="#default""##,
            r#"tool="echo_meta""#,
            r#"mode="enforce""#,
        ],
    );
    assert_eq!(allow, Some(3.0), "{text}");
    let deny = sample(
        &text,
        "warden_decisions_total",
        &[
            r#"outcome="deny""#,
            r#"rule="no-secrets""#,
            r#"tool="echo_meta""#,
        ],
    );
    assert_eq!(deny, Some(1.0), "{text}");
    assert_eq!(
        sample(&text, "warden_decision_duration_seconds_count", &[]),
        Some(4.0)
    );
    assert_eq!(
        sample(&text, "warden_call_duration_seconds_count", &[]),
        Some(4.0)
    );
    assert_eq!(
        sample(
            &text,
            "warden_upstream_duration_seconds_count",
            &[r#"ok="true""#]
        ),
        Some(3.0),
        "{text}"
    );
    assert_eq!(sample(&text, "warden_sessions_active", &[]), Some(1.0));
    assert_eq!(
        sample(&text, "warden_policy_info", &["version=\""]),
        Some(1.0)
    );
    assert!(
        sample(
            &text,
            "warden_policy_last_reload_success_timestamp_seconds",
            &[]
        )
        .unwrap_or(0.0)
            > 1.7e9
    );

    // Debian's promtool lints the exposition.
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("promtool (Debian package `prometheus`) is needed: {e}"))?;
    promtool
        .stdin
        .take()
        .ok_or("stdin")?
        .write_all(text.as_bytes())?;
    let out = promtool.wait_with_output()?;
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    drop(p);
    Ok(())
}

#[test]
fn the_metrics_listener_is_apart_from_mcp_and_a_taken_port_is_a_clear_error() -> Res<()> {
    let taken = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = taken.local_addr()?.port();
    let dir = tempfile::tempdir()?;
    let policy = dir.path().join("p.policy");
    std::fs::write(&policy, "default allow\n")?;
    let out = Command::new(env!("CARGO_BIN_EXE_warden"))
        .arg("proxy")
        .arg("--policies")
        .arg(&policy)
        .args(["--metrics-listen", &format!("127.0.0.1:{port}"), "--"])
        .arg(env!("CARGO_BIN_EXE_warden"))
        .arg("proxy-test-upstream")
        .stdin(Stdio::null())
        .output()?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("127.0.0.1:{port} (metrics)")),
        "{err}"
    );
    Ok(())
}

/// A real Prometheus server scraping `target` every second, on a free
/// port with its data in a temp dir; stopped when dropped.
struct Prometheus {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(target: u16) -> Res<Prometheus> {
        let dir = tempfile::tempdir()?;
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: warden\n    static_configs:\n      - targets: ['127.0.0.1:{target}']\n"
            ),
        )?;
        let port = free_port()?;
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("prometheus (Debian package `prometheus`) is needed: {e}"))?;
        Ok(Prometheus {
            child,
            port,
            _dir: dir,
        })
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn a_real_prometheus_scrapes_warden_and_queries_the_decision_counter() -> Res<()> {
    let port = free_port()?;
    let _p = proxy_after_calls(port).await?;
    let prometheus = Prometheus::start(port)?;
    let query = format!(
        "http://127.0.0.1:{}/api/v1/query?query=sum%20by%20(outcome)%20(warden_decisions_total)",
        prometheus.port
    );
    let until = Instant::now() + Duration::from_secs(60);
    let mut last = String::new();
    loop {
        if let Ok(r) = reqwest::get(&query).await
            && let Ok(v) = r.json::<Value>().await
        {
            let results = v["data"]["result"].as_array().cloned().unwrap_or_default();
            let by_outcome = |o: &str| {
                results
                    .iter()
                    .find(|r| r["metric"]["outcome"] == o)
                    .and_then(|r| r["value"][1].as_str().map(str::to_string))
            };
            if by_outcome("allow").as_deref() == Some("3")
                && by_outcome("deny").as_deref() == Some("1")
            {
                return Ok(());
            }
            last = v.to_string();
        }
        assert!(
            Instant::now() < until,
            "prometheus did not return the decision counter within 60 s: {last}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
