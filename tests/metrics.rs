//! Prometheus metrics through the real binary: `warden proxy
//! --metrics-listen` serves `/metrics` apart from MCP; after real calls it
//! counts them by outcome, rule, server and catalog tool, and times them;
//! Debian's `promtool check metrics` accepts the text; a real `prometheus`
//! server started here scrapes warden, its query API returns the decision
//! counter, and it runs every query of the Grafana dashboard
//! (docs/grafana); with state in a real Redis, `warden_store_up` follows
//! Redis going away. `.ci/run` installs the `prometheus` package: a
//! machine without it fails these tests.

mod common;
#[path = "../crates/engine/tests/support/redis_server.rs"]
mod redis_server;

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
    p.call_tool(id, "echo_meta", args).await
}

/// The proxy with metrics on `port`, initialized, after three allowed
/// calls and one denied.
async fn proxy_after_calls(port: u16, extra: &[&str]) -> Res<RawProxy> {
    let addr = format!("127.0.0.1:{port}");
    let mut args = vec!["--metrics-listen", &addr];
    args.extend_from_slice(extra);
    let mut p = RawProxy::start_initialized(POLICY, &args, "metrics-client").await?;
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
    let p = proxy_after_calls(port, &[]).await?;
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

/// `text` with every byte but letters and digits percent-encoded, for a
/// query string.
fn percent_encoded(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Every query of the Grafana dashboard (docs/grafana) is valid PromQL
/// that the real server runs, names only metrics warden serves (`served`:
/// its exposition), and the decision panel finds the calls made.
async fn dashboard_queries_run(port: u16, served: &str) -> Res<()> {
    let dashboard: Value =
        serde_json::from_str(include_str!("../docs/grafana/warden-dashboard.json"))?;
    let exprs: Vec<String> = dashboard["panels"]
        .as_array()
        .ok_or("no panels")?
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .filter_map(|t| t["expr"].as_str().map(str::to_string))
        .collect();
    assert!(exprs.len() >= 15, "{exprs:?}");
    for expr in &exprs {
        for name in expr
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| w.starts_with("warden_"))
        {
            let family = ["_bucket", "_count", "_sum"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(name);
            assert!(
                served.contains(&format!("# TYPE {family} ")),
                "the dashboard's `{expr}` names `{name}`, which warden does not serve"
            );
        }
        let v: Value = reqwest::get(format!(
            "http://127.0.0.1:{port}/api/v1/query?query={}",
            percent_encoded(expr)
        ))
        .await?
        .json()
        .await?;
        assert_eq!(v["status"], "success", "`{expr}`: {v}");
        if expr.contains(r#"warden_decisions_total{mode="enforce"}"#) {
            assert!(
                v["data"]["result"]
                    .as_array()
                    .is_some_and(|r| !r.is_empty()),
                "`{expr}` found no decisions: {v}"
            );
        }
    }
    Ok(())
}

/// Waits until the Prometheus on `port` returns the decision counter at
/// `allow` allowed and `deny` denied calls.
async fn wait_for_counts(port: u16, allow: &str, deny: &str) -> Res<()> {
    let query = format!(
        "http://127.0.0.1:{port}/api/v1/query?query={}",
        percent_encoded("sum by (outcome) (warden_decisions_total)")
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
            if by_outcome("allow").as_deref() == Some(allow)
                && by_outcome("deny").as_deref() == Some(deny)
            {
                return Ok(());
            }
            last = v.to_string();
        }
        assert!(
            Instant::now() < until,
            "prometheus did not return the decision counter at {allow} allowed and {deny} denied within 60 s: {last}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn a_real_prometheus_scrapes_warden_and_queries_the_decision_counter() -> Res<()> {
    let port = free_port()?;
    // State in a real Redis, so that the store panel has a store to show.
    let mut redis = redis_server::RedisServer::start();
    let mut p = proxy_after_calls(port, &["--state", &redis.url()]).await?;
    let prometheus = Prometheus::start(port)?;
    wait_for_counts(prometheus.port, "3", "1").await?;
    // One more call between two scrapes, so that rates are not empty.
    call(&mut p, 5, json!({"path": "/more.fa"})).await?;
    wait_for_counts(prometheus.port, "4", "1").await?;
    let served = scrape(port).await?;
    assert_eq!(
        sample(&served, "warden_store_up", &[r#"store="state""#]),
        Some(1.0),
        "{served}"
    );
    dashboard_queries_run(prometheus.port, &served).await?;
    // Redis goes away: the next scrape says so.
    redis.stop();
    let served = scrape(port).await?;
    assert_eq!(
        sample(&served, "warden_store_up", &[r#"store="state""#]),
        Some(0.0),
        "{served}"
    );
    Ok(())
}
