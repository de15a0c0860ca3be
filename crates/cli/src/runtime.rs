//! What `warden proxy` and `warden serve` load the same way before serving:
//! the policies (and what a restart would forget), the engine with its
//! state store, the decision log, the provenance signer, the policy watcher
//! with its messages, and the OS user. Each failure is printed here and
//! returned as the exit code to stop with.

use crate::exit;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use warden_engine::log::LogOptions;
use warden_engine::{
    DecisionLog, Engine, EngineOptions, PolicyBundle, PolicyReloader, PostgresOptions,
    PostgresRecords, RedisOptions, RedisState, ReloadEvent, SqliteState, StateBackend,
    StateLocation, WatchHandle, load_bundle,
};
use warden_proxy::metrics::Metrics;
use warden_proxy::traces::{TraceSettings, Traces};

/// Loads the policy set, printing its diagnostics when it does not load.
pub(crate) fn load_policies(path: &Path) -> Result<PolicyBundle, i32> {
    load_bundle(path).map_err(|e| {
        eprint!("{}", crate::lint::render_report(&e));
        if let warden_engine::LoadError::Invalid { diagnostics, .. } = &e {
            let diags: Vec<_> = diagnostics.iter().cloned().collect();
            eprint!("{}", crate::lint::render_human(&diags));
        }
        exit::FAILURE
    })
}

/// What a policy set keeps that outlives a session, if anything: caps,
/// rates and budgets not counted per session (per user, agent, model,
/// tool, or for all calls), and records agents create.
pub(crate) fn forgotten_on_restart(set: &warden_lang::CompiledPolicySet) -> Option<&'static str> {
    use warden_lang::ast::{RuleKind, Scope};
    let lasting: Vec<_> = set
        .rules()
        .iter()
        .filter(|r| {
            r.limit
                .as_ref()
                .is_some_and(|l| !l.scope.contains(Scope::Session))
        })
        .collect();
    // Said as before when every such limit is a cap or rate per user or
    // agent; otherwise in words that cover budgets and limits per model,
    // per tool or over all calls.
    let plain = lasting.iter().all(|r| {
        r.kind != RuleKind::Budget
            && r.limit
                .as_ref()
                .is_some_and(|l| l.scope.split_by().is_empty() && !l.scope.row().is_empty())
    });
    match (!lasting.is_empty(), plain, !set.records().is_empty()) {
        (true, true, true) => {
            Some("per-user and per-agent caps and rates, and the records agents created, are")
        }
        (true, true, false) => Some("per-user and per-agent caps and rates are"),
        (true, false, true) => Some(
            "caps, rates and budgets not counted per session, and the records agents created, are",
        ),
        (true, false, false) => Some("caps, rates and budgets not counted per session are"),
        (false, _, true) => Some("the records agents created are"),
        (false, _, false) => None,
    }
}

/// The engine over `bundle`, with caps, rates and records in the SQLite
/// file `state` when given (opened now, so that a bad file stops warden
/// with a reason rather than denying every capped call), caps and rates
/// in a Redis server (records then stay in memory), or all in memory;
/// `state_hint` is how the operator names that setting (`--state FILE`,
/// `state = "..."`) in the note about what memory forgets. `records`, a
/// PostgreSQL URL, keeps the records agents create there instead.
pub(crate) fn open_engine(
    bundle: PolicyBundle,
    state: Option<&StateLocation>,
    records: Option<&str>,
    state_hint: &str,
) -> Result<Arc<Engine>, i32> {
    if state.is_none()
        && let Some(what) = forgotten_on_restart(bundle.compiled())
    {
        // In memory is the default so that warden never writes a file the
        // operator did not name; say what that costs when it costs something.
        eprintln!(
            "warden: {what} kept in memory: a restart of warden forgets them; \
             {state_hint} keeps them in a SQLite file or a Redis server"
        );
    }
    let mut options = EngineOptions::default();
    match state {
        None => {}
        Some(StateLocation::Sqlite(path)) => {
            match SqliteState::open(path, options.state_limits, Arc::clone(&options.clock)) {
                Ok(s) => {
                    let s = Arc::new(s);
                    // Records agents create live in the same file as caps and rates.
                    options.records = warden_engine::RecordBackend::Store(s.clone());
                    options.state = StateBackend::Store(s);
                }
                Err(e) => {
                    eprint!("{}", crate::lint::render_report(&e));
                    return Err(exit::USAGE);
                }
            }
        }
        Some(StateLocation::Redis(url)) => {
            match RedisState::open(url, options.state_limits, RedisOptions::default()) {
                Ok(s) => {
                    if records.is_none() && !bundle.compiled().records().is_empty() {
                        eprintln!(
                            "warden: the records agents created are kept in this replica's memory: \
                             other replicas and a restart do not see them; \
                             `records = \"postgres://...\"` keeps them in PostgreSQL"
                        );
                    }
                    options.state = StateBackend::Store(Arc::new(s));
                }
                Err(e) => {
                    eprint!("{}", crate::lint::render_report(&e));
                    return Err(exit::USAGE);
                }
            }
        }
    }
    if let Some(url) = records {
        match PostgresRecords::open(url, PostgresOptions::default()) {
            Ok(r) => options.records = warden_engine::RecordBackend::Store(Arc::new(r)),
            Err(e) => {
                eprint!("{}", crate::lint::render_report(&e));
                return Err(exit::USAGE);
            }
        }
    }
    Ok(Arc::new(Engine::new(bundle, options)))
}

