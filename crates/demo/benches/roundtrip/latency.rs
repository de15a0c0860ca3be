//! Latency mode: one session per path, calls one after another. The round
//! trip of one `tools/call` (the demo server's `get_sample`, allowed by
//! policies/genomics.policy) made directly to the demo server, through
//! `warden proxy` and through the `warden serve` gateway, over stdio and
//! over Streamable HTTP. Prints p50, p99 and mean per path, warden's added
//! latency, the gateway's p50 and p99 over `warden proxy --listen`'s, the
//! optional `mcp-proxy` rows ([`crate::peer`]) and the load average before
//! and after.
//!
//! The gateway rows (`/servers/genomics/mcp` and the federated `/mcp`,
//! where the tool is `genomics__get_sample`) sit in front of the same HTTP
//! demo upstream as the `warden proxy --listen --upstream` row, and these
//! three paths are measured interleaved (blocks of calls in turn), so a
//! change in the machine's load falls on all three alike. A fourth path is
//! interleaved with them: the same `warden proxy --listen` with metrics
//! kept and served (`--metrics-listen`), against issue 15's target of
//! +10 µs p50 over the proxy without them; and a fifth, the same proxy
//! exporting a span per call (`--otlp-endpoint`) to an OTLP/HTTP sink in
//! this process, to price traces (off by default); and a sixth, the same
//! proxy on one thread (`--worker-threads 0`). The `mcp-proxy`
//! rows are interleaved the same way with the warden row of the same shape.

use crate::common::{
    Background, BoxError, Client, Row, TempDir, args, calls_per_path, demo_over_http, free_port,
    http_client, http_client_at, http_proxy, load_average, policies, print_table, proxy_args, row,
    sample_call, signed_us, stdio_client, timed_call, toml_string, us, warden_bin, warmup,
};
use crate::peer;
use std::time::Duration;

/// Round-trip times of `calls` sequential `get_sample` calls, after a warm-up.
async fn measure(client: &Client, calls: usize) -> Result<Vec<Duration>, BoxError> {
    Ok(measure_interleaved(&[(client, "get_sample")], calls)
        .await?
        .remove(0))
}

/// Calls per turn when paths are measured interleaved: long enough that a
/// path runs warm, short enough that a minute of load lands on every path.
const BLOCK: usize = 100;

/// Like [`measure`] for several paths at once (client, tool name): each
/// warms up, then they take turns, `BLOCK` calls each, until every path
/// has `calls` timed calls. Sorted times per path, in the order given.
pub(crate) async fn measure_interleaved(
    paths: &[(&Client, &str)],
    calls: usize,
) -> Result<Vec<Vec<Duration>>, BoxError> {
    let params: Vec<_> = paths.iter().map(|(_, tool)| sample_call(tool)).collect();
    for ((client, _), p) in paths.iter().zip(&params) {
        for _ in 0..warmup() {
            timed_call(client, p).await?;
        }
    }
    let mut times = vec![Vec::with_capacity(calls); paths.len()];
    while times[0].len() < calls {
        let n = BLOCK.min(calls - times[0].len());
        for (((client, _), p), t) in paths.iter().zip(&params).zip(&mut times) {
            for _ in 0..n {
                t.push(timed_call(client, p).await?);
            }
        }
    }
    for t in &mut times {
        t.sort();
    }
    Ok(times)
}

/// The `warden serve` config: the one demo upstream as server `genomics`,
/// the proxy rows' policies, decisions to a file as the proxy rows do.
fn gateway_config(listen: u16, policies: &str, decision_log: &str, upstream: u16) -> String {
    let q = |s: &str| toml_string(s);
    format!(
        "listen = \"127.0.0.1:{listen}\"\npolicies = {}\ndecision_log = {}\n\n\
         [[server]]\nname = \"genomics\"\nurl = \"http://127.0.0.1:{upstream}/mcp\"\n",
        q(policies),
        q(decision_log),
    )
}

/// The rows of the `mcp-proxy` comparison: (warden row, mcp-proxy row).
type PeerRows = Vec<(Row, Row)>;

