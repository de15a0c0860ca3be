//! The proxy's settings and errors.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Default `--max-message-bytes`: 4 MiB, as rmcp's HTTP server.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;
/// Default `--confirm-timeout`.
pub const DEFAULT_CONFIRM_TIMEOUT: Duration = Duration::from_secs(120);
/// Default `--call-timeout`: ten minutes.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(600);

/// The upstream MCP server as a command to run (stdio transport).
#[derive(Clone, PartialEq, Eq)]
pub struct UpstreamCommand {
    pub program: OsString,
    pub args: Vec<OsString>,
    /// Environment variables the child gets on top of warden's own
    /// environment (a name warden has too takes the value given here).
    /// Often secrets (a token for the server), so `Debug` shows only the
    /// names.
    pub env: Vec<(OsString, OsString)>,
    /// The child's working directory; `None`: warden's.
    pub cwd: Option<PathBuf>,
    /// Whether the child gets warden's whole environment (`warden proxy`'s
    /// way, true from [`UpstreamCommand::new`]). When false (`warden
    /// serve`'s default, `inherit_env = false`), it gets only
    /// `PASSED_ENV` from warden's environment plus [`UpstreamCommand::env`]:
    /// a gateway's environment holds the other servers' secrets.
    pub inherit_env: bool,
}

/// What a child started with `inherit_env = false` still gets from
/// warden's environment: what programs need to run, nothing that names a
/// secret.
pub const PASSED_ENV: &[&str] = &[
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "TERM",
];

impl UpstreamCommand {
    /// `program` with `args`, warden's environment and working directory.
    pub fn new<A>(program: impl Into<OsString>, args: impl IntoIterator<Item = A>) -> Self
    where
        A: Into<OsString>,
    {
        UpstreamCommand {
            program: program.into(),
            args: args.into_iter().map(Into::into).collect(),
            env: Vec::new(),
            cwd: None,
            inherit_env: true,
        }
    }

    /// Where the program would be found when started: a path with a
    /// directory part as it is (relative to `cwd` when given), a bare name
    /// on the `PATH` its `env` gives, else warden's; `None` when that is
    /// no executable file. What `warden check` warns about and what
    /// `/readyz` calls reachable for a stdio server.
    pub fn executable(&self) -> Option<PathBuf> {
        let path_var = self
            .env
            .iter()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| v.clone())
            .or_else(|| std::env::var_os("PATH"));
        resolve_program(
            Path::new(&self.program),
            self.cwd.as_deref(),
            path_var.as_deref(),
        )
    }

    /// The program's file stem, for messages and logs about an upstream
    /// that has not named itself. Never the server name a call is decided
    /// under (see [`ProxyConfig::server_name`]).
    pub fn file_stem(&self) -> String {
        Path::new(&self.program)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "upstream".to_string())
    }
}

/// Where `program` would be found when started: a path with a directory
/// part is taken as it is (relative to `cwd` when given), a bare name is
/// looked up on `path_var`.
pub(crate) fn resolve_program(
    program: &Path,
    cwd: Option<&Path>,
    path_var: Option<&std::ffi::OsStr>,
) -> Option<PathBuf> {
    if program.components().count() > 1 {
        let full = match cwd {
            Some(dir) if program.is_relative() => dir.join(program),
            _ => program.to_path_buf(),
        };
        return is_executable(&full).then_some(full);
    }
    std::env::split_paths(path_var?)
        .map(|dir| dir.join(program))
        .find(|p| is_executable(p))
}

fn is_executable(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    }
    #[cfg(not(unix))]
    {
        path.is_file()
    }
}

/// The upstream MCP server: a command warden runs (stdio) or a
/// Streamable HTTP endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Upstream {
    Command(UpstreamCommand),
    /// The endpoint's URL, e.g. `http://127.0.0.1:8080/mcp`.
    Url(String),
}

impl Upstream {
    /// What messages and logs call an upstream that has not named itself:
    /// the command's file stem, or the URL's host. Never the server name a
    /// call is decided under.
    pub fn default_name(&self) -> String {
        match self {
            Upstream::Command(c) => c.file_stem(),
            Upstream::Url(u) => reqwest::Url::parse(u)
                .ok()
                .and_then(|u| u.host_str().map(str::to_string))
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "upstream".to_string()),
        }
    }
}

impl fmt::Debug for UpstreamCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let UpstreamCommand {
            program,
            args,
            env,
            cwd,
            inherit_env,
        } = self;
        f.debug_struct("UpstreamCommand")
            .field("program", program)
            .field("args", args)
            .field("env", &Redacted(env))
            .field("cwd", cwd)
            .field("inherit_env", inherit_env)
            .finish()
    }
}

/// Name/value pairs shown as `{name: "<redacted>", ...}`: environment
/// variables and headers often carry credentials, and a `Debug` print
/// (a log line, a panic message) must not leak them.
struct Redacted<'a, K>(&'a [(K, K)]);

impl<K: fmt::Debug> fmt::Debug for Redacted<'_, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(k, _)| (k, "<redacted>")))
            .finish()
    }
}