/// `--state`'s text as a [`StateLocation`]: a file (relative to the
/// working directory), `sqlite:///path` or `redis://...`.
pub(crate) fn state_arg(text: Option<&Path>) -> Result<Option<StateLocation>, i32> {
    let Some(text) = text else {
        return Ok(None);
    };
    StateLocation::parse(&text.to_string_lossy(), Path::new(""))
        .map(Some)
        .map_err(|e| {
            eprintln!("error: --state: {}\n  help: {}", e.message, e.help);
            exit::USAGE
        })
}

/// How the decision log is opened (`--audit-log*` flags, `decision_log*`
/// keys).
pub(crate) struct LogSettings<'a> {
    /// The file, or standard error.
    pub(crate) path: Option<&'a Path>,
    /// Each call also waits for its line's `fdatasync` (the caller makes
    /// sure there is a `path` then: standard error cannot be synced).
    pub(crate) fsync: bool,
    /// Rotate the file at this size (with a `path`).
    pub(crate) rotate_bytes: Option<u64>,
    /// Lines between two signed checkpoints, when there is a `signer`.
    pub(crate) checkpoint_every: u64,
    pub(crate) redact: &'a [String],
    /// Argument values longer than this are logged as their hash, size
    /// and prefix.
    pub(crate) max_value: usize,
    /// Global shadow mode: every line says so, and the operator is told at
    /// start that nothing is enforced.
    pub(crate) shadow: bool,
    /// `--signing-key`: it signs the chain's checkpoints too.
    pub(crate) signer: Option<&'a Arc<warden_proxy::provenance_token::Signer>>,
}

/// The decision log, as `settings` say.
pub(crate) fn open_log(settings: &LogSettings<'_>) -> Result<Arc<DecisionLog>, i32> {
    if settings.shadow {
        eprintln!(
            "warden: shadow mode: every call is decided and logged, and none is refused, \
             confirmed or hidden"
        );
    }
    let options = LogOptions {
        fsync: settings.fsync,
        rotate_bytes: settings.rotate_bytes,
    };
    let mut log = match settings.path {
        Some(path) => DecisionLog::open_with(path, options).map_err(|e| {
            eprint!("{}", crate::lint::render_report(&e));
            exit::USAGE
        })?,
        None => DecisionLog::to_writer(std::io::stderr()),
    };
    if let Some(signer) = settings.signer {
        let signer: Arc<dyn warden_engine::log::CheckpointSigner> = Arc::clone(signer) as _;
        log = log.sealed_by(signer, settings.checkpoint_every);
    }
    Ok(Arc::new(
        log.redacting(settings.redact)
            .bounding_values(settings.max_value)
            .in_shadow_mode(settings.shadow),
    ))
}

/// Metrics, when an admin listener is configured (`--metrics-listen`,
/// `[metrics] listen`), with the policies in force at start shown.
pub(crate) fn metrics_for(listen: Option<&str>, engine: &Engine) -> Option<Arc<Metrics>> {
    listen?;
    let metrics = Metrics::new();
    metrics.policies_loaded(engine.policies().version());
    Some(metrics)
}

/// Starts exporting traces when an OTLP endpoint is configured
/// (`--otlp-endpoint`, `[traces]`), naming this process's replica; says
/// where. `Err`: the exit code (the reason printed).
pub(crate) fn start_traces(settings: Option<TraceSettings>) -> Result<Option<Arc<Traces>>, i32> {
    let Some(mut settings) = settings else {
        return Ok(None);
    };
    settings.instance = Some(warden_proxy::replica_tag().to_string());
    match Traces::start(&settings) {
        Ok(t) => {
            eprintln!(
                "warden: traces to {}/{}",
                settings.endpoint.trim_end_matches('/'),
                warden_proxy::traces::TRACES_PATH
            );
            Ok(Some(t))
        }
        Err(e) => {
            eprint!("{}", crate::lint::render_report(&e));
            Err(exit::USAGE)
        }
    }
}