/// The two `mcp-proxy` shapes, each interleaved with warden's row of the
/// same shape: a stdio client in front of the HTTP demo upstream `up`, and
/// an HTTP client in front of a stdio demo server. A peer that does not
/// start leaves its rows out with a note.
async fn peer_rows(
    peer: &std::path::Path,
    bin: &std::path::Path,
    up: u16,
    policies: &str,
    audit: &str,
    calls: usize,
) -> Result<PeerRows, BoxError> {
    let exe = bin.to_string_lossy().into_owned();
    let upstream = format!("http://127.0.0.1:{up}/mcp");
    let mut out = Vec::new();

    match peer::stdio_to_http(peer, up).await {
        Err(e) => eprintln!("mcp-proxy (stdio → HTTP) did not start, row left out: {e}"),
        Ok(theirs) => {
            let ours = stdio_client(
                bin,
                &proxy_args(policies, audit, &["--upstream", &upstream]),
            )
            .await?;
            let mut t =
                measure_interleaved(&[(&ours, "get_sample"), (&theirs, "get_sample")], calls)
                    .await?
                    .into_iter();
            out.push((
                row(
                    "stdio, through warden (HTTP upstream)",
                    &t.next().ok_or("a path without times")?,
                ),
                row(
                    "stdio, through mcp-proxy (HTTP upstream)",
                    &t.next().ok_or("a path without times")?,
                ),
            ));
            ours.cancel().await?;
            theirs.cancel().await?;
        }
    }

    match peer::http_to_stdio(peer, bin).await {
        Err(e) => eprintln!("mcp-proxy (HTTP → stdio) did not start, row left out: {e}"),
        Ok((_process, _port, theirs)) => {
            let front = free_port();
            let _ours = Background::spawn(
                bin,
                &proxy_args(
                    policies,
                    audit,
                    &[
                        "--listen",
                        &format!("127.0.0.1:{front}"),
                        "--",
                        &exe,
                        "demo-server",
                    ],
                ),
            )?;
            let ours = http_client(front).await?;
            let mut t =
                measure_interleaved(&[(&ours, "get_sample"), (&theirs, "get_sample")], calls)
                    .await?
                    .into_iter();
            out.push((
                row(
                    "HTTP, through warden (stdio upstream)",
                    &t.next().ok_or("a path without times")?,
                ),
                row(
                    "HTTP, through mcp-proxy (stdio upstream)",
                    &t.next().ok_or("a path without times")?,
                ),
            ));
            ours.cancel().await?;
            theirs.cancel().await?;
        }
    }
    Ok(out)
}

