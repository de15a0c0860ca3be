//! `warden serve` over time (part of tests/gateway.rs): `/healthz` and
//! `/readyz`, an upstream killed mid-call, a config edit while a session is
//! open, SIGTERM with a call in flight.

use crate::common::{assert_allowed, call, text};
use crate::harness::{DemoHttp, Error, Gateway, Res, free_port, kill9, post_initialize};
use serde_json::json;
use std::time::{Duration, Instant};

const SOON: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread")]
async fn healthz_is_200_and_readyz_follows_the_required_servers() -> Res<()> {
    let mut lims = DemoHttp::start().await?;
    let gateway = Gateway::start("three-servers.toml", &[("LIMS_URL", &lims.url)]).await?;
    assert_eq!(gateway.get("/healthz").await?.0, 200);
    gateway.wait_status("/readyz", 200, SOON).await?;

    // The required HTTP upstream goes away: not ready, still alive.
    lims.kill().await?;
    gateway.wait_status("/readyz", 503, SOON).await?;
    assert_eq!(gateway.get("/healthz").await?.0, 200);
    // It comes back on its port: ready again.
    let _back = DemoHttp::start_on(&lims.addr()).await?;
    gateway.wait_status("/readyz", 200, SOON).await?;

    // A required upstream that was never there.
    let dead = format!("http://127.0.0.1:{}/mcp", free_port()?);
    let gateway = Gateway::start("dead-required.toml", &[("LIMS_URL", &dead)]).await?;
    assert_eq!(gateway.get("/healthz").await?.0, 200);
    for _ in 0..3 {
        let (status, body) = gateway.get("/readyz").await?;
        assert_eq!(status, 503, "/readyz with `lims` unreachable: {body}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // The servers that are there are served all the same.
    let client = gateway.rmcp("/servers/genomics/mcp").await?;
    let r = call(&client, "get_sample", json!({"sample_id": "S-0001"})).await?;
    assert_allowed(&r, "genomics get_sample while lims is down");
    client.cancel().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upstream_killed_mid_call_disturbs_no_other_call_and_a_stdio_one_restarts() -> Res<()> {
    let mut lims = DemoHttp::start().await?;
    let gateway = Gateway::start("faults.toml", &[("LIMS_URL", &lims.url)]).await?;
    let client = gateway.rmcp("/mcp").await?;
    for server in ["kit", "kit2"] {
        let r = call(
            &client,
            &format!("{server}__echo_meta"),
            json!({"warm": server}),
        )
        .await?;
        assert_allowed(&r, "echo_meta");
        assert_eq!(
            r.structured_content
                .as_ref()
                .map(|s| s["arguments"].clone()),
            Some(json!({"warm": server}))
        );
    }
    let kit_before = gateway.upstream_pids("kit");
    let kit2_before = gateway.upstream_pids("kit2");
    assert!(
        !kit_before.is_empty(),
        "no child process of warden serve for `kit`"
    );
    assert!(
        !kit2_before.is_empty(),
        "no child process of warden serve for `kit2`"
    );

    // kit works on a minute-long call, kit2 on a 3 s one; kit is killed.
    let (doomed, survivor, during) = tokio::join!(
        tokio::time::timeout(SOON, call(&client, "kit__slow", json!({"ms": 60_000}))),
        tokio::time::timeout(SOON, call(&client, "kit2__slow", json!({"ms": 3_000}))),
        async {
            gateway.wait_decision("kit", "slow").await?;
            gateway.wait_decision("kit2", "slow").await?;
            tokio::time::sleep(Duration::from_millis(300)).await;
            kill9(&kit_before)?;
            call(&client, "lims__get_sample", json!({"sample_id": "S-0001"})).await
        }
    );
    let doomed = doomed.map_err(|_| "the call to the killed upstream was never answered")?;
    match &doomed {
        Ok(r) => assert_eq!(r.is_error, Some(true), "kit__slow: {}", text(r)),
        Err(e) => eprintln!("kit__slow after the kill: {e}"),
    }
    let survivor = survivor.map_err(|_| "kit2__slow was never answered")??;
    assert_allowed(&survivor, "kit2__slow while kit was killed");
    assert_eq!(
        survivor.structured_content,
        Some(json!({"slept_ms": 3000})),
        "{}",
        text(&survivor)
    );
    let during = during?;
    assert_allowed(&during, "lims__get_sample while kit was killed");
    assert_eq!(
        during
            .structured_content
            .as_ref()
            .and_then(|s| s.pointer("/sample/id").cloned()),
        Some(json!("S-0001"))
    );

    // kit is restarted: a later call works, in a new process.
    let end = Instant::now() + SOON;
    let after = loop {
        match call(&client, "kit__echo_meta", json!({"after": "kill"})).await {
            Ok(r) if r.is_error != Some(true) => break r,
            other if Instant::now() > end => {
                return Err(format!("kit never came back after the kill: {other:?}").into());
            }
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    };
    assert_eq!(
        after
            .structured_content
            .as_ref()
            .map(|s| s["arguments"].clone()),
        Some(json!({"after": "kill"}))
    );
    let kit_after = gateway.upstream_pids("kit");
    assert!(
        !kit_after.is_empty() && kit_after.iter().all(|p| !kit_before.contains(p)),
        "kit runs in a new process: before {kit_before:?}, after {kit_after:?}"
    );
    assert_eq!(
        gateway.upstream_pids("kit2"),
        kit2_before,
        "kit2's process was not touched"
    );

    // The HTTP upstream dies: its calls fail; the others' do not.
    lims.kill().await?;
    let gone = tokio::time::timeout(SOON, call(&client, "lims__list_samples", json!({})))
        .await
        .map_err(|_| "a call to the dead HTTP upstream was never answered")?;
    assert!(
        gone.as_ref()
            .map(|r| r.is_error == Some(true))
            .unwrap_or(true),
        "lims__list_samples with lims dead: {gone:?}"
    );
    for server in ["kit", "kit2"] {
        let r = call(&client, &format!("{server}__echo_meta"), json!({"n": 3})).await?;
        assert_allowed(&r, &format!("{server} after lims died"));
    }
    // A new lims on the same port (no memory of the old session): the
    // open federated session reaches it again.
    let _back = DemoHttp::start_on(&lims.addr()).await?;
    let end = Instant::now() + SOON;
    let back = loop {
        match call(&client, "lims__get_sample", json!({"sample_id": "S-0002"})).await {
            Ok(r) if r.is_error != Some(true) => break r,
            other if Instant::now() > end => {
                return Err(format!("lims never came back on its port: {other:?}").into());
            }
            _ => tokio::time::sleep(Duration::from_millis(300)).await,
        }
    };
    assert_eq!(
        back.structured_content
            .as_ref()
            .and_then(|s| s.pointer("/sample/id").cloned()),
        Some(json!("S-0002"))
    );
    client.cancel().await?;

    let log = gateway.decisions();
    let slow = |server: &str| {
        log.iter()
            .find(|l| l["server"] == server && l["tool"] == "slow")
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(slow("kit")["upstream"]["ok"], false, "{log:#?}");
    assert_eq!(slow("kit2")["upstream"]["ok"], true, "{log:#?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_config_edit_adds_and_removes_servers_while_a_session_is_open() -> Res<()> {
    let lims = DemoHttp::start().await?;
    let gateway = Gateway::start("reload-before.toml", &[("LIMS_URL", &lims.url)]).await?;
    let federated = gateway.rmcp("/mcp").await?;
    let route = gateway.rmcp("/servers/genomics/mcp").await?;
    let tools: Vec<String> = federated
        .list_all_tools()
        .await?
        .iter()
        .map(|t| t.name.to_string())
        .collect();
    assert!(
        tools.contains(&"lims__list_samples".to_string()),
        "{tools:?}"
    );
    assert!(
        !tools.iter().any(|t| t.starts_with("everything__")),
        "{tools:?}"
    );
    assert_allowed(
        &call(
            &federated,
            "lims__get_sample",
            json!({"sample_id": "S-0001"}),
        )
        .await?,
        "lims before the edit",
    );
    assert_eq!(
        post_initialize(&gateway.url("/servers/everything/mcp")).await?,
        404
    );

    gateway.rewrite_config("reload-after.toml")?;
    gateway
        .wait_initialize("/servers/everything/mcp", 200)
        .await?;
    gateway.wait_initialize("/servers/lims/mcp", 404).await?;

    // The open sessions' calls to the unchanged server keep working.
    let r = call(
        &federated,
        "genomics__get_sample",
        json!({"sample_id": "S-0002"}),
    )
    .await?;
    assert_allowed(
        &r,
        "genomics__get_sample on the session opened before the edit",
    );
    assert_eq!(
        r.structured_content
            .as_ref()
            .and_then(|s| s.pointer("/sample/name").cloned()),
        Some(json!("NA12891"))
    );
    let r = call(&route, "get_sample", json!({"sample_id": "S-0003"})).await?;
    assert_allowed(
        &r,
        "get_sample on the genomics route opened before the edit",
    );
    // The open federated session's members follow the config (the
    // federation adds and removes members in open sessions): its lists
    // show everything and no lims, and a call to lims is refused.
    let end = Instant::now() + SOON;
    let tools = loop {
        let tools: Vec<String> = federated
            .list_all_tools()
            .await?
            .iter()
            .map(|t| t.name.to_string())
            .collect();
        if tools.contains(&"everything__echo".to_string()) || Instant::now() > end {
            break tools;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(tools.contains(&"everything__echo".to_string()), "{tools:?}");
    assert!(
        tools.contains(&"genomics__get_sample".to_string()),
        "{tools:?}"
    );
    assert!(!tools.iter().any(|t| t.starts_with("lims__")), "{tools:?}");
    let removed = call(
        &federated,
        "lims__get_sample",
        json!({"sample_id": "S-0001"}),
    )
    .await;
    assert!(
        removed
            .as_ref()
            .map(|r| r.is_error == Some(true))
            .unwrap_or(true),
        "lims__get_sample on the open session after lims was removed: {removed:?}"
    );
    assert_eq!(
        text(
            &call(
                &federated,
                "everything__echo",
                json!({"message": "old session"})
            )
            .await?
        ),
        "Echo: old session"
    );

    // The new server's route, and a new federated session, serve it.
    let every = gateway.rmcp("/servers/everything/mcp").await?;
    assert_eq!(
        text(&call(&every, "echo", json!({"message": "added"})).await?),
        "Echo: added"
    );
    let fresh = gateway.rmcp("/mcp").await?;
    let tools: Vec<String> = fresh
        .list_all_tools()
        .await?
        .iter()
        .map(|t| t.name.to_string())
        .collect();
    assert!(tools.contains(&"everything__echo".to_string()), "{tools:?}");
    assert!(
        tools.contains(&"genomics__get_sample".to_string()),
        "{tools:?}"
    );
    assert!(!tools.iter().any(|t| t.starts_with("lims__")), "{tools:?}");
    assert_eq!(
        text(&call(&fresh, "everything__echo", json!({"message": "federated"})).await?),
        "Echo: federated"
    );

    // A broken edit keeps the last good config, and says so.
    let before = gateway.stderr.lock().unwrap().len();
    std::fs::write(
        gateway.config_path(),
        "listen = \"127.0.0.1:1\"\n[[server]\nname = ",
    )?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        post_initialize(&gateway.url("/servers/everything/mcp")).await?,
        200
    );
    assert_eq!(
        post_initialize(&gateway.url("/servers/lims/mcp")).await?,
        404
    );
    assert_eq!(gateway.get("/healthz").await?.0, 200);
    let r = call(&fresh, "genomics__list_samples", json!({})).await?;
    assert_allowed(&r, "genomics after a broken edit");
    let said: Vec<String> = gateway.stderr.lock().unwrap()[before..].to_vec();
    assert!(
        said.iter().any(|l| l.contains("warden.toml")),
        "warden names the broken config file: {said:#?}"
    );
    for c in [federated, route, every, fresh] {
        c.cancel().await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_lets_a_call_in_flight_finish_refuses_new_sessions_and_exits_0() -> Res<()> {
    let mut gateway = Gateway::start("drain.toml", &[]).await?;
    let client = gateway.rmcp("/mcp").await?;
    let port = gateway.port;
    let (slow, after_term) = tokio::join!(
        tokio::time::timeout(SOON, call(&client, "kit__slow", json!({"ms": 4_000}))),
        async {
            gateway.wait_decision("kit", "slow").await?;
            tokio::time::sleep(Duration::from_millis(500)).await;
            let signalled = Instant::now();
            gateway.signal("TERM")?;
            tokio::time::sleep(Duration::from_millis(500)).await;
            // A new session is refused: the connection itself, or its
            // initialize with 503 (both tell a load balancer to go
            // elsewhere); a session opening would be a failure.
            let connect = tokio::time::timeout(
                Duration::from_secs(5),
                tokio::net::TcpStream::connect(("127.0.0.1", port)),
            )
            .await;
            let new_session = if matches!(connect, Ok(Err(_))) {
                None
            } else {
                Some(
                    post_initialize(&gateway.url("/mcp"))
                        .await
                        .map_err(|e| e.to_string()),
                )
            };
            Ok::<_, Error>((signalled, connect.is_ok(), new_session))
        }
    );
    let slow = slow.map_err(|_| "the call in flight was never answered")??;
    assert_allowed(&slow, "kit__slow in flight at SIGTERM");
    assert_eq!(slow.structured_content, Some(json!({"slept_ms": 4000})));
    let (signalled, connected, new_session) = after_term?;
    assert!(connected, "the connect attempt after SIGTERM hung for 5 s");
    eprintln!("a new session after SIGTERM (None: connection refused): {new_session:?}");
    assert!(
        matches!(new_session, None | Some(Ok(503)) | Some(Err(_))),
        "a new session after SIGTERM: initialize answered {new_session:?}"
    );
    drop(client);
    let status = gateway
        .wait_exit(Duration::from_secs(30))
        .await?
        .ok_or("warden serve still runs 30 s after SIGTERM (drain_timeout is 20 s)")?;
    assert!(status.success(), "exit status after SIGTERM: {status}");
    assert!(
        signalled.elapsed() < Duration::from_secs(25),
        "exit {:?} after SIGTERM",
        signalled.elapsed()
    );
    let log = gateway.decisions();
    let line = log
        .iter()
        .find(|l| l["tool"] == "slow")
        .ok_or("no decision line for slow")?;
    assert_eq!(line["server"], "kit");
    assert_eq!(line["upstream"]["ok"], true, "{line:#}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_closed_session_leaves_no_upstream_process_behind() -> Res<()> {
    let lims = DemoHttp::start().await?;
    let gateway = Gateway::start("faults.toml", &[("LIMS_URL", &lims.url)]).await?;
    for round in 0..3 {
        let federated = gateway.rmcp("/mcp").await?;
        let route = gateway.rmcp("/servers/kit/mcp").await?;
        for server in ["kit", "kit2"] {
            let r = call(
                &federated,
                &format!("{server}__echo_meta"),
                json!({"round": round}),
            )
            .await?;
            assert_allowed(&r, "echo_meta");
        }
        assert_allowed(&call(&route, "echo_meta", json!({})).await?, "kit route");
        assert!(
            !gateway.upstream_pids("kit").is_empty(),
            "kit runs while its sessions are open"
        );
        // Closing the client ends its HTTP session (DELETE).
        federated.cancel().await?;
        route.cancel().await?;
    }
    // instances = "per-session": a session's upstream processes end with it.
    // The rmcp client speaks 2026-07-28 after initializing the route, so its
    // calls on /servers/kit/mcp go to the route's one sessionless endpoint,
    // whose upstream serves every sessionless caller and outlives each:
    // that one process may stay (one, not one per round), nothing else.
    let end = Instant::now() + Duration::from_secs(15);
    loop {
        let (kit, kit2) = (gateway.upstream_pids("kit"), gateway.upstream_pids("kit2"));
        let restarted = gateway
            .stderr
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("restarting"));
        assert!(!restarted, "a closed session's upstream was restarted");
        if kit.len() <= 1 && kit2.is_empty() {
            break;
        }
        if Instant::now() > end {
            let restarts: Vec<String> = gateway
                .stderr
                .lock()
                .unwrap()
                .iter()
                .filter(|l| l.contains("restart"))
                .cloned()
                .collect();
            return Err(format!(
                "15 s after every session closed, upstream processes still run: kit {kit:?}, kit2 {kit2:?}; warden said: {restarts:#?}"
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_cuts_a_call_that_outlasts_the_drain_deadline_and_still_exits() -> Res<()> {
    let mut gateway = Gateway::start("drain-short.toml", &[]).await?;
    let client = gateway.rmcp("/mcp").await?;
    let (slow, signalled) = tokio::join!(
        tokio::time::timeout(SOON, call(&client, "kit__slow", json!({"ms": 60_000}))),
        async {
            gateway.wait_decision("kit", "slow").await?;
            tokio::time::sleep(Duration::from_millis(300)).await;
            gateway.signal("TERM")?;
            Ok::<_, Error>(Instant::now())
        }
    );
    let signalled = signalled?;
    // The call is answered (an error) or its connection closes; it never
    // waits out its 60 s.
    let slow =
        slow.map_err(|_| "the call was still open 30 s after SIGTERM (drain_timeout 2 s)")?;
    assert!(
        slow.as_ref()
            .map(|r| r.is_error == Some(true))
            .unwrap_or(true),
        "a 60 s call 2 s into the drain came back as a success: {slow:?}"
    );
    drop(client);
    let status = gateway.wait_exit(Duration::from_secs(20)).await?;
    let took = signalled.elapsed();
    assert!(
        status.is_some(),
        "warden serve still runs 20 s after SIGTERM with drain_timeout 2 s"
    );
    eprintln!("exit {status:?} {took:?} after SIGTERM; the call got {slow:?}");
    // drain_timeout, then at most 5 s for connections to close (docs/proxy.md).
    assert!(
        took < Duration::from_secs(12),
        "exit {took:?} after SIGTERM"
    );
    // The log says the call was forwarded and did not complete.
    let log = gateway.decisions();
    let line = log
        .iter()
        .find(|l| l["server"] == "kit" && l["tool"] == "slow")
        .ok_or(format!("no decision line for kit slow: {log:#?}"))?;
    assert_eq!(line["decision"], "allow", "{line:#}");
    assert!(
        line["upstream"].is_object() && line["upstream"]["ok"] != true,
        "the cut call's outcome: {line:#}"
    );
    // And says why: its session ended (warden stopped), not that the client
    // cancelled it.
    let error = line["upstream"]["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("session ended"),
        "the cut call's logged outcome: {line:#}"
    );
    Ok(())
}
