//! `warden serve`: one warden in front of many MCP servers, configured by a
//! TOML file (`config`), serving a route per server and one federated
//! endpoint (`serve`), ready when its required servers are (`readiness`),
//! reloading its config when the file changes or on SIGHUP (`watch`).

pub mod config;
mod readiness;
mod serve;
mod watch;

pub use serve::{GatewayEvent, GatewayRuntime, OnGatewayEvent, serve_gateway};

use config::{Findings, GatewayConfig, Instances, Problem};

/// What a valid config asks for that this warden does not run yet, as
/// findings on the file; `None` when it can be served as written.
/// `warden serve` refuses to start (and a reload is refused) on these, and
/// `warden check` reports them.
pub fn unsupported_settings(config: &GatewayConfig) -> Option<Findings> {
    let problems: Vec<Problem> = config
        .servers
        .iter()
        .filter(|s| s.instances == Instances::Shared)
        .map(|s| {
            Problem::error(
                s.span.0..s.span.1,
                format!("`instances = \"shared\"` (server `{}`) is not supported yet", s.name),
                "shared instances",
            )
            .with_help(
                "remove `instances` or set it to \"per-session\": each client session then gets its own process of this server",
            )
        })
        .collect();
    (!problems.is_empty()).then(|| {
        config.findings(
            format!(
                "`{}` asks for what warden cannot run yet",
                config.file.display()
            ),
            miette::Severity::Error,
            problems,
        )
    })
}
