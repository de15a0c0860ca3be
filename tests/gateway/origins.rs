//! Who may talk to `warden serve` (part of tests/gateway.rs): the Origin
//! and Host checks `warden proxy --listen` makes (DNS rebinding), on the
//! federated `/mcp` as on a server's route. The conformance suite checks
//! the route (`.ci/conformance` target warden-serve); nothing else checks
//! `/mcp`.

use crate::harness::{Gateway, Res, post_initialize_with};

#[tokio::test(flavor = "multi_thread")]
async fn a_foreign_origin_or_host_is_refused_on_every_mcp_route() -> Res<()> {
    let gateway = Gateway::start("origins.toml", &[]).await?;
    let host = format!("127.0.0.1:{}", gateway.port);
    for path in ["/mcp", "/servers/kit/mcp"] {
        let url = gateway.url(path);
        assert_eq!(
            post_initialize_with(&url, &[]).await?,
            200,
            "{path}: no Origin"
        );
        assert_eq!(
            post_initialize_with(&url, &[("origin", "https://app.example.com")]).await?,
            200,
            "{path}: the allowed origin"
        );
        assert_eq!(
            post_initialize_with(&url, &[("origin", "https://evil.example")]).await?,
            403,
            "{path}: a foreign origin"
        );
        assert_eq!(
            post_initialize_with(&url, &[("origin", "null")]).await?,
            403,
            "{path}: Origin null"
        );
        assert_eq!(
            post_initialize_with(&url, &[("host", "evil.example")]).await?,
            403,
            "{path}: a rebound Host"
        );
        assert_eq!(
            post_initialize_with(&url, &[("host", &host)]).await?,
            200,
            "{path}: its own Host"
        );
    }
    Ok(())
}
