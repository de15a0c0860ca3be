//! `warden proxy`: loads the policies, opens the decision log, watches the
//! policy path for changes (all three through `runtime`, as `warden serve`
//! does) and runs the MCP proxy, on stdio (what Claude Desktop, Claude Code
//! and Cursor launch) or on Streamable HTTP (`--listen`). Also the hidden
//! upstream commands the tests and the demo launch as children
//! (`demo-server`, `proxy-test-upstream`).

use crate::{exit, runtime};
use clap::Args;
use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use warden_engine::DEFAULT_DEBOUNCE;
use warden_proxy::traces::TraceSettings;
use warden_proxy::{DEFAULT_MAX_MESSAGE_BYTES, ProxyConfig, Upstream, UpstreamCommand};

/// `warden proxy` arguments.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  warden proxy --policies policies/ -- npx -y @modelcontextprotocol/server-everything\n  warden proxy --policies policies/ --name genomics --audit-log decisions.jsonl -- ./genomics-mcp"
)]
pub(crate) struct ProxyArgs {
    /// Policy file or directory (watched; changes apply without a restart).
    #[arg(long)]
    policies: PathBuf,
    /// The upstream's server name in policies. Default: the `serverInfo.name`
    /// the upstream reports in its initialize answer, else the command's file name.
    #[arg(long)]
    name: Option<String>,
    /// Serve Streamable HTTP at http://HOST:PORT/mcp instead of stdio
    /// (a bare PORT binds 127.0.0.1).
    #[arg(long, value_name = "HOST:PORT")]
    listen: Option<String>,
    /// With --listen: the threads that serve sessions (0: all on the main
    /// thread, the fewest hand-offs per call, but a session waiting on a
    /// state store holds up the others). Default: one per core. On stdio
    /// warden always runs on one thread.
    #[arg(long, value_name = "N", requires = "listen")]
    worker_threads: Option<usize>,
    /// With --listen: an Origin allowed besides loopback ones (repeatable),
    /// e.g. https://app.example.com.
    #[arg(long = "allow-origin", value_name = "ORIGIN", requires = "listen")]
    allow_origins: Vec<String>,
    /// Serve Prometheus metrics at http://HOST:PORT/metrics, an admin
    /// listener apart from the MCP one (a bare PORT binds 127.0.0.1).
    #[arg(long, value_name = "HOST:PORT")]
    metrics_listen: Option<String>,
    /// On stdio: serve the approval page at http://HOST:PORT/approvals/...
    /// (a bare PORT binds 127.0.0.1), so that a confirmation the client
    /// cannot ask is approved there (docs/approvals.md). With --listen the
    /// page is on that listener.
    #[arg(long, value_name = "HOST:PORT", conflicts_with = "listen")]
    approvals_listen: Option<String>,
    /// With --listen: where people reach this warden (an origin such as
    /// https://warden.example.com, when it sits behind a reverse proxy):
    /// the approval page's links start with it. Default: the listener's
    /// address.
    #[arg(long, value_name = "URL", value_parser = public_url)]
    public_url: Option<String>,
    /// With --listen: POST each pending approval (who asks for what, the
    /// approval page's link) as JSON to URL, signed with the secret in
    /// --approvals-webhook-secret (Warden-Signature: sha256=HMAC of
    /// "TIMESTAMP.BODY"; docs/approvals.md).
    #[arg(long, value_name = "URL", requires = "approvals_webhook_secret")]
    approvals_webhook: Option<String>,
    /// The file holding the approvals webhook's shared secret.
    #[arg(long, value_name = "FILE", requires = "approvals_webhook")]
    approvals_webhook_secret: Option<PathBuf>,
    /// Export an OpenTelemetry span per governed call (with its decision,
    /// confirmation wait and upstream call) over OTLP/HTTP to URL's
    /// /v1/traces, e.g. http://127.0.0.1:4318. Default: no traces.
    #[arg(long, value_name = "URL")]
    otlp_endpoint: Option<String>,
    /// With --otlp-endpoint: the share of new traces kept, 0 to 1; a call
    /// continuing a client's trace follows the client's sampled flag.
    #[arg(long, value_name = "RATIO", default_value_t = 1.0,
          requires = "otlp_endpoint", value_parser = sample_ratio)]
    trace_sample_ratio: f64,
    /// With --otlp-endpoint: an argument whose value goes on the call's
    /// span, as the decision log writes it (redacted, bounded); repeatable.
    /// Default: no argument values on spans.
    #[arg(
        long = "trace-argument",
        value_name = "NAME",
        requires = "otlp_endpoint"
    )]
    trace_arguments: Vec<String>,
    /// Append one JSON line per decided call to FILE (default: standard error).
    #[arg(long, value_name = "FILE")]
    audit_log: Option<PathBuf>,
    /// Each call also waits until its --audit-log line is synced to disk
    /// (fdatasync, one per group of lines written together), so the line
    /// survives a power loss, not only warden crashing.
    #[arg(long, requires = "audit_log")]
    audit_log_fsync: bool,
    /// Bytes one argument value may take in a decision log line; a longer
    /// one (a file's content, say) is logged as its SHA-256, size and first
    /// 64 characters.
    #[arg(long, value_name = "BYTES",
          default_value_t = warden_engine::log::DEFAULT_MAX_VALUE_BYTES as u64,
          value_parser = clap::value_parser!(u64).range(warden_engine::log::MIN_MAX_VALUE_BYTES as u64..=16 * 1024 * 1024))]
    audit_log_max_value: u64,
    /// Rotate the --audit-log file once it holds BYTES: it is renamed to
    /// FILE.000001 (then .000002, ...) and the hash chain goes on in a new
    /// FILE. Default: never.
    #[arg(long, value_name = "BYTES", requires = "audit_log",
          value_parser = clap::value_parser!(u64).range(1024..))]
    audit_log_rotate_bytes: Option<u64>,
    /// With --signing-key: lines between two signed checkpoints of the
    /// decision log's hash chain (one is also written at each rotation and
    /// at shutdown).
    #[arg(long, value_name = "LINES",
          default_value_t = warden_engine::log::DEFAULT_CHECKPOINT_EVERY,
          value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    audit_log_checkpoint_every: u64,
    /// Argument keys whose values the decision log never shows (repeatable).
    #[arg(long = "redact", value_name = "KEY")]
    redact: Vec<String>,
    /// The upstream MCP server as a Streamable HTTP URL.
    #[arg(long, value_name = "URL", conflicts_with = "command")]
    upstream: Option<String>,
    /// Whom the agent's calls act for (default: the OS user).
    #[arg(long)]
    user: Option<String>,
    /// A group of that user (repeatable).
    #[arg(long = "group", value_name = "GROUP")]
    groups: Vec<String>,
    /// The model behind the agent, if known.
    #[arg(long)]
    model: Option<String>,
    /// A TOML file with the identity calls act for (`user`, `groups`,
    /// `model`), for launchers that cannot pass flags per person; `--user`,
    /// `--group` and `--model` override what it says. Declared, as flags are.
    #[arg(long, value_name = "FILE")]
    identity: Option<PathBuf>,
    /// Seconds to wait for the person to answer a confirmation.
    #[arg(long, value_name = "SECONDS", default_value_t = 120)]
    confirm_timeout: u64,
    /// Seconds to wait for the upstream's answer to a call (or any request
    /// sent on the client's behalf), counted from the request or its last
    /// progress notification; then the client gets an error and the
    /// upstream a cancellation. 0: wait forever.
    #[arg(long, value_name = "SECONDS", default_value_t = 600)]
    call_timeout: u64,
    /// Sign each forwarded call's provenance with this ed25519 private key
    /// (PKCS#8 PEM): a short-lived token in `_meta` and, toward an HTTP
    /// upstream, the Warden-Provenance-Token header (`warden verify` checks it).
    /// It also signs the decision log's checkpoints (`warden audit verify`).
    #[arg(long, value_name = "FILE")]
    signing_key: Option<PathBuf>,
    /// Seal 2026-07-28 confirmations (`requestState`) with this key: 32
    /// random bytes as 64 hex digits (`openssl rand -hex 32`). Processes
    /// sharing it accept each other's confirmations. Default: a key drawn
    /// at start, so a confirmation is answered through this process only.
    #[arg(long, value_name = "FILE")]
    confirm_key: Option<PathBuf>,
    /// `shadow`: decide and log every call as `enforce` would, but refuse
    /// nothing, ask for no confirmation and hide no tool; each decision
    /// log line says `"mode": "shadow"`. Per-rule `mode shadow` is apart.
    #[arg(long, value_enum, default_value_t = runtime::Mode::Enforce)]
    mode: runtime::Mode,
    /// How tool definitions are pinned: `trust-on-first-use` keeps each
    /// tool's first definition in the state store and hides a changed one
    /// (its calls refused) until `warden tools approve`; `strict` trusts
    /// only --pin-file; `off` checks nothing.
    #[arg(long, value_enum, default_value_t = runtime::PinMode::TrustOnFirstUse)]
    tool_pins: runtime::PinMode,
    /// With --tool-pins strict: the pin file (`warden tools pin > tools.lock`).
    #[arg(long, value_name = "FILE")]
    pin_file: Option<PathBuf>,
    /// With --listen: every request needs a bearer JWT from this issuer
    /// (its `iss`, exactly), and calls act for the token's user. On stdio
    /// with --approvals-listen: approvers give such a token on the approval
    /// page (four eyes; calls act for --user). Needs --jwt-audience and
    /// --jwks or --jwt-key.
    #[arg(long, value_name = "URL")]
    jwt_issuer: Option<String>,
    /// With --jwt-issuer: an accepted `aud` (repeatable). It must name
    /// warden itself, e.g. its public MCP URL, never the upstream or
    /// another service; the first is warden's resource name in its
    /// /.well-known/oauth-protected-resource metadata.
    #[arg(long = "jwt-audience", value_name = "AUD")]
    jwt_audiences: Vec<String>,
    /// With --jwt-issuer: the issuer's public keys as a JWKS JSON file
    /// (what its jwks_uri serves); a token's `kid` picks the key.
    #[arg(long, value_name = "FILE", conflicts_with = "jwt_keys")]
    jwks: Option<PathBuf>,
    /// With --jwt-issuer: a PEM public key of the issuer (repeatable):
    /// RSA, EC P-256/P-384 or Ed25519.
    #[arg(long = "jwt-key", value_name = "FILE")]
    jwt_keys: Vec<PathBuf>,
    /// The token claim naming the user [default: sub].
    #[arg(long, value_name = "CLAIM")]
    user_claim: Option<String>,
    /// The token claim listing the user's groups, an array or a
    /// space-separated string [default: groups]; absent: --group.
    #[arg(long, value_name = "CLAIM")]
    groups_claim: Option<String>,
    /// The token claim naming the agent [default: azp, else client_id];
    /// absent: the client's declared clientInfo.name.
    #[arg(long, value_name = "CLAIM")]
    agent_claim: Option<String>,
    /// The token claim naming the model [default: none; --model].
    #[arg(long, value_name = "CLAIM")]
    model_claim: Option<String>,
    /// Seconds of clock skew allowed on a token's `exp` and `nbf`, at most
    /// 300.
    #[arg(long, value_name = "SECONDS", default_value_t = warden_proxy::bearer::DEFAULT_LEEWAY_SECS,
          value_parser = clap::value_parser!(u64).range(0..=warden_proxy::bearer::MAX_LEEWAY_SECS))]
    jwt_leeway: u64,
    /// With --listen: milliseconds a connection has to send a request's
    /// headers before it is closed (slow clients cannot hold connections).
    #[arg(long, value_name = "MS", requires = "listen",
          default_value_t = warden_proxy::listener::DEFAULT_HEADER_READ_TIMEOUT.as_millis() as u64,
          value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    header_read_timeout: u64,
    /// With --listen: milliseconds a request has to send its body before it
    /// is answered 408.
    #[arg(long, value_name = "MS", requires = "listen",
          default_value_t = warden_proxy::listener::DEFAULT_BODY_READ_TIMEOUT.as_millis() as u64,
          value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    body_read_timeout: u64,
    /// With --listen: connections served at once; more wait until one ends.
    #[arg(long, value_name = "N", requires = "listen",
          default_value_t = warden_proxy::listener::DEFAULT_MAX_CONNECTIONS as u64,
          value_parser = clap::value_parser!(u64).range(1..=65_536))]
    max_connections: u64,
    /// Keep cap and rate state in this SQLite file (created if missing), so
    /// that a restart resets no per-user or per-agent cap or rate; several
    /// warden processes of one machine may share it. A `redis://` URL keeps
    /// it in a Redis server that processes on several machines share.
    /// Default: in memory.
    #[arg(long, value_name = "FILE|URL")]
    state: Option<PathBuf>,
    /// Milliseconds of quiet after a change to the policy files before they
    /// are reloaded: an editor's save or a ConfigMap swap is several events.
    /// Files written in place (not renamed into place) need enough of it to
    /// be complete when read; a bad read keeps the last good set anyway.
    #[arg(long, value_name = "MS", default_value_t = DEFAULT_DEBOUNCE.as_millis() as u64)]
    reload_debounce: u64,
    /// The largest message accepted from either side, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_MESSAGE_BYTES)]
    max_message_bytes: usize,
    /// The upstream MCP server as a command (stdio), after `--`.
    #[arg(last = true, value_name = "COMMAND")]
    command: Vec<OsString>,
}