pub async fn run() -> Result<(), BoxError> {
    let calls = calls_per_path(10);
    let bin = warden_bin();
    let policies = policies();
    let dir = TempDir::new("roundtrip")?;
    let audit = dir.file("decisions.jsonl");
    let exe = bin.to_string_lossy().into_owned();

    let load_before = load_average();
    let mut rows = Vec::new();

    // The two stdio paths interleaved, as the HTTP ones below are.
    let direct = stdio_client(&bin, &args(&["demo-server"])).await?;
    let proxied = stdio_client(
        &bin,
        &proxy_args(&policies, &audit, &["--", &exe, "demo-server"]),
    )
    .await?;
    let mut t = measure_interleaved(&[(&direct, "get_sample"), (&proxied, "get_sample")], calls)
        .await?
        .into_iter();
    rows.push(row(
        "stdio, direct",
        &t.next().ok_or("a path without times")?,
    ));
    rows.push(row(
        "stdio, through warden",
        &t.next().ok_or("a path without times")?,
    ));
    direct.cancel().await?;
    proxied.cancel().await?;

    let (up, _demo) = demo_over_http(&bin)?;
    let client = http_client(up).await?;
    rows.push(row("HTTP, direct", &measure(&client, calls).await?));
    client.cancel().await?;

    let (front, _proxy) = http_proxy(&bin, &policies, &audit, up, &[])?;

    // The same proxy with metrics kept and served (issue 15's target: within
    // +10 µs p50 of the proxy without them). The decision log's hash chain
    // is on in both rows (it cannot be turned off; the log bench prices it
    // alone, `log_chain`), and signed checkpoints are left out: the only
    // way to sign them, `--signing-key`, also signs a provenance token on
    // every call, a cost of its own; a checkpoint is one signature per
    // 1000 lines.
    let metrics_at = format!("127.0.0.1:{}", free_port());
    let (observed_front, _observed) = http_proxy(
        &bin,
        &policies,
        &dir.file("observed-decisions.jsonl"),
        up,
        &["--metrics-listen", &metrics_at],
    )?;

    // The same proxy exporting traces, to a sink that takes OTLP/HTTP and
    // answers 200 (what a collector does; its work is not warden's).
    let sink = otlp_sink().await?;
    let (traced_front, _traced) = http_proxy(
        &bin,
        &policies,
        &dir.file("traced-decisions.jsonl"),
        up,
        &["--otlp-endpoint", &sink.url],
    )?;

    // The same proxy on one thread (`--worker-threads 0`): what the
    // hand-offs between worker threads cost a call.
    let (single_front, _single) = http_proxy(
        &bin,
        &policies,
        &dir.file("single-decisions.jsonl"),
        up,
        &["--worker-threads", "0"],
    )?;

    let gateway = free_port();
    // The config in a directory of its own: `warden serve` watches the
    // config file's directory, and the decision logs' writes (one or two
    // per call) would wake that watch on every call, which is not what
    // these rows measure (see docs/performance.md).
    let config_dir = dir.0.join("gateway");
    std::fs::create_dir_all(&config_dir)?;
    let config = config_dir.join("warden.toml");
    std::fs::write(
        &config,
        gateway_config(gateway, &policies, &dir.file("serve-decisions.jsonl"), up),
    )?;
    let serve_err = dir.0.join("serve.stderr");
    let _serve = Background::spawn_logged(
        &bin,
        &args(&["serve", "--config", &config.to_string_lossy()]),
        std::fs::File::create(&serve_err)?.into(),
    )?;
    let serve_failed = |e: BoxError| -> BoxError {
        let stderr = std::fs::read_to_string(&serve_err).unwrap_or_default();
        format!("warden serve: {e}\n{stderr}").into()
    };

    // The proxy and the two gateway routes, interleaved (see the module doc).
    let proxied = http_client(front).await?;
    let routed = http_client_at(gateway, "/servers/genomics/mcp")
        .await
        .map_err(serve_failed)?;
    let federated = http_client_at(gateway, "/mcp")
        .await
        .map_err(serve_failed)?;
    let observed = http_client(observed_front).await?;
    let traced = http_client(traced_front).await?;
    let single = http_client(single_front).await?;
    let mut times = measure_interleaved(
        &[
            (&proxied, "get_sample"),
            (&routed, "get_sample"),
            (&federated, "genomics__get_sample"),
            (&observed, "get_sample"),
            (&traced, "get_sample"),
            (&single, "get_sample"),
        ],
        calls,
    )
    .await?
    .into_iter();
    for path in [
        "HTTP, through warden (HTTP upstream)",
        "HTTP, warden serve /servers/genomics/mcp",
        "HTTP, warden serve /mcp (federated)",
        "HTTP, through warden, metrics on",
        "HTTP, through warden, traces on",
        "HTTP, through warden, --worker-threads 0",
    ] {
        rows.push(row(path, &times.next().ok_or("a path without times")?));
    }
    for client in [proxied, routed, federated, observed, traced, single] {
        client.cancel().await?;
    }

    let front2 = free_port();
    let _proxy2 = Background::spawn(
        &bin,
        &proxy_args(
            &policies,
            &audit,
            &[
                "--listen",
                &format!("127.0.0.1:{front2}"),
                "--",
                &exe,
                "demo-server",
            ],
        ),
    )?;
    let client = http_client(front2).await?;
    rows.push(row(
        "HTTP, through warden (stdio upstream)",
        &measure(&client, calls).await?,
    ));
    client.cancel().await?;

    let peer_rows = match peer::find() {
        Some(peer) => peer_rows(&peer, &bin, up, &policies, &audit, calls).await?,
        None => Vec::new(),
    };

    let load_after = load_average();

    println!(
        "tools/call round trip, {calls} calls after {} warm-up, binary {}",
        warmup(),
        bin.display()
    );
    println!("load average before {load_before}, after {load_after}");
    print_table(
        rows.iter()
            .chain(peer_rows.iter().flat_map(|(a, b)| [a, b])),
    );
    println!();
    println!("warden's added latency:");
    for (through, direct) in [(1, 0), (3, 2), (4, 2), (5, 2)] {
        println!(
            "  {}: p50 {}, p99 {}",
            rows[through].path,
            signed_us(rows[through].p50, rows[direct].p50),
            signed_us(rows[through].p99, rows[direct].p99)
        );
    }
    println!();
    println!(
        "warden serve over warden proxy --listen (same HTTP upstream; target: p50 within 10%):"
    );
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
    let proxy = &rows[3];
    for gw in &rows[4..6] {
        let p50 = ratio(gw.p50, proxy.p50);
        println!(
            "  {}: p50 {:.2}× ({}), p99 {:.2}× ({}){}",
            gw.path,
            p50,
            signed_us(gw.p50, proxy.p50),
            ratio(gw.p99, proxy.p99),
            signed_us(gw.p99, proxy.p99),
            if p50 <= 1.10 { "" } else { "  [over 10%]" }
        );
    }
    println!();
    let (plain, observed) = (&rows[3], &rows[6]);
    println!(
        "metrics on, over the same proxy without (target: p50 within +10 µs):\n  {}: p50 {}, p99 {}{}",
        observed.path,
        signed_us(observed.p50, plain.p50),
        signed_us(observed.p99, plain.p99),
        if observed.p50 <= plain.p50 + Duration::from_micros(10) {
            ""
        } else {
            "  [over +10 µs]"
        }
    );
    let traced = &rows[7];
    println!(
        "traces on, over the same proxy without ({} export requests to the sink):\n  {}: p50 {}, p99 {}",
        sink.requests(),
        traced.path,
        signed_us(traced.p50, plain.p50),
        signed_us(traced.p99, plain.p99),
    );
    let single = &rows[8];
    println!(
        "one thread, over the same proxy on one worker per core:\n  {}: p50 {}, p99 {}",
        single.path,
        signed_us(single.p50, plain.p50),
        signed_us(single.p99, plain.p99),
    );
    if !peer_rows.is_empty() {
        println!();
        println!("mcp-proxy against warden, same shape, interleaved (p50):");
        let direct = &rows[2];
        for (ours, theirs) in &peer_rows {
            let added = |r: &Row| r.p50.as_secs_f64() - direct.p50.as_secs_f64();
            let over = if added(ours) > 0.0 {
                format!(
                    ", {:.1}× what warden adds over HTTP, direct",
                    added(theirs) / added(ours)
                )
            } else {
                String::new()
            };
            println!(
                "  {} {} against {} {}: {:.1}× ({}){over}",
                theirs.path,
                us(theirs.p50),
                ours.path,
                us(ours.p50),
                ratio(theirs.p50, ours.p50),
                signed_us(theirs.p50, ours.p50),
            );
        }
    }
    Ok(())
}

/// An OTLP/HTTP endpoint that takes every export and answers 200.
struct OtlpSink {
    url: String,
    requests: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl OtlpSink {
    fn requests(&self) -> usize {
        self.requests.load(std::sync::atomic::Ordering::Relaxed)
    }
}

async fn otlp_sink() -> Result<OtlpSink, BoxError> {
    let requests = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = std::sync::Arc::clone(&requests);
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |_body: axum::body::Bytes| async move {
            counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            axum::http::StatusCode::OK
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(OtlpSink { url, requests })
}
