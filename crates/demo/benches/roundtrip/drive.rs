//! Drive mode, for profiling: `ROUNDTRIP_DRIVE=<path>` starts one warden
//! path, prints `warden pid <pid>` (and writes the pid to
//! `ROUNDTRIP_PID_FILE` when set) and then makes calls one after another
//! for `ROUNDTRIP_DRIVE_SECS` seconds (default 20), so that
//! `perf record -p <pid>` sees only steady-state calls. The paths:
//!
//! - `stdio-allowed`, `stdio-denied`: `warden proxy -- warden demo-server`;
//! - `http-allowed`, `http-denied`: `warden proxy --listen` in front of the
//!   HTTP demo server.
//!
//! Allowed calls are `get_sample`; denied ones `delete_sample`, which
//! policies/genomics.policy denies to agents (`agents-never-delete`), so
//! warden answers them itself and the upstream never sees them.

use crate::common::{
    BoxError, Client, TempDir, demo_over_http, env_count, http_client, http_proxy, policies,
    proxy_args, sample_call, stdio_client_pid, warden_bin, warmup,
};
use std::time::{Duration, Instant};

pub async fn run(path: &str) -> Result<(), BoxError> {
    let (transport, verdict) = path
        .split_once('-')
        .ok_or_else(|| format!("ROUNDTRIP_DRIVE={path}: want stdio|http-allowed|denied"))?;
    let denied = match verdict {
        "allowed" => false,
        "denied" => true,
        _ => return Err(format!("ROUNDTRIP_DRIVE={path}: want ...-allowed or ...-denied").into()),
    };
    let secs = env_count("ROUNDTRIP_DRIVE_SECS", 20) as u64;
    let bin = warden_bin();
    let exe = bin.to_string_lossy().into_owned();
    let dir = TempDir::new("roundtrip-drive")?;
    let policies = policies();
    let audit = dir.file("decisions.jsonl");

    let mut _procs = Vec::new();
    let (client, pid): (Client, Option<u32>) = match transport {
        "stdio" => {
            stdio_client_pid(
                &bin,
                &proxy_args(&policies, &audit, &["--", &exe, "demo-server"]),
            )
            .await?
        }
        "http" => {
            let (up, demo) = demo_over_http(&bin)?;
            _procs.push(demo);
            let (front, proxy) = http_proxy(&bin, &policies, &audit, up, &[])?;
            let pid = proxy.pid();
            _procs.push(proxy);
            (http_client(front).await?, pid)
        }
        _ => return Err(format!("ROUNDTRIP_DRIVE={path}: want stdio-... or http-...").into()),
    };
    let params = sample_call(if denied {
        "delete_sample"
    } else {
        "get_sample"
    });
    let call = async |client: &Client| -> Result<(), BoxError> {
        let result = client.call_tool(params.clone()).await?;
        if (result.is_error == Some(true)) != denied {
            return Err(format!("{path}: unexpected answer {result:?}").into());
        }
        Ok(())
    };
    for _ in 0..warmup() {
        call(&client).await?;
    }
    let pid = pid.ok_or("the warden process has no pid")?;
    println!("warden pid {pid}");
    if let Some(file) = std::env::var_os("ROUNDTRIP_PID_FILE") {
        std::fs::write(file, format!("{pid}\n"))?;
    }
    // Time for `perf record -p` to attach before the measured calls.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    let mut calls = 0u64;
    while started.elapsed() < Duration::from_secs(secs) {
        call(&client).await?;
        calls += 1;
    }
    let took = started.elapsed();
    println!(
        "{path}: {calls} calls in {:.1} s, {:.0} calls/s, mean {:.0} µs",
        took.as_secs_f64(),
        calls as f64 / took.as_secs_f64(),
        took.as_secs_f64() * 1e6 / calls as f64
    );
    client.cancel().await?;
    Ok(())
}