impl From<UpstreamCommand> for Upstream {
    fn from(c: UpstreamCommand) -> Self {
        Upstream::Command(c)
    }
}

/// Default idle timeout of a Streamable HTTP session (`--listen`).
pub const DEFAULT_SESSION_IDLE_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// Everything one proxy run needs besides the engine and the decision log.
#[derive(Clone)]
pub struct ProxyConfig {
    pub upstream: Upstream,
    /// A URL upstream: headers sent on every request to it besides those
    /// warden sets itself, e.g. `("Authorization", "Bearer ...")`. A name
    /// warden sets (`Mcp-*`, `Warden-*`, `Content-Type`, `Accept`, ...) is
    /// refused when the upstream starts; check names earlier with
    /// [`crate::http_upstream::check_upstream_header`]. Ignored for a
    /// command upstream. `Debug` shows only the names.
    pub upstream_headers: Vec<(String, String)>,
    /// The upstream's name in policies (`--name`). When `None`, the
    /// upstream's `serverInfo.name` from its first initialize answer (the
    /// client's, or for 2026-07-28 clients warden's own); a call that
    /// cannot be attributed to a named server is refused.
    pub server_name: Option<String>,
    /// Whom calls act for (`--user`).
    pub user: String,
    /// The user's groups (`--group`).
    pub groups: Vec<String>,
    /// The model behind the agent, if known (`--model`).
    pub model: Option<String>,
    /// How long to wait for the person's answer to a confirmation.
    pub confirm_timeout: Duration,
    /// How long a request sent upstream for the client (a governed
    /// `tools/call` or a relayed request) may go without an answer, counted
    /// from the request or from its last progress notification. Then the
    /// client gets an error and the upstream `notifications/cancelled`.
    /// Zero: no limit. `subscriptions/listen` and `tasks/result`, which
    /// wait by design, have none.
    pub call_timeout: Duration,
    /// The largest message accepted from either side, in bytes.
    pub max_message_bytes: usize,
    /// First delay before restarting a crashed upstream; doubles per crash.
    pub restart_initial: Duration,
    /// Longest delay between restarts.
    pub restart_max: Duration,
    /// How long warden waits for answers to its own requests upstream
    /// (the initialize it replays after a restart, tools/list).
    pub internal_timeout: Duration,
    /// Serving Streamable HTTP: origins allowed besides loopback ones
    /// (`--allow-origin`), e.g. `https://app.example.com`.
    pub allowed_origins: Vec<String>,
    /// Serving Streamable HTTP: a session without requests for this long
    /// is ended (its upstream stopped).
    pub session_idle_timeout: Duration,
    /// Signs a provenance token onto every forwarded call
    /// (`--signing-key`); see [`crate::provenance_token`].
    pub provenance_signer: Option<std::sync::Arc<crate::provenance_token::Signer>>,
    /// Serving Streamable HTTP: every request needs a bearer JWT this
    /// verifies, and the identity of its calls comes from the token
    /// (`--jwt-issuer`, `--jwt-audience`, `--jwks`/`--jwt-key`); see
    /// [`crate::bearer`].
    pub bearer: Option<std::sync::Arc<crate::bearer::Verifier>>,
    /// Serving Streamable HTTP: header and body read timeouts and the
    /// connection limit ([`crate::listener`]).
    pub listen_limits: crate::listener::ListenLimits,
    /// Seals a 2026-07-28 confirmation's `requestState`
    /// (`--confirm-key`, `confirm_key`): replicas that share it accept
    /// each other's confirmations. Default: this process's own key.
    pub confirm_key: std::sync::Arc<crate::seal::SealKey>,
    /// Global shadow mode (`--mode shadow`, `mode = "shadow"`): every call
    /// is decided and logged as it would be, and none is refused or held
    /// for a confirmation (a would-be denial or confirmation is forwarded).
    pub shadow_all: bool,
    /// How tool definitions are pinned (`--tool-pins`, `[tools] pins`):
    /// trust on first use (the default), strict against a pin file, or
    /// off.
    pub tool_pins: crate::tool_pins::ToolPins,
    /// Warn, whenever the upstream's whole tool list is read, of every
    /// rule that names a server or a tool this upstream does not have (it
    /// never applies). `warden proxy`: on; `warden serve`, whose rules
    /// name several servers, checks its server names at start instead.
    pub warn_unmatched_rules: bool,
    /// Prometheus metrics to keep (`--metrics-listen`, `[metrics]`);
    /// `None`: none.
    pub metrics: Option<std::sync::Arc<crate::metrics::Metrics>>,
    /// OpenTelemetry traces of governed calls (`--otlp-endpoint`,
    /// `[traces]`); `None`: none, and a client's trace context passes
    /// through untouched.
    pub traces: Option<std::sync::Arc<crate::traces::Traces>>,
    /// The approval page (`/approvals/<id>` on the HTTP listener), set by
    /// the HTTP server that serves it; `None` (stdio): confirmations are
    /// asked in the chat only.
    pub(crate) approvals: Option<std::sync::Arc<crate::approvals::Approvals>>,
    /// Where pending approvals are POSTed, signed (`--approvals-webhook`,
    /// `[approvals] webhook`); `None`: nowhere.
    pub approvals_webhook: Option<crate::approvals::WebhookSettings>,
    /// Where people reach this warden (`--public-url`, `public_url`): the
    /// approval page's links start with it; `None`: the listener's address.
    pub public_url: Option<String>,
}

