//! Proxy latency and load: `tools/call` round trips made directly to the
//! demo server and through warden (`warden proxy`, `warden serve`), over
//! stdio and Streamable HTTP, with real processes and a real MCP client
//! (rmcp). Five modes:
//!
//! - latency ([`latency`]): one session per path, sequential calls;
//! - load ([`load`]): 32 sessions per path at once, calls/s and p50/p99;
//! - replicas ([`replicas`]): 32 sessions on 1 and on 3 `warden proxy`
//!   replicas sharing state in Redis;
//! - state ([`state`]): a capped and an uncapped call with state in memory
//!   and in Redis;
//! - drive ([`drive`]): one warden path busy for a while, for `perf`;
//! - ab ([`ab`]): the binary under test against a baseline binary
//!   (`ROUNDTRIP_BASELINE_BIN`), interleaved, with a bare byte relay
//!   ([`relay`]) and a bare HTTP relay ([`http_relay`]) as the floors of
//!   an added process.
//!
//! `ROUNDTRIP_MODE` picks `latency`, `load`, `replicas`, `state`, `ab` or `all` (the
//! default: latency, load and state, and ab when a baseline is given
//! or under `cargo test`); a set
//! `ROUNDTRIP_DRIVE` picks drive mode. The optional `mcp-proxy` rows are in
//! [`peer`].
//!
//! Needs a built `warden` binary: `cargo build --release`, then
//! `cargo bench -p warden-demo --bench roundtrip`. `WARDEN_BIN` overrides
//! the binary; `ROUNDTRIP_CALLS` the number of measured calls per path in
//! latency mode (default 3000); `ROUNDTRIP_SESSIONS` and
//! `ROUNDTRIP_LOAD_CALLS` the sessions per path and the calls per session
//! in load mode (default 32 and 100). Under `cargo test` the binary is a
//! smoke pass: a few calls on each path, 4 sessions in load mode.

mod ab;
mod common;
mod drive;
mod http_relay;
mod latency;
mod load;
mod peer;
#[path = "../../../engine/tests/support/redis_server.rs"]
mod redis_server;
mod relay;
mod replicas;
mod state;

use common::BoxError;

fn main() -> Result<(), BoxError> {
    // The byte relay runs before any runtime: it is only two threads.
    if std::env::var_os("ROUNDTRIP_RELAY").is_some() {
        std::process::exit(relay::run());
    }
    if let Ok(spec) = std::env::var("ROUNDTRIP_HTTP_RELAY") {
        std::process::exit(http_relay::run(&spec));
    }
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(run_mode())
}

async fn run_mode() -> Result<(), BoxError> {
    if let Ok(path) = std::env::var("ROUNDTRIP_DRIVE") {
        return drive::run(&path).await;
    }
    let mode = std::env::var("ROUNDTRIP_MODE").unwrap_or_else(|_| "all".into());
    match mode.as_str() {
        "latency" => latency::run().await,
        "load" => load::run().await,
        "replicas" => replicas::run().await,
        "state" => state::run().await,
        "ab" => ab::run().await,
        "all" => {
            latency::run().await?;
            println!();
            load::run().await?;
            println!();
            state::run().await?;
            if ab::wanted_in_all() {
                println!();
                ab::run().await?;
            }
            Ok(())
        }
        other => Err(format!(
            "ROUNDTRIP_MODE={other}: want latency, load, replicas, state, ab or all"
        )
        .into()),
    }
}
