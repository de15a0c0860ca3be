//! The proxy tests' stdio MCP server ([`warden_proxy::testkit`]) as a
//! binary of this crate, so that `crates/proxy/tests` can run it as a
//! command upstream. Not part of warden's interface.

fn main() {
    warden_proxy::testkit::run_test_upstream();
}