/// Sends the last spans (off the runtime: this blocks up to a few
/// seconds) and says so when they could not go.
pub(crate) fn stop_traces(traces: Option<Arc<Traces>>) {
    if let Some(t) = traces
        && let Err(e) = t.shutdown()
    {
        eprintln!("warden: the last traces were not exported: {e}");
    }
}

/// Binds the admin listener and serves `/metrics` on it in the current
/// runtime; says where (and warns beyond loopback: rules, tools and users'
/// traffic shapes are there for anyone who can reach it).
pub(crate) async fn start_metrics(
    addr: &str,
    metrics: Arc<Metrics>,
    engine: Arc<Engine>,
) -> Result<(), warden_proxy::ProxyError> {
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        warden_proxy::ProxyError::Listen {
            addr: format!("{addr} (metrics)"),
            message: e.to_string(),
        }
    })?;
    match listener.local_addr() {
        Ok(a) => {
            if !a.ip().is_loopback() {
                eprintln!(
                    "warning: metrics are served on {a}, beyond loopback: anyone who can reach it reads rule, server and tool names and traffic rates\n  help: bind the metrics to 127.0.0.1 and let the scraper reach it through the host, or restrict the port"
                );
            }
            eprintln!("warden: metrics at http://{a}/metrics");
        }
        Err(_) => eprintln!("warden: metrics at http://{addr}/metrics"),
    }
    tokio::spawn(async move {
        if let Err(e) = warden_proxy::metrics::serve_metrics(metrics, engine, listener).await {
            eprintln!("warden: the metrics listener stopped: {e}");
        }
    });
    Ok(())
}

/// A bare port binds loopback only (`--listen`, `--metrics-listen`).
pub(crate) fn loopback_if_bare(addr: &str) -> String {
    if addr.parse::<u16>().is_ok() {
        format!("127.0.0.1:{addr}")
    } else {
        addr.to_string()
    }
}

/// Whether decisions are enforced (`--mode`, `mode = "..."`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Mode {
    Enforce,
    Shadow,
}

/// The async runtime a command runs on: `workers` threads (`None`: one per
/// core), or the current thread with `Some(0)`. A runtime that cannot
/// start is an error the command exits with.
pub(crate) fn async_runtime(workers: Option<usize>) -> Result<tokio::runtime::Runtime, i32> {
    let mut builder = match workers {
        Some(0) => tokio::runtime::Builder::new_current_thread(),
        _ => tokio::runtime::Builder::new_multi_thread(),
    };
    if let Some(n) = workers.filter(|n| *n > 0) {
        builder.worker_threads(n);
    }
    builder.enable_all().build().map_err(|e| {
        eprintln!("error: cannot start the async runtime: {e}");
        exit::FAILURE
    })
}

/// How tool definitions are pinned (`--tool-pins`, `[tools] pins`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum PinMode {
    /// Pin each tool's first definition in the state store; hide and
    /// refuse a changed one until `warden tools approve`.
    TrustOnFirstUse,
    /// Trust only the definitions of the pin file (`--pin-file`).
    Strict,
    /// Do not check tool definitions.
    Off,
}

/// The pinning the mode and pin file say, or why not (a usage error).
pub(crate) fn tool_pins(
    mode: PinMode,
    pin_file: Option<&std::path::PathBuf>,
) -> Result<warden_proxy::tool_pins::ToolPins, i32> {
    use warden_proxy::tool_pins::ToolPins;
    match (mode, pin_file) {
        (PinMode::Strict, Some(path)) => match warden_proxy::tool_pins::load_pin_file(path) {
            Ok(file) => Ok(ToolPins::Strict(file)),
            Err(e) => {
                eprint!("{}", crate::lint::render_report(&e));
                Err(exit::USAGE)
            }
        },
        (PinMode::Strict, None) => {
            eprintln!(
                "error: strict tool pinning needs a pin file\n  help: write one with `warden tools pin --state FILE > tools.lock` and give it with `--pin-file tools.lock`"
            );
            Err(exit::USAGE)
        }
        (_, Some(_)) => {
            eprintln!(
                "error: a pin file is read in strict mode only\n  help: add `--tool-pins strict`"
            );
            Err(exit::USAGE)
        }
        (PinMode::TrustOnFirstUse, None) => Ok(ToolPins::TrustOnFirstUse),
        (PinMode::Off, None) => Ok(ToolPins::Off),
    }
}

/// The key that seals 2026-07-28 confirmations: the file's (shared by
/// replicas), else this process's own.
pub(crate) fn load_confirm_key(
    path: Option<&Path>,
) -> Result<Arc<warden_proxy::seal::SealKey>, i32> {
    match path {
        None => Ok(warden_proxy::seal::SealKey::process()),
        Some(path) => warden_proxy::seal::SealKey::load(path)
            .map(Arc::new)
            .map_err(|e| {
                eprint!("{}", crate::lint::render_report(&e));
                exit::USAGE
            }),
    }
}