/// The bearer settings from the flags: `Ok(None)` when none is given, an
/// error message (a usage error) when they are incomplete or given without
/// `--listen` or `--approvals-listen`.
fn bearer_settings(
    args: &ProxyArgs,
) -> Result<Option<warden_proxy::bearer::BearerSettings>, String> {
    use warden_proxy::bearer::{BearerSettings, ClaimNames, KeySource};
    let given = args.jwt_issuer.is_some()
        || !args.jwt_audiences.is_empty()
        || args.jwks.is_some()
        || !args.jwt_keys.is_empty()
        || args.user_claim.is_some()
        || args.groups_claim.is_some()
        || args.agent_claim.is_some()
        || args.model_claim.is_some();
    if !given {
        return Ok(None);
    }
    // On stdio the client is the process that launched warden, which has
    // no token; the flags can then only tell approvers apart on the page.
    if args.listen.is_none() && args.approvals_listen.is_none() {
        return Err("bearer authentication (--jwt-issuer, --jwt-audience, --jwks, --jwt-key, --*-claim) needs --listen, or --approvals-listen to authenticate approvers\n  help: on stdio the client is the process that launched warden; give its identity with --user and --group".into());
    }
    let Some(issuer) = args.jwt_issuer.clone() else {
        return Err(
            "bearer authentication needs --jwt-issuer URL (the `iss` of the tokens to accept)"
                .into(),
        );
    };
    if args.jwt_audiences.is_empty() {
        return Err("bearer authentication needs --jwt-audience AUD\n  help: name warden itself (e.g. its public MCP URL), so that tokens minted for other services are refused".into());
    }
    let keys = match (&args.jwks, args.jwt_keys.is_empty()) {
        (Some(path), true) => KeySource::Jwks(path.clone()),
        (None, false) => KeySource::Pem(args.jwt_keys.clone()),
        _ => {
            return Err("bearer authentication needs the issuer's public keys: --jwks FILE or --jwt-key FILE".into());
        }
    };
    let mut claims = ClaimNames::default();
    if let Some(c) = &args.user_claim {
        claims.user = c.clone();
    }
    if let Some(c) = &args.groups_claim {
        claims.groups = c.clone();
    }
    if let Some(c) = &args.agent_claim {
        claims.agent = vec![c.clone()];
    }
    claims.model = args.model_claim.clone();
    Ok(Some(BearerSettings {
        issuer,
        audiences: args.jwt_audiences.clone(),
        keys,
        leeway_secs: args.jwt_leeway,
        claims,
    }))
}

