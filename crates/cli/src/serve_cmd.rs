//! `warden serve --config FILE`: the gateway. Loads the config and what it
//! names (policies, state, decision log, keys, TLS), then serves every
//! configured server at `/servers/<name>/mcp` and all of them federated at
//! `/mcp` until SIGTERM or Ctrl-C, printing what happens (reloads,
//! rejected configs, the drain).

use crate::{exit, runtime};
use clap::Args;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use warden_proxy::gateway::config::GatewayConfig;
use warden_proxy::gateway::{GatewayEvent, GatewayRuntime, serve_gateway};

/// `warden serve` arguments.
#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  warden serve --config warden.toml\n\nSee docs/config.md for the file."
)]
pub(crate) struct ServeArgs {
    /// The configuration file (TOML; see docs/config.md). Watched: a change
    /// (or SIGHUP) adds, removes and restarts servers.
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
}

pub(crate) fn run(args: ServeArgs) -> i32 {
    crate::proxy_cmd::init_logging();
    let config = match GatewayConfig::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprint!("{}", crate::lint::render_report(&e));
            return if e.is_read_error() {
                exit::USAGE
            } else {
                exit::FAILURE
            };
        }
    };
    let bundle = match runtime::load_policies(&config.policies) {
        Ok(b) => b,
        Err(code) => return code,
    };
    // A rule naming a server the gateway does not serve never applies (an
    // intended deny lets calls through): say so. Tool names are checked by
    // `warden lint --tools` against a pin file.
    let names: Vec<String> = config.servers.iter().map(|s| s.name.clone()).collect();
    for warning in warden_proxy::tool_pins::unmatched_servers(&bundle, &names) {
        eprintln!("warning: {warning}");
    }
    let engine = match runtime::open_engine(
        bundle,
        config.state.as_ref(),
        config.records.as_deref(),
        "`state = \"FILE\"`",
    ) {
        Ok(e) => e,
        Err(code) => return code,
    };
    let signer = match runtime::load_signer(config.signing_key.as_ref()) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let log = match runtime::open_log(&runtime::LogSettings {
        path: config.decision_log.as_deref(),
        fsync: config.decision_log_fsync,
        rotate_bytes: config.decision_log_rotate_bytes,
        checkpoint_every: config.decision_log_checkpoint_every,
        redact: &config.redact,
        max_value: config.decision_log_max_value,
        shadow: config.shadow_all,
        signer: signer.as_ref(),
    }) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let confirm_key = match runtime::load_confirm_key(config.confirm_key.as_deref()) {
        Ok(k) => k,
        Err(code) => return code,
    };
    let bearer = match &config.auth {
        None => None,
        Some(settings) => match warden_proxy::bearer::Verifier::load(settings) {
            Ok(v) => Some(Arc::new(v)),
            Err(e) => {
                eprint!("{}", crate::lint::render_report(&e));
                return exit::USAGE;
            }
        },
    };
    let tls = match &config.tls {
        None => None,
        Some(files) => match warden_proxy::tls::load_server_config(&files.cert, &files.key) {
            Ok(t) => Some(t),
            Err(e) => {
                eprint!("{}", crate::lint::render_report(&e));
                return exit::USAGE;
            }
        },
    };
    let user = config
        .identity
        .user
        .clone()
        .unwrap_or_else(runtime::os_user);
    let runtime = match runtime::async_runtime(None) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let traces = match runtime::start_traces(config.traces.clone()) {
        Ok(t) => t,
        Err(code) => return code,
    };
    let rt_traces = traces.clone();
    let authenticated = bearer.is_some();
    let result = runtime.block_on(async move {
        // The watcher's thread sends into the runtime: start it inside.
        let metrics = runtime::metrics_for(config.metrics_listen.as_deref(), &engine);
        let (reloads, _watch) = runtime::watch_policies(
            &config.policies,
            &engine,
            config.reload_debounce,
            metrics.clone(),
        );
        if let (Some(addr), Some(m)) = (&config.metrics_listen, &metrics) {
            runtime::start_metrics(addr, Arc::clone(m), Arc::clone(&engine)).await?;
        }
        let listener = tokio::net::TcpListener::bind(&config.listen)
            .await
            .map_err(|e| warden_proxy::ProxyError::Listen {
                addr: config.listen.clone(),
                message: e.to_string(),
            })?;
        if let Ok(a) = listener.local_addr()
            && !a.ip().is_loopback()
        {
            if !authenticated {
                eprintln!(
                    "warning: warden listens on {a}, beyond loopback, without bearer authentication: anyone who can reach it acts as `{user}`\n  help: add an [auth] table (issuer, audiences, jwks or keys), or put an authenticating proxy in front"
                );
            }
            if tls.is_none() {
                eprintln!(
                    "warning: warden listens on {a}, beyond loopback, without TLS: tokens and calls cross the network in clear\n  help: add a [tls] table (cert, key), or terminate TLS in front of warden"
                );
            }
        }
        let rt = GatewayRuntime {
            engine,
            log,
            signer,
            bearer,
            user,
            confirm_key,
            metrics,
            traces: rt_traces,
        };
        serve_gateway(
            config,
            rt,
            listener,
            tls,
            reloads,
            Arc::new(print_event),
            runtime::stop_signal(),
        )
        .await
    });
    // Pending reads must not keep the process alive.
    runtime.shutdown_timeout(Duration::from_millis(100));
    runtime::stop_traces(traces);
    match result {
        Ok(()) => exit::OK,
        Err(e) => {
            eprint!("{}", crate::lint::render_report(&e));
            exit::FAILURE
        }
    }
}

fn names(list: &[String]) -> String {
    list.iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn print_event(event: GatewayEvent) {
    match event {
        GatewayEvent::Listening { addr, tls } => {
            let scheme = if tls { "https" } else { "http" };
            eprintln!(
                "warden: serving at {scheme}://{addr}/mcp (all servers) and {scheme}://{addr}/servers/<name>/mcp \
                 (replica `{}`)",
                warden_proxy::replica_tag()
            );
        }
        GatewayEvent::ConfigApplied {
            added,
            removed,
            restarted,
        } => {
            let mut parts = Vec::new();
            if !added.is_empty() {
                parts.push(format!("added {}", names(&added)));
            }
            if !removed.is_empty() {
                parts.push(format!("removed {}", names(&removed)));
            }
            if !restarted.is_empty() {
                parts.push(format!("restarted {}", names(&restarted)));
            }
            eprintln!("warden: config reloaded: {}", parts.join("; "));
        }
        GatewayEvent::ConfigUnchanged => {
            eprintln!("warden: config read again: no server changed")
        }
        GatewayEvent::ConfigRejected(e) => {
            eprintln!("warden: the changed config is not used; the running one stays:");
            eprint!("{}", crate::lint::render_report(e.as_ref()));
        }
        GatewayEvent::RestartNeeded { keys } => eprintln!(
            "warden: warning: changed settings apply only after a restart; the running values stay: {}",
            keys.iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        GatewayEvent::WatchFailed { message } => eprintln!(
            "warden: warning: the config file is not watched ({message}); send SIGHUP to reload it"
        ),
        GatewayEvent::Draining {
            in_flight,
            deadline,
        } => eprintln!(
            "warden: stopping: no new connections; waiting up to {}s for {in_flight} request(s) in flight",
            deadline.as_secs_f64()
        ),
        GatewayEvent::Drained { unfinished } => {
            if unfinished == 0 {
                eprintln!("warden: drained; stopped")
            } else {
                eprintln!(
                    "warden: stopped with {unfinished} request(s) unfinished: cancelled upstream and logged as cancelled"
                )
            }
        }
    }
}