impl ProxyConfig {
    /// Defaults for everything but the upstream and the user.
    pub fn new(upstream: impl Into<Upstream>, user: impl Into<String>) -> Self {
        ProxyConfig {
            upstream: upstream.into(),
            upstream_headers: Vec::new(),
            server_name: None,
            user: user.into(),
            groups: Vec::new(),
            model: None,
            confirm_timeout: DEFAULT_CONFIRM_TIMEOUT,
            call_timeout: DEFAULT_CALL_TIMEOUT,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            restart_initial: Duration::from_millis(250),
            restart_max: Duration::from_secs(10),
            internal_timeout: Duration::from_secs(30),
            allowed_origins: Vec::new(),
            session_idle_timeout: DEFAULT_SESSION_IDLE_TIMEOUT,
            provenance_signer: None,
            bearer: None,
            listen_limits: crate::listener::ListenLimits::default(),
            confirm_key: crate::seal::SealKey::process(),
            shadow_all: false,
            tool_pins: crate::tool_pins::ToolPins::default(),
            warn_unmatched_rules: true,
            metrics: None,
            traces: None,
            approvals: None,
            approvals_webhook: None,
            public_url: None,
        }
    }
}

impl fmt::Debug for ProxyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Destructured without `..`: a new field must be added here too.
        let ProxyConfig {
            upstream,
            upstream_headers,
            server_name,
            user,
            groups,
            model,
            confirm_timeout,
            call_timeout,
            max_message_bytes,
            restart_initial,
            restart_max,
            internal_timeout,
            allowed_origins,
            session_idle_timeout,
            provenance_signer,
            bearer,
            listen_limits,
            confirm_key,
            shadow_all,
            tool_pins,
            warn_unmatched_rules,
            metrics,
            traces,
            approvals,
            approvals_webhook,
            public_url,
        } = self;
        f.debug_struct("ProxyConfig")
            .field("upstream", upstream)
            .field("upstream_headers", &Redacted(upstream_headers))
            .field("server_name", server_name)
            .field("user", user)
            .field("groups", groups)
            .field("model", model)
            .field("confirm_timeout", confirm_timeout)
            .field("call_timeout", call_timeout)
            .field("max_message_bytes", max_message_bytes)
            .field("restart_initial", restart_initial)
            .field("restart_max", restart_max)
            .field("internal_timeout", internal_timeout)
            .field("allowed_origins", allowed_origins)
            .field("session_idle_timeout", session_idle_timeout)
            .field("provenance_signer", provenance_signer)
            .field("bearer", bearer)
            .field("listen_limits", listen_limits)
            .field("confirm_key", confirm_key)
            .field("shadow_all", shadow_all)
            .field("tool_pins", &tool_pins.name())
            .field("warn_unmatched_rules", warn_unmatched_rules)
            .field("metrics", &metrics.is_some())
            .field("traces", &traces.is_some())
            .field("approvals", approvals)
            .field("approvals_webhook", approvals_webhook)
            .field("public_url", public_url)
            .finish()
    }
}

/// `url` as a browser origin (`allow_origins`, `public_url`) (scheme, host, optional port; no path, query or
/// credentials), without a trailing slash; else why not.
pub fn check_origin(url: &str) -> Result<String, String> {
    let u = reqwest::Url::parse(url).map_err(|e| format!("is not a URL: {e}"))?;
    if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() {
        return Err("must be an http or https URL with a host".into());
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err("must not hold credentials".into());
    }
    if u.path() != "/" || u.query().is_some() || u.fragment().is_some() {
        return Err("must be an origin, without a path, query or fragment".into());
    }
    Ok(u.as_str().trim_end_matches('/').to_string())
}

/// Why the proxy could not run.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum ProxyError {
    #[error("cannot start the upstream server `{program}`: {message}")]
    #[diagnostic(help(
        "check the command after `--`: it must be an MCP server that speaks stdio, found on PATH or given by path"
    ))]
    Spawn { program: String, message: String },
    #[error("the connection to the MCP client failed: {0}")]
    Client(std::io::Error),
    #[error("the upstream URL `{url}` is not usable: {message}")]
    #[diagnostic(help(
        "give the upstream's Streamable HTTP endpoint, e.g. `--upstream http://127.0.0.1:8080/mcp`"
    ))]
    Url { url: String, message: String },
    #[error("the upstream header `{name}` is not usable: {message}")]
    #[diagnostic(help(
        "give headers warden does not set itself, e.g. `Authorization`, with values of printable ASCII"
    ))]
    Header { name: String, message: String },
    #[error("cannot listen on `{addr}`: {message}")]
    #[diagnostic(help(
        "give --listen as HOST:PORT, e.g. `--listen 127.0.0.1:8931`, on a free port"
    ))]
    Listen { addr: String, message: String },
    #[error(transparent)]
    #[diagnostic(transparent)]
    Webhook(crate::approvals::WebhookError),
}