/// `--identity FILE`: whom calls act for, as the operator declares it.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct IdentityFile {
    user: Option<String>,
    #[serde(default)]
    groups: Vec<String>,
    model: Option<String>,
}

fn read_identity_file(path: &std::path::Path) -> Result<IdentityFile, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the identity file `{}`: {e}", path.display()))?;
    toml::from_str(&text).map_err(|e| {
        format!(
            "the identity file `{}` is not valid: {e}\n  help: it holds `user = \"...\"`, `groups = [\"...\"]` and `model = \"...\"`, each optional",
            path.display()
        )
    })
}

/// Sends warden's own logs (tracing) to standard error; `WARDEN_LOG` sets
/// the level (default `warn`), e.g. `WARDEN_LOG=warden_proxy=debug`.
pub(crate) fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("WARDEN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
}

pub(crate) fn run(args: ProxyArgs) -> i32 {
    init_logging();
    let upstream = match (&args.upstream, args.command.split_first()) {
        (Some(_), Some(_)) => {
            eprintln!(
                "error: give the upstream either as `--upstream URL` or as `-- COMMAND`, not both"
            );
            return exit::USAGE;
        }
        (Some(url), None) => Upstream::Url(url.clone()),
        (None, Some((program, rest))) => {
            Upstream::Command(UpstreamCommand::new(program.clone(), rest.iter().cloned()))
        }
        (None, None) => {
            eprintln!(
                "error: no upstream MCP server: give `--upstream URL` or a command after `--`\n  help: e.g. `warden proxy --policies policies/ -- npx -y @modelcontextprotocol/server-everything`"
            );
            return exit::USAGE;
        }
    };
    let listen = args.listen.as_deref().map(runtime::loopback_if_bare);
    let approvals_listen = args
        .approvals_listen
        .as_deref()
        .map(runtime::loopback_if_bare);
    if listen.is_none()
        && approvals_listen.is_none()
        && (args.public_url.is_some() || args.approvals_webhook.is_some())
    {
        eprintln!(
            "error: --public-url and --approvals-webhook are for the approval page, which needs --listen or --approvals-listen\n  help: add `--approvals-listen 127.0.0.1:8940` to serve the page next to stdio"
        );
        return exit::USAGE;
    }
    let metrics_listen = args
        .metrics_listen
        .as_deref()
        .map(runtime::loopback_if_bare);

    let bearer = match bearer_settings(&args) {
        Ok(None) => None,
        Ok(Some(settings)) => match warden_proxy::bearer::Verifier::load(&settings) {
            Ok(v) => Some(Arc::new(v)),
            Err(e) => {
                eprint!("{}", crate::lint::render_report(&e));
                return exit::USAGE;
            }
        },
        Err(message) => {
            eprintln!("error: {message}");
            return exit::USAGE;
        }
    };

    let bundle = match runtime::load_policies(&args.policies) {
        Ok(b) => b,
        Err(code) => return code,
    };
    let state = match runtime::state_arg(args.state.as_deref()) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let engine = match runtime::open_engine(bundle, state.as_ref(), None, "`--state FILE`") {
        Ok(e) => e,
        Err(code) => return code,
    };
    let signer = match runtime::load_signer(args.signing_key.as_ref()) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let confirm_key = match runtime::load_confirm_key(args.confirm_key.as_deref()) {
        Ok(k) => k,
        Err(code) => return code,
    };
    let log = match runtime::open_log(&runtime::LogSettings {
        path: args.audit_log.as_deref(),
        fsync: args.audit_log_fsync,
        rotate_bytes: args.audit_log_rotate_bytes,
        checkpoint_every: args.audit_log_checkpoint_every,
        redact: &args.redact,
        max_value: usize::try_from(args.audit_log_max_value).unwrap_or(usize::MAX),
        shadow: args.mode == runtime::Mode::Shadow,
        signer: signer.as_ref(),
    }) {
        Ok(l) => l,
        Err(code) => return code,
    };

    let file = match args.identity.as_deref().map(read_identity_file).transpose() {
        Ok(f) => f.unwrap_or_default(),
        Err(message) => {
            eprintln!("warden: {message}");
            return exit::USAGE;
        }
    };
    let user = args
        .user
        .clone()
        .or(file.user)
        .unwrap_or_else(runtime::os_user);
    let mut cfg = ProxyConfig::new(upstream, user);
    cfg.server_name = args.name.clone();
    cfg.groups = if args.groups.is_empty() {
        file.groups
    } else {
        args.groups.clone()
    };
    cfg.model = args.model.clone().or(file.model);
    cfg.confirm_timeout = Duration::from_secs(args.confirm_timeout);
    cfg.call_timeout = Duration::from_secs(args.call_timeout);
    cfg.max_message_bytes = args.max_message_bytes;
    cfg.allowed_origins = args.allow_origins.clone();
    cfg.listen_limits = warden_proxy::listener::ListenLimits {
        header_read: Duration::from_millis(args.header_read_timeout),
        body_read: Duration::from_millis(args.body_read_timeout),
        max_connections: usize::try_from(args.max_connections).unwrap_or(usize::MAX),
    };
    cfg.provenance_signer = signer;
    cfg.confirm_key = confirm_key;
    cfg.shadow_all = args.mode == runtime::Mode::Shadow;
    cfg.tool_pins = match runtime::tool_pins(args.tool_pins, args.pin_file.as_ref()) {
        Ok(p) => p,
        Err(code) => return code,
    };
    // On stdio the tokens authenticate approvers on the page, not calls.
    let (bearer, approvers) = if listen.is_some() {
        (bearer.clone(), bearer)
    } else {
        (None, bearer)
    };
    let authenticated = bearer.is_some();
    if approvers.is_none() {
        // Four eyes need to tell people apart: without bearer auth every
        // call acts as one user, so these rules refuse every call.
        for rule in engine.policies().rules() {
            if let Some(by) = rule.approval.as_ref().and_then(|a| a.approver.as_ref()) {
                eprintln!(
                    "warning: rule `{}` ({}) needs the approval of {}, and without bearer authentication warden cannot tell the approver from the caller: its calls are refused\n  help: give --jwt-issuer, --jwt-audience and --jwks (or --jwt-key) with --listen, or with --approvals-listen on stdio, or drop `by` so the caller confirms",
                    rule.id,
                    rule.location,
                    by.who()
                );
            }
        }
    }
    cfg.bearer = bearer;

    let metrics = runtime::metrics_for(metrics_listen.as_deref(), &engine);
    cfg.metrics = metrics.clone();
    let traces = match runtime::start_traces(args.otlp_endpoint.as_ref().map(|endpoint| {
        let mut t = TraceSettings::new(endpoint.clone());
        t.sample_ratio = args.trace_sample_ratio;
        t.arguments = args.trace_arguments.clone();
        t
    })) {
        Ok(t) => t,
        Err(code) => return code,
    };
    cfg.traces = traces.clone();
    cfg.public_url = args.public_url.clone();
    cfg.approvals_webhook = match (&args.approvals_webhook, &args.approvals_webhook_secret) {
        (Some(url), Some(secret_file)) => Some(warden_proxy::approvals::WebhookSettings {
            url: url.clone(),
            secret_file: secret_file.clone(),
        }),
        _ => None,
    };
    let (reloads_rx, _watch) = runtime::watch_policies(
        &args.policies,
        &engine,
        Duration::from_millis(args.reload_debounce),
        metrics.clone(),
    );

    // One session on stdio: a single-threaded runtime saves the cross-thread
    // wake-ups of a work-stealing one on every message (measured in
    // crates/demo/benches/roundtrip.rs). HTTP serves many sessions at once.
    let workers = if listen.is_none() {
        Some(0)
    } else {
        args.worker_threads
    };
    let runtime = match runtime::async_runtime(workers) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let started_metrics = match (&metrics_listen, &metrics) {
        (Some(addr), Some(m)) => runtime.block_on(runtime::start_metrics(
            addr,
            Arc::clone(m),
            Arc::clone(&engine),
        )),
        _ => Ok(()),
    };
    if let Err(e) = started_metrics {
        eprint!("{}", crate::lint::render_report(&e));
        return exit::FAILURE;
    }
    let result = match listen {
        // SIGTERM or Ctrl-C ends the session as the end of stdin does, so
        // that the decision log is closed (and sealed with its checkpoint)
        // instead of the process being killed mid-chain.
        None => runtime.block_on(async move {
            let mut cfg = cfg;
            if let Some(addr) = &approvals_listen {
                let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
                    warden_proxy::ProxyError::Listen {
                        addr: format!("{addr} (approvals)"),
                        message: e.to_string(),
                    }
                })?;
                let base = warden_proxy::approvals::serve_page(
                    &mut cfg,
                    approvers,
                    Arc::clone(&engine),
                    Arc::clone(&log),
                    listener,
                )
                .await?;
                eprintln!("warden: approvals at {base}/approvals/");
            }
            tokio::select! {
                served = warden_proxy::serve_stdio(cfg, engine, log, reloads_rx) => served,
                () = runtime::stop_signal() => Ok(()),
            }
        }),
        Some(addr) => runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind(&addr).await.map_err(|e| {
                warden_proxy::ProxyError::Listen {
                    addr: addr.clone(),
                    message: e.to_string(),
                }
            })?;
            match listener.local_addr() {
                Ok(a) => {
                    if !a.ip().is_loopback() && !authenticated {
                        eprintln!(
                            "warning: warden listens on {a}, beyond loopback, without bearer authentication: anyone who can reach it acts as `{}`\n  help: add --jwt-issuer, --jwt-audience and --jwks (or --jwt-key), or put an authenticating proxy in front",
                            cfg.user
                        );
                    }
                    eprintln!("warden: MCP at http://{a}/mcp")
                }
                Err(_) => eprintln!("warden: MCP at http://{addr}/mcp"),
            }
            warden_proxy::serve_http_until(
                cfg,
                engine,
                log,
                reloads_rx,
                listener,
                runtime::stop_signal(),
            )
            .await
        }),
    };
    // Pending reads of stdin must not keep the process alive.
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

/// `warden demo-server`: the demo genomics MCP server on stdio (hidden; the
/// demo and the tests run it behind the proxy).
pub(crate) fn demo_server(listen: Option<String>) -> i32 {
    init_logging();
    let runtime = match runtime::async_runtime(Some(1)) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let result = runtime.block_on(async move {
        match listen {
            None => warden_demo::serve_stdio().await,
            Some(addr) => {
                let listener = tokio::net::TcpListener::bind(&addr).await?;
                eprintln!(
                    "warden demo-server: MCP at http://{}/mcp",
                    listener.local_addr()?
                );
                warden_demo::serve_http(listener).await
            }
        }
    });
    runtime.shutdown_timeout(Duration::from_millis(100));
    match result {
        Ok(()) => exit::OK,
        Err(e) => {
            eprintln!("error: demo server: {e}");
            exit::FAILURE
        }
    }
}

/// `--public-url`: an origin.
fn public_url(s: &str) -> Result<String, String> {
    warden_proxy::check_origin(s).map_err(|why| format!("`{s}` {why}"))
}

/// `--trace-sample-ratio`: a number from 0 to 1.
fn sample_ratio(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
        _ => Err(format!("`{s}` is not a number from 0 to 1")),
    }
}
