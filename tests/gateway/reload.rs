//! How `warden serve` learns its config changed (part of tests/gateway.rs):
//! SIGHUP for a change its directory watch cannot see, and the Kubernetes
//! ConfigMap update (the `..data` symlink swapped to a new directory),
//! which the watch must see. tests/gateway/lifecycle.rs has the edit in
//! place with a session open.

use crate::common::{assert_allowed, call};
use crate::harness::{DemoHttp, Gateway, Res, config_text, post_initialize};
use serde_json::json;
use std::os::unix::fs::symlink;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn sighup_reloads_a_config_the_directory_watch_cannot_see() -> Res<()> {
    let lims = DemoHttp::start().await?;
    // warden.toml is a symlink into another directory: warden watches the
    // link's directory (docs/proxy.md), so writing the target changes
    // nothing there, and only SIGHUP tells warden.
    let real = tempfile::tempdir()?;
    let target = real.path().join("warden.toml");
    std::fs::write(&target, config_text("reload-before.toml")?)?;
    let dir = tempfile::tempdir()?;
    symlink(&target, dir.path().join("warden.toml"))?;
    let gateway = Gateway::start_in(dir, "warden.toml", &[("LIMS_URL", &lims.url)]).await?;
    assert_eq!(
        post_initialize(&gateway.url("/servers/lims/mcp")).await?,
        200
    );

    std::fs::write(&target, config_text("reload-after.toml")?)?;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        post_initialize(&gateway.url("/servers/everything/mcp")).await?,
        404,
        "reloaded before SIGHUP: the test cannot tell SIGHUP did it"
    );
    gateway.signal("HUP")?;
    gateway
        .wait_initialize("/servers/everything/mcp", 200)
        .await?;
    gateway.wait_initialize("/servers/lims/mcp", 404).await?;
    let every = gateway.rmcp("/servers/everything/mcp").await?;
    let echo = call(&every, "echo", json!({"message": "after SIGHUP"})).await?;
    assert_eq!(crate::common::text(&echo), "Echo: after SIGHUP");
    every.cancel().await?;
    // SIGHUP with nothing changed changes nothing.
    gateway.signal("HUP")?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(gateway.get("/healthz").await?.0, 200);
    assert_eq!(
        post_initialize(&gateway.url("/servers/everything/mcp")).await?,
        200
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_configmap_style_symlink_swap_reloads_the_config() -> Res<()> {
    let lims = DemoHttp::start().await?;
    // What the kubelet lays out: warden.toml -> ..data/warden.toml,
    // ..data -> ..<timestamp>/, and an update writes a new timestamped
    // directory, points ..data_tmp at it, renames it over ..data and
    // removes the old directory.
    let dir = tempfile::tempdir()?;
    let v1 = dir.path().join("..2026_12_02_01_00_00.1");
    std::fs::create_dir(&v1)?;
    std::fs::write(v1.join("warden.toml"), config_text("reload-before.toml")?)?;
    symlink("..2026_12_02_01_00_00.1", dir.path().join("..data"))?;
    symlink("..data/warden.toml", dir.path().join("warden.toml"))?;
    let gateway = Gateway::start_in(dir, "warden.toml", &[("LIMS_URL", &lims.url)]).await?;
    let genomics = gateway.rmcp("/servers/genomics/mcp").await?;
    assert_allowed(
        &call(&genomics, "get_sample", json!({"sample_id": "S-0001"})).await?,
        "genomics before the swap",
    );

    let root = gateway.dir.path();
    let v2 = root.join("..2026_12_02_01_05_00.2");
    std::fs::create_dir(&v2)?;
    std::fs::write(v2.join("warden.toml"), config_text("reload-after.toml")?)?;
    symlink("..2026_12_02_01_05_00.2", root.join("..data_tmp"))?;
    std::fs::rename(root.join("..data_tmp"), root.join("..data"))?;
    std::fs::remove_dir_all(root.join("..2026_12_02_01_00_00.1"))?;

    gateway
        .wait_initialize("/servers/everything/mcp", 200)
        .await?;
    gateway.wait_initialize("/servers/lims/mcp", 404).await?;
    assert_allowed(
        &call(&genomics, "get_sample", json!({"sample_id": "S-0002"})).await?,
        "genomics on the session opened before the swap",
    );
    genomics.cancel().await?;
    Ok(())
}
