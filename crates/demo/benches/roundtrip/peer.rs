//! The optional `mcp-proxy` rows: the Python stdio ↔ Streamable HTTP proxy
//! from PyPI (`pip install mcp-proxy`), a peer that relays without any
//! governance, measured on the same demo upstream as warden.
//!
//! Used when `ROUNDTRIP_MCP_PROXY` names its executable, or is `1` or unset
//! and an `mcp-proxy` is on `PATH` (`0` turns the rows off). In the smoke
//! pass (`cargo test`) only when `ROUNDTRIP_MCP_PROXY` asks for it. When it
//! is absent, or does not start, the rows are left out with a note: the
//! bench never fails for it.

use crate::common::{
    Background, BoxError, Client, bench_mode, free_port, http_client, stdio_client,
};
use std::path::{Path, PathBuf};
use std::process::Stdio;

/// The `mcp-proxy` executable to use, if any (see the module doc).
pub fn find() -> Option<PathBuf> {
    let wanted = std::env::var_os("ROUNDTRIP_MCP_PROXY");
    match wanted.as_deref().and_then(|v| v.to_str()) {
        Some("0") => return None,
        Some("1") => {}
        Some(path) if !path.is_empty() => return Some(PathBuf::from(path)),
        _ if !bench_mode() => return None,
        _ => {}
    }
    let found = std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join("mcp-proxy"))
        .find(|p| p.is_file());
    if found.is_none() && wanted.is_some() {
        eprintln!("ROUNDTRIP_MCP_PROXY is set but no mcp-proxy is on PATH: its rows are left out");
    }
    found
}

/// A stdio client of `mcp-proxy <url>`: mcp-proxy as a stdio server in
/// front of a Streamable HTTP upstream.
pub async fn stdio_to_http(peer: &Path, upstream: u16) -> Result<Client, BoxError> {
    let args = [
        "--transport".to_string(),
        "streamablehttp".into(),
        "--log-level".into(),
        "WARNING".into(),
        format!("http://127.0.0.1:{upstream}/mcp"),
    ];
    stdio_client(peer, &args).await
}

/// `mcp-proxy --port <port> -- <warden> demo-server`: mcp-proxy serving
/// Streamable HTTP (`/mcp`) in front of the stdio demo server. The process,
/// its port and an HTTP client of it.
pub async fn http_to_stdio(
    peer: &Path,
    warden: &Path,
) -> Result<(Background, u16, Client), BoxError> {
    let port = free_port();
    let args = [
        "--port".to_string(),
        port.to_string(),
        "--log-level".into(),
        "WARNING".into(),
        "--".into(),
        warden.to_string_lossy().into_owned(),
        "demo-server".into(),
    ];
    let process = Background::spawn_logged(peer, &args, Stdio::null())?;
    let client = http_client(port).await?;
    Ok((process, port, client))
}
