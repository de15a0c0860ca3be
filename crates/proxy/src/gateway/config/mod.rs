//! The `warden serve` configuration file: a TOML file (docs/config.md) read
//! into a checked [`GatewayConfig`], or a [`ConfigError`] listing every
//! problem in it at once, each at its file:line:col with help.
//!
//! - `reader`: walks toml's spanned document, one problem per bad value.
//! - `env`: `${VAR}` expansion of string values.
//! - `build`: the top-level keys, `[identity]`, `[tls]`, `[auth]`,
//!   `[limits]`, `[federation]`; `server`: the `[[server]]` tables.
//! - `error`: [`ConfigError`], [`Problem`], [`Findings`].
//!
//! What this checks is the file itself. Whether the files it names load
//! (policies, keys, certificates) is checked by whoever loads them: `warden
//! check` and `warden serve`.

mod build;
mod env;
mod error;
mod reader;
mod server;
#[cfg(test)]
mod tests;

pub use error::{ConfigError, Findings, Problem};

use crate::{ProxyConfig, Upstream};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Default `[federation].separator`.
pub const DEFAULT_SEPARATOR: &str = "__";
/// Default `[limits].drain_timeout`.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// A checked `warden serve` configuration. Paths are resolved against the
/// config file's directory; defaults are filled in. `Debug` leaves out the
/// file's text and header values (they may hold secrets).
#[derive(Clone, PartialEq)]
pub struct GatewayConfig {
    /// The config file as given.
    pub file: PathBuf,
    /// The file's text, for messages about a span (e.g. [`ServerConfig::span`]).
    pub text: Arc<str>,
    /// `listen`, normalised: a bare port becomes `127.0.0.1:PORT`.
    pub listen: String,
    /// `policies`: a policy file or directory.
    pub policies: PathBuf,
    /// `decision_log`; `None`: standard error.
    pub decision_log: Option<PathBuf>,
    /// `decision_log_fsync`: each call also waits for `fdatasync` of its
    /// decision log line (one per group of lines written together).
    /// Default false; true needs `decision_log`.
    pub decision_log_fsync: bool,
    /// `redact`: argument keys the decision log never shows.
    pub redact: Vec<String>,
    /// `state`: a SQLite file for caps, rates and records, or a Redis
    /// server for caps and rates shared by replicas; `None`: memory.
    pub state: Option<warden_engine::StateLocation>,
    /// `decision_log_max_value`: bytes one argument value may take in a
    /// decision log line (a longer one is logged as its hash, size and
    /// prefix).
    pub decision_log_max_value: usize,
    /// `decision_log_rotate_bytes`: rotate the decision log file once it
    /// holds this many bytes (renamed to `<file>.NNNNNN`, the hash chain
    /// going on in a new file); `None`: never. Needs `decision_log`.
    pub decision_log_rotate_bytes: Option<u64>,
    /// `decision_log_checkpoint_every`: lines between two signed
    /// checkpoints of the decision log's chain (with `signing_key`).
    pub decision_log_checkpoint_every: u64,
    /// `[metrics] listen`: where `/metrics` is served (an admin listener
    /// apart from `listen`); `None`: no metrics.
    pub metrics_listen: Option<String>,
    /// `[traces]`: OpenTelemetry traces over OTLP/HTTP; `None`: none.
    pub traces: Option<crate::traces::TraceSettings>,
    /// `[approvals]`: the webhook pending approvals are POSTed to.
    pub approvals_webhook: Option<crate::approvals::WebhookSettings>,
    /// `[tools] pins` and `pin_file`: how tool definitions are pinned
    /// (trust on first use by default), and the pin file strict mode reads.
    pub tool_pins: crate::tool_pins::ToolPins,
    pub pin_file: Option<PathBuf>,
    /// `public_url`: where people reach warden, for the approval page's
    /// links; `None`: the listener's own address.
    pub public_url: Option<String>,
    /// `mode = "shadow"`: decide and log every call, enforce nothing.
    pub shadow_all: bool,
    /// `records`: a PostgreSQL URL for the ledger of records agents
    /// created, shared by replicas; `None`: with `state` (SQLite file or
    /// memory). Shown without its password.
    pub records: Option<String>,
    /// `confirm_key`: the file of the key that seals 2026-07-28
    /// confirmations, shared by replicas; `None`: each process its own.
    pub confirm_key: Option<PathBuf>,
    /// `signing_key`: ed25519 PKCS#8 PEM for signed provenance.
    pub signing_key: Option<PathBuf>,
    /// `allow_origins`: origins allowed besides loopback ones.
    pub allow_origins: Vec<String>,
    /// `reload_debounce`: quiet time after a change to the policies (and to
    /// this file) before it is reloaded.
    pub reload_debounce: Duration,
    /// `[identity]`: whom calls act for without a bearer token.
    pub identity: IdentityDefaults,
    /// `[tls]`; `None`: plain HTTP.
    pub tls: Option<TlsFiles>,
    /// `[auth]`, built as `warden proxy`'s `--jwt-*` flags build it; the
    /// keys are not loaded yet (`crate::bearer::Verifier::load`).
    pub auth: Option<crate::bearer::BearerSettings>,
    /// `[limits]`.
    pub limits: Limits,
    /// `[federation].separator`: between server and tool/prompt name on `/mcp`.
    pub separator: String,
    /// `[[server]]`, in file order; at least one.
    pub servers: Vec<ServerConfig>,
}