/// The provenance signer from an ed25519 PKCS#8 PEM file, if one is given.
pub(crate) fn load_signer(
    path: Option<&PathBuf>,
) -> Result<Option<Arc<warden_proxy::provenance_token::Signer>>, i32> {
    match path {
        None => Ok(None),
        Some(path) => warden_proxy::provenance_token::Signer::load(path)
            .map(|s| Some(Arc::new(s)))
            .map_err(|e| {
                eprint!("{}", crate::lint::render_report(&e));
                exit::USAGE
            }),
    }
}

/// Watches the policy path; each reload that changed the set sends one
/// message on the returned channel (sessions then tell their clients to
/// list tools again). A path that cannot be watched is reported and
/// deciding goes on with the policies loaded.
pub(crate) fn watch_policies(
    path: &Path,
    engine: &Arc<Engine>,
    debounce: Duration,
    metrics: Option<Arc<Metrics>>,
) -> (mpsc::UnboundedReceiver<()>, Option<WatchHandle>) {
    let (reloads_tx, reloads_rx) = mpsc::unbounded_channel();
    let reloader = Arc::new(PolicyReloader::new(path, Arc::clone(engine)));
    let on_reload = Box::new(move |event: &ReloadEvent| match event {
        ReloadEvent::Reloaded { version, rules } => {
            eprintln!("warden: policies reloaded: version {version}, {rules} rules");
            if let Some(m) = &metrics {
                m.record_reload(Some(version));
            }
            let _ = reloads_tx.send(());
        }
        ReloadEvent::Failed { message, .. } => {
            if let Some(m) = &metrics {
                m.record_reload(None);
            }
            eprintln!("warden: {message}")
        }
        ReloadEvent::RulesRemoved { version, removed } => eprintln!(
            "warden: warning: the policies reloaded as version {version} no longer have {} rule(s) that were in force: {}",
            removed.len(),
            removed
                .iter()
                .map(|r| format!("`{r}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        ReloadEvent::WatchError { message } => {
            eprintln!("warden: watching the policies failed: {message}")
        }
    });
    let watch = match reloader.watch(debounce, Some(on_reload)) {
        Ok(w) => Some(w),
        Err(e) => {
            eprint!("{}", crate::lint::render_report(&e));
            None
        }
    };
    (reloads_rx, watch)
}

/// The OS user warden runs as, for the default identity: the name of the
/// process's real uid in the user database, or the uid as a number when
/// it has no entry (a container's arbitrary uid). `$USER` and `$LOGNAME`
/// are not read: they are unset under cron, systemd and `docker exec`,
/// and whoever starts the process can set them to anything, while the uid
/// is what the OS itself says.
#[cfg(unix)]
pub(crate) fn os_user() -> String {
    use nix::unistd::{Uid, User};
    let uid = Uid::current();
    match User::from_uid(uid) {
        Ok(Some(user)) if !user.name.is_empty() => user.name,
        _ => uid.to_string(),
    }
}

/// The OS user warden runs as, for the default identity (no uids here).
#[cfg(not(unix))]
pub(crate) fn os_user() -> String {
    std::env::var("USERNAME")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "unknown".to_string())
}

/// Completes on SIGTERM or SIGINT (Ctrl-C): what stops a server.
pub(crate) async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::forgotten_on_restart;

    fn set(text: &str) -> warden_lang::CompiledPolicySet {
        let mut s = warden_lang::Sources::new();
        s.add("t.policy", text);
        warden_lang::compile_policy_set(&s)
            .expect("compiles")
            .policy_set
    }

    #[test]
    fn the_restart_warning_names_what_outlives_a_session() {
        let per_user = "default allow\ncap-consecutive c {\n  tool \"run\"\n  max 3 per user\n}\n";
        assert_eq!(
            forgotten_on_restart(&set(per_user)),
            Some("per-user and per-agent caps and rates are")
        );
        let per_tool =
            "default allow\nrate-limit r {\n  tool \"run\"\n  max 3 per 1h per tool\n}\n";
        assert_eq!(
            forgotten_on_restart(&set(per_tool)),
            Some("caps, rates and budgets not counted per session are")
        );
        let budget = "default allow\nbudget b {\n  tool \"run\"\n  sum args.cost\n  max 3 per 1h per user\n}\n";
        assert_eq!(
            forgotten_on_restart(&set(budget)),
            Some("caps, rates and budgets not counted per session are")
        );
        let per_session =
            "default allow\ncap-consecutive c {\n  tool \"run\"\n  max 3 per session\n}\n";
        assert_eq!(forgotten_on_restart(&set(per_session)), None);
    }
}
