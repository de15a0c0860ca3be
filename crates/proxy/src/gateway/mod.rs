//! `warden serve`: one warden in front of many MCP servers, configured by a
//! TOML file (`config`), serving a route per server and one federated
//! endpoint.

pub mod config;
