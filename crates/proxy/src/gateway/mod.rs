//! `warden serve`: one warden in front of many MCP servers, configured by a
//! TOML file (`config`), serving a route per server and one federated
//! endpoint (`serve`), ready when its required servers are (`readiness`),
//! reloading its config when the file changes or on SIGHUP (`watch`).

pub mod config;
mod readiness;
mod serve;
mod watch;

pub use serve::{GatewayEvent, GatewayRuntime, OnGatewayEvent, serve_gateway};