/// `[identity]`: whom calls act for when there is no bearer token.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdentityDefaults {
    /// `user`; `None`: the OS user warden runs as (the CLI finds it).
    pub user: Option<String>,
    /// `groups`.
    pub groups: Vec<String>,
    /// `model`.
    pub model: Option<String>,
}

/// `[tls]`: the listener's certificate chain and private key (PEM files).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// `[limits]`, defaults filled in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// `max_message_bytes`: the largest message accepted from either side.
    pub max_message_bytes: usize,
    /// `confirm_timeout`: how long to wait for a person's answer.
    pub confirm_timeout: Duration,
    /// `call_timeout`: default for servers without their own; zero: none.
    pub call_timeout: Duration,
    /// `session_idle_timeout`: an HTTP session idle this long is ended.
    pub session_idle_timeout: Duration,
    /// `header_read_timeout`, `body_read_timeout`, `max_connections`.
    pub listen: crate::listener::ListenLimits,
    /// `drain_timeout`: on SIGTERM, how long calls in flight may finish.
    pub drain_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_bytes: crate::DEFAULT_MAX_MESSAGE_BYTES,
            confirm_timeout: crate::DEFAULT_CONFIRM_TIMEOUT,
            call_timeout: crate::config::DEFAULT_CALL_TIMEOUT,
            session_idle_timeout: crate::DEFAULT_SESSION_IDLE_TIMEOUT,
            listen: crate::listener::ListenLimits::default(),
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
        }
    }
}

/// `instances`: how many children a stdio server gets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Instances {
    /// `"per-session"` (the default): a child per client session, as
    /// `warden proxy --listen` runs it.
    #[default]
    PerSession,
    /// `"shared"`: one child for all sessions.
    Shared,
}

/// One `[[server]]`. `Debug` shows header names only (values are often
/// credentials; the command's env is redacted by its own `Debug`).
#[derive(Clone, PartialEq)]
pub struct ServerConfig {
    /// `name`: what policies see (`via server "..."`) and the route
    /// `/servers/<name>/mcp`.
    pub name: String,
    /// `command` (+ `args`, `env`, `cwd`) or `url`. A command with a `/`
    /// that is relative is resolved against the config file's directory; a
    /// bare name is looked up on PATH when it starts.
    pub upstream: Upstream,
    /// `headers` (url servers only), in file order.
    pub headers: Vec<(String, String)>,
    /// `instances` (command servers; `PerSession` for url ones).
    pub instances: Instances,
    /// `call_timeout`: the server's own, else `[limits].call_timeout`.
    pub call_timeout: Duration,
    /// `required`: `/readyz` fails while this server is unreachable.
    pub required: bool,
    /// The byte range of this `[[server]]` table in the file, for messages.
    pub span: (usize, usize),
}

impl ServerConfig {
    /// Whether `other` runs the same upstream the same way: everything but
    /// [`ServerConfig::span`] (which moves when lines above it change). A
    /// reload restarts a server only when this is false.
    pub fn same_settings(&self, other: &ServerConfig) -> bool {
        ServerConfig {
            span: other.span,
            ..self.clone()
        } == *other
    }
}

impl fmt::Debug for GatewayConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Destructured without `..`: a new field must be added here too.
        let GatewayConfig {
            file,
            text,
            listen,
            policies,
            decision_log,
            decision_log_fsync,
            redact,
            state,
            decision_log_max_value,
            decision_log_rotate_bytes,
            decision_log_checkpoint_every,
            shadow_all,
            records,
            confirm_key,
            signing_key,
            allow_origins,
            reload_debounce,
            identity,
            tls,
            auth,
            limits,
            metrics_listen,
            traces,
            approvals_webhook,
            tool_pins,
            pin_file,
            public_url,
            separator,
            servers,
        } = self;
        f.debug_struct("GatewayConfig")
            .field("file", file)
            .field("text", &format_args!("<{} bytes>", text.len()))
            .field("listen", listen)
            .field("policies", policies)
            .field("decision_log", decision_log)
            .field("decision_log_fsync", decision_log_fsync)
            .field("redact", redact)
            .field("state", state)
            .field("decision_log_max_value", decision_log_max_value)
            .field("decision_log_rotate_bytes", decision_log_rotate_bytes)
            .field(
                "decision_log_checkpoint_every",
                decision_log_checkpoint_every,
            )
            .field("shadow_all", shadow_all)
            .field(
                "records",
                &records.as_deref().map(warden_engine::remote::redacted),
            )
            .field("confirm_key", confirm_key)
            .field("signing_key", signing_key)
            .field("allow_origins", allow_origins)
            .field("reload_debounce", reload_debounce)
            .field("identity", identity)
            .field("tls", tls)
            .field("auth", auth)
            .field("limits", limits)
            .field("metrics_listen", metrics_listen)
            .field("traces", traces)
            .field("approvals_webhook", approvals_webhook)
            .field("tool_pins", &tool_pins.name())
            .field("pin_file", pin_file)
            .field("public_url", public_url)
            .field("separator", separator)
            .field("servers", servers)
            .finish()
    }
}

impl fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ServerConfig {
            name,
            upstream,
            headers,
            instances,
            call_timeout,
            required,
            span,
        } = self;
        let header_names: Vec<(&str, &str)> = headers
            .iter()
            .map(|(n, _)| (n.as_str(), "<redacted>"))
            .collect();
        f.debug_struct("ServerConfig")
            .field("name", name)
            .field("upstream", upstream)
            .field("headers", &header_names)
            .field("instances", instances)
            .field("call_timeout", call_timeout)
            .field("required", required)
            .field("span", span)
            .finish()
    }
}

impl GatewayConfig {
    /// Reads and checks the file; every problem at once. `${VAR}` is looked
    /// up in warden's environment.
    pub fn load(path: &Path) -> Result<GatewayConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: error::for_terminal(&path.display().to_string(), false),
            message: e.to_string(),
        })?;
        let env = |name: &str| std::env::var_os(name).and_then(|v| v.into_string().ok());
        GatewayConfig::parse(path, &text, &env)
    }

    /// [`GatewayConfig::load`] from text, with an environment lookup (tests
    /// pass a map). `file` names the file in messages and is where relative
    /// paths are resolved from.
    pub fn parse(
        file: &Path,
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<GatewayConfig, ConfigError> {
        build::parse(file, text, env)
    }

    /// Problems about this file (found by whoever loads what it names)
    /// rendered with its text: `warden check`'s warnings, a key file that
    /// does not load.
    pub fn findings(
        &self,
        title: impl Into<String>,
        severity: miette::Severity,
        mut problems: Vec<Problem>,
    ) -> Findings {
        for p in &mut problems {
            p.finish(&self.text);
        }
        Findings {
            title: error::for_terminal(&title.into(), false),
            severity,
            src: miette::NamedSource::new(
                error::for_terminal(&self.file.display().to_string(), false),
                error::display_source(&self.text),
            ),
            problems,
        }
    }

    /// The span of a key's value, for [`GatewayConfig::findings`]: `key`,
    /// `section.key`, or `server.N.key` for the `N`th (0-based)
    /// `[[server]]`; the file's start when absent.
    pub fn span_of(&self, key: &str) -> std::ops::Range<usize> {
        build::span_of(&self.text, key).unwrap_or(0..0)
    }

    /// The [`ProxyConfig`] for one server: the shared settings plus that
    /// server's upstream, name (`server_name = Some(name)`), call timeout
    /// and headers. `user` is whom calls act for without a bearer token
    /// (`[identity].user`, else the OS user). The provenance signer and the
    /// bearer verifier are left `None`: they are loaded from
    /// [`GatewayConfig::signing_key`] and [`GatewayConfig::auth`] once, by
    /// the caller, and shared.
    pub fn proxy_config(&self, server: &ServerConfig, user: String) -> ProxyConfig {
        let mut cfg = self.shared_config(server.upstream.clone(), user);
        cfg.server_name = Some(server.name.clone());
        cfg.call_timeout = server.call_timeout;
        cfg.upstream_headers = server.headers.clone();
        cfg
    }

    /// The [`ProxyConfig`] holding only the shared HTTP-side settings
    /// (origins, idle timeout, listener limits, `max_message_bytes`, the
    /// identity defaults, the confirm and call timeouts), for the federated
    /// endpoint's HTTP service. Its upstream is an empty URL, which fails to
    /// start: this config is for the HTTP side only, never for a relay.
    pub fn http_config(&self, user: String) -> ProxyConfig {
        self.shared_config(Upstream::Url(String::new()), user)
    }

    fn shared_config(&self, upstream: Upstream, user: String) -> ProxyConfig {
        let mut cfg = ProxyConfig::new(upstream, user);
        cfg.groups = self.identity.groups.clone();
        cfg.model = self.identity.model.clone();
        cfg.confirm_timeout = self.limits.confirm_timeout;
        cfg.call_timeout = self.limits.call_timeout;
        cfg.max_message_bytes = self.limits.max_message_bytes;
        cfg.allowed_origins = self.allow_origins.clone();
        cfg.session_idle_timeout = self.limits.session_idle_timeout;
        cfg.listen_limits = self.limits.listen;
        cfg.shadow_all = self.shadow_all;
        cfg.tool_pins = self.tool_pins.clone();
        // Rules name several servers here; `warden check` and the start
        // check names against the config's servers instead.
        cfg.warn_unmatched_rules = false;
        cfg
    }

    /// The server called `name`.
    pub fn server(&self, name: &str) -> Option<&ServerConfig> {
        self.servers.iter().find(|s| s.name == name)
    }
}
