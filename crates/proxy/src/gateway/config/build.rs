//! The config file's top level and its sections other than `[[server]]`
//! (`server.rs`): each key read, checked and defaulted, every problem
//! collected; then either a [`GatewayConfig`] or a [`ConfigError`].

use super::error::{ConfigError, Problem};
use super::reader::{Cx, Str, Table};
use super::{DEFAULT_SEPARATOR, GatewayConfig, IdentityDefaults, Limits, TlsFiles, server};
use crate::bearer::{BearerSettings, ClaimNames, DEFAULT_LEEWAY_SECS, KeySource, MAX_LEEWAY_SECS};
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use toml::de::DeTable;
use warden_engine::{PostgresRecords, StateLocation};

/// The longest duration any key takes (longer ones are surely a typo, and
/// deadlines that far away overflow some clocks).
pub(super) const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);
const HOUR: Duration = Duration::from_secs(3600);

const TOP: &[&str] = &[
    "listen",
    "policies",
    "decision_log",
    "decision_log_fsync",
    "decision_log_max_value",
    "decision_log_rotate_bytes",
    "decision_log_checkpoint_every",
    "mode",
    "redact",
    "state",
    "records",
    "confirm_key",
    "signing_key",
    "allow_origins",
    "public_url",
    "reload_debounce",
    "identity",
    "tls",
    "auth",
    "limits",
    "federation",
    "metrics",
    "traces",
    "approvals",
    "tools",
    "server",
];
const IDENTITY: &[&str] = &["user", "groups", "model"];
const TLS: &[&str] = &["cert", "key"];
const AUTH: &[&str] = &[
    "issuer",
    "audiences",
    "jwks",
    "keys",
    "user_claim",
    "groups_claim",
    "agent_claim",
    "model_claim",
    "leeway",
];
const LIMITS: &[&str] = &[
    "max_message_bytes",
    "confirm_timeout",
    "call_timeout",
    "session_idle_timeout",
    "header_read_timeout",
    "body_read_timeout",
    "max_connections",
    "drain_timeout",
];
const FEDERATION: &[&str] = &["separator"];
const METRICS: &[&str] = &["listen"];
const TRACES: &[&str] = &["otlp_endpoint", "sample_ratio", "arguments"];
const APPROVALS: &[&str] = &["webhook", "webhook_secret_file"];
const TOOLS: &[&str] = &["pins", "pin_file"];

/// Where a key belongs, for the help of an unknown key that is known
/// elsewhere (TOML puts every key below a `[section]` line into that
/// section, so a top-level key written late lands in the wrong table).
pub(super) fn elsewhere(key: &str) -> Option<&'static str> {
    if key == "call_timeout" {
        return Some("`[limits]` or a `[[server]]`");
    }
    let places: [(&[&str], &str); 11] = [
        (
            TOP,
            "the top level: keys below a `[section]` line belong to that section, so move it above the first one",
        ),
        (IDENTITY, "`[identity]`"),
        (TLS, "`[tls]`"),
        (AUTH, "`[auth]`"),
        (LIMITS, "`[limits]`"),
        (FEDERATION, "`[federation]`"),
        (METRICS, "`[metrics]`"),
        (TRACES, "`[traces]`"),
        (APPROVALS, "`[approvals]`"),
        (TOOLS, "`[tools]`"),
        (server::KEYS, "a `[[server]]`"),
    ];
    places
        .iter()
        .find(|(keys, _)| keys.contains(&key))
        .map(|(_, place)| *place)
}

pub(super) fn parse(
    file: &Path,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<GatewayConfig, ConfigError> {
    let path = super::error::for_terminal(&file.display().to_string(), false);
    let (doc, syntax) = DeTable::parse_recoverable(text);
    if !syntax.is_empty() {
        let problems = syntax
            .iter()
            .map(|e| {
                let span = e.span().unwrap_or(0..0);
                Problem::error(span, format!("invalid TOML: {}", e.message().trim_end()), "here")
                    .with_help("see https://toml.io for the syntax; strings are quoted, sections are `[name]` lines")
            })
            .collect();
        return Err(invalid(path, text, problems));
    }
    let mut cx = Cx::new(env, text);
    let root = Table::root(&doc);
    root.check_keys(&mut cx, TOP, elsewhere);
    let dir = file.parent().unwrap_or(Path::new("")).to_path_buf();
    let resolve = |s: Str| resolve(&dir, &s.value);

    let listen = root
        .require(
            &mut cx,
            "listen",
            "add e.g. `listen = \"127.0.0.1:8080\"` at the top of the file",
        )
        .then(|| listen(&mut cx, &root))
        .flatten();
    let policies = root
        .require(&mut cx, "policies", "add e.g. `policies = \"policies\"` (a .policy file or a directory of them) at the top of the file")
        .then(|| root.nonempty(&mut cx, "policies"))
        .flatten()
        .map(resolve);
    let decision_log = root.nonempty(&mut cx, "decision_log").map(resolve);
    let decision_log_fsync = decision_log_fsync(&mut cx, &root, root.has("decision_log"));
    let state = state(&mut cx, &root, &dir);
    let decision_log_max_value = root
        .integer(
            &mut cx,
            "decision_log_max_value",
            warden_engine::log::MIN_MAX_VALUE_BYTES as u64..=16 * 1024 * 1024,
        )
        .map_or(warden_engine::log::DEFAULT_MAX_VALUE_BYTES, |n| {
            usize::try_from(n).unwrap_or(usize::MAX)
        });
    let decision_log_rotate_bytes =
        decision_log_rotate_bytes(&mut cx, &root, root.has("decision_log"));
    let decision_log_checkpoint_every = root
        .integer(&mut cx, "decision_log_checkpoint_every", 1..=10_000_000)
        .unwrap_or(warden_engine::log::DEFAULT_CHECKPOINT_EVERY);
    let records = records(&mut cx, &root);
    let shadow_all = mode(&mut cx, &root);
    let signing_key = root.nonempty(&mut cx, "signing_key").map(resolve);
    let confirm_key = root.nonempty(&mut cx, "confirm_key").map(resolve);
    let redact = values(root.strings(&mut cx, "redact"));
    let allow_origins = origins(&mut cx, &root);
    let public_url = public_url(&mut cx, &root);
    let reload_debounce = root
        .duration(&mut cx, "reload_debounce", HOUR)
        .unwrap_or(warden_engine::DEFAULT_DEBOUNCE);
    let identity = identity(&mut cx, &root);
    let tls = tls(&mut cx, &root, &dir);
    let auth = auth(&mut cx, &root, &dir);
    let limits = limits(&mut cx, &root);
    let metrics_listen = metrics(&mut cx, &root);
    let traces = traces(&mut cx, &root);
    let approvals_webhook = approvals(&mut cx, &root, &dir);
    let (tool_pins, pin_file) = tools(&mut cx, &root, &dir);
    let separator = separator(&mut cx, &root);
    let servers = server::servers(
        &mut cx,
        &root,
        &dir,
        separator.as_deref(),
        limits.call_timeout,
    );

    let problems = std::mem::take(&mut cx.problems);
    match (listen, policies, separator) {
        (Some(listen), Some(policies), Some(separator)) if problems.is_empty() => {
            Ok(GatewayConfig {
                file: file.to_path_buf(),
                text: Arc::from(text),
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
            })
        }
        _ if problems.is_empty() => Err(invalid(
            path,
            text,
            vec![Problem::error(0..0, "the config could not be read", "here")],
        )),
        _ => Err(invalid(path, text, problems)),
    }
}

fn invalid(path: String, text: &str, mut problems: Vec<Problem>) -> ConfigError {
    problems.sort_by_key(|p| (p.span.start, p.span.end));
    for p in &mut problems {
        p.finish(text);
    }
    ConfigError::Invalid {
        src: miette::NamedSource::new(path.clone(), super::error::display_source(text)),
        path,
        problems,
    }
}

/// The span of a key's value in `text`: `key`, `section.key`, or with an
/// index into an array of tables, `server.0.command`.
pub(super) fn span_of(text: &str, key: &str) -> Option<Range<usize>> {
    let doc = DeTable::parse(text).ok()?;
    let mut value: Option<&toml::Spanned<toml::de::DeValue<'_>>> = None;
    for part in key.split('.') {
        let next = match value.map(|v| v.get_ref()) {
            None => doc.get_ref().get(part),
            Some(toml::de::DeValue::Table(t)) => t.get(part),
            Some(toml::de::DeValue::Array(a)) => a.get(part.parse::<usize>().ok()?),
            Some(_) => None,
        };
        value = Some(next?);
    }
    value.map(|v| v.span())
}

/// A path from the file, relative to the file's directory.
pub(super) fn resolve(dir: &Path, s: &str) -> PathBuf {
    let p = Path::new(s);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        dir.join(p)
    }
}

fn values(strings: Option<Vec<Str>>) -> Vec<String> {
    strings
        .unwrap_or_default()
        .into_iter()
        .map(|s| s.value)
        .collect()
}

/// `state`: a SQLite file (a path or `sqlite:///path`) or a Redis URL.
fn state(cx: &mut Cx<'_>, root: &Table<'_, '_>, dir: &Path) -> Option<StateLocation> {
    let s = root.nonempty(cx, "state")?;
    match StateLocation::parse(s.value.trim(), dir) {
        Ok(l) => Some(l),
        Err(e) => {
            cx.push(Problem::error(s.span, e.message, "not a state store").with_help(e.help));
            None
        }
    }
}

/// `mode`: `"enforce"` (the default) or `"shadow"`.
fn mode(cx: &mut Cx<'_>, root: &Table<'_, '_>) -> bool {
    let Some(s) = root.nonempty(cx, "mode") else {
        return false;
    };
    match s.value.trim() {
        "enforce" => false,
        "shadow" => true,
        other => {
            cx.push(
                Problem::error(s.span, format!("`mode` is not `enforce` or `shadow`: `{other}`"), "unknown mode")
                    .with_help("`mode = \"shadow\"` decides and logs every call and enforces nothing; leave it out to enforce"),
            );
            false
        }
    }
}

/// `records`: a PostgreSQL URL.
fn records(cx: &mut Cx<'_>, root: &Table<'_, '_>) -> Option<String> {
    let s = root.nonempty(cx, "records")?;
    let url = s.value.trim();
    let why = match url.split_once("://") {
        Some(("postgres" | "postgresql", _)) => match PostgresRecords::check_url(url) {
            Ok(()) => return Some(url.to_string()),
            Err(why) => why,
        },
        _ => "records are kept in PostgreSQL (or, without `records`, with `state`)".into(),
    };
    cx.push(
        Problem::error(
            s.span,
            format!("`records` is not a PostgreSQL URL: {why}"),
            "not a PostgreSQL URL",
        )
        .with_help("write it as `postgres://user:password@host:5432/database`; leave `records` out to keep records with `state`"),
    );
    None
}

fn listen(cx: &mut Cx<'_>, root: &Table<'_, '_>) -> Option<String> {
    // A bare port, as in `warden proxy --listen 8080`, may be a number.
    if root.kind("listen") == Some("integer") {
        let n = root.integer(cx, "listen", 0..=65535)?;
        return Some(format!("127.0.0.1:{n}"));
    }
    let s = root.nonempty(cx, "listen")?;
    let v = s.value.trim();
    if let Ok(port) = v.parse::<u16>() {
        return Some(format!("127.0.0.1:{port}"));
    }
    let host_port = v.rsplit_once(':').is_some_and(|(host, port)| {
        port.parse::<u16>().is_ok()
            && !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
    });
    if v.parse::<SocketAddr>().is_ok() || host_port {
        return Some(v.to_string());
    }
    cx.push(
        Problem::error(s.span, format!("`listen` is not HOST:PORT: `{v}`"), "not HOST:PORT").with_help(
            "e.g. `listen = \"127.0.0.1:8080\"`, `\"0.0.0.0:8080\"`, `\"[::1]:8080\"`, or a bare port `\"8080\"` (binds 127.0.0.1)",
        ),
    );
    None
}

/// `[metrics] listen`: the admin listener for `/metrics` (a bare port
/// binds 127.0.0.1, as `listen` does).
fn metrics(cx: &mut Cx<'_>, root: &Table<'_, '_>) -> Option<String> {
    let t = root.table(cx, "metrics", "`[metrics]`")?;
    t.check_keys(cx, METRICS, elsewhere);
    t.require(
        cx,
        "listen",
        "add e.g. `listen = \"127.0.0.1:9464\"` under `[metrics]`, or remove the table",
    )
    .then(|| listen(cx, &t))
    .flatten()
}

/// `[traces]`: OpenTelemetry traces over OTLP/HTTP, as `warden proxy`'s
/// `--otlp-endpoint`, `--trace-sample-ratio` and `--trace-argument`.
fn traces(cx: &mut Cx<'_>, root: &Table<'_, '_>) -> Option<crate::traces::TraceSettings> {
    let t = root.table(cx, "traces", "`[traces]`")?;
    t.check_keys(cx, TRACES, elsewhere);
    let required = t.require(
        cx,
        "otlp_endpoint",
        "add e.g. `otlp_endpoint = \"http://127.0.0.1:4318\"` under `[traces]`, or remove the table",
    );
    let endpoint = t.nonempty(cx, "otlp_endpoint");
    let sample_ratio = t.fraction(cx, "sample_ratio");
    let arguments = values(t.strings(cx, "arguments"));
    let endpoint = endpoint.filter(|_| required)?;
    if let Err(e) = crate::traces::check_endpoint(&endpoint.value) {
        cx.push(
            Problem::error(endpoint.span, format!("`otlp_endpoint` is not an OTLP/HTTP URL: {e}"), "not an OTLP/HTTP URL")
                .with_help("the collector's OTLP/HTTP base URL, e.g. `http://127.0.0.1:4318`; warden sends to its `/v1/traces`"),
        );
        return None;
    }
    let mut settings = crate::traces::TraceSettings::new(endpoint.value);
    settings.sample_ratio = sample_ratio.unwrap_or(1.0);
    settings.arguments = arguments;
    Some(settings)
}

/// `[tools]`: `pins = "trust-on-first-use" | "strict" | "off"` and, for
/// strict, `pin_file` (read now, so that a bad one is a config error).
fn tools(
    cx: &mut Cx<'_>,
    root: &Table<'_, '_>,
    dir: &Path,
) -> (crate::tool_pins::ToolPins, Option<std::path::PathBuf>) {
    use crate::tool_pins::ToolPins;
    let Some(t) = root.table(cx, "tools", "`[tools]`") else {
        return (ToolPins::default(), None);
    };
    t.check_keys(cx, TOOLS, elsewhere);
    let mode = t.nonempty(cx, "pins");
    let file = t.nonempty(cx, "pin_file");
    let path = file.as_ref().map(|f| dir.join(&f.value));
    match (mode.as_ref().map(|m| m.value.trim()), &file, &path) {
        (Some("strict"), Some(f), Some(p)) => match crate::tool_pins::load_pin_file(p) {
            Ok(pins) => (ToolPins::Strict(pins), path),
            Err(e) => {
                cx.push(
                    Problem::error(f.span.clone(), e.to_string(), "not a pin file")
                        .with_help("write one with `warden tools pin --state FILE > tools.lock`"),
                );
                (ToolPins::default(), None)
            }
        },
        (Some("strict"), None, _) => {
            if let Some(m) = &mode {
                cx.push(
                    Problem::error(m.span.clone(), "strict tool pinning needs a pin file", "no `pin_file`")
                        .with_help("add `pin_file = \"tools.lock\"` (written by `warden tools pin`) under `[tools]`"),
                );
            }
            (ToolPins::default(), None)
        }
        (_, Some(f), _) => {
            cx.push(
                Problem::error(
                    f.span.clone(),
                    "a pin file is read in strict mode only",
                    "not read",
                )
                .with_help("add `pins = \"strict\"` under `[tools]`, or remove `pin_file`"),
            );
            (ToolPins::default(), None)
        }
        (None | Some("trust-on-first-use"), None, _) => (ToolPins::TrustOnFirstUse, None),
        (Some("off"), None, _) => (ToolPins::Off, None),
        (Some(other), None, _) => {
            if let Some(m) = &mode {
                cx.push(
                    Problem::error(m.span.clone(), format!("`pins` is not `trust-on-first-use`, `strict` or `off`: `{other}`"), "unknown mode")
                        .with_help("`trust-on-first-use` (the default) pins each tool's first definition; `strict` trusts only `pin_file`"),
                );
            }
            (ToolPins::default(), None)
        }
    }
}

/// `[approvals]`: the webhook pending approvals are POSTed to, signed with
/// the secret in `webhook_secret_file` (both required in the table).
fn approvals(
    cx: &mut Cx<'_>,
    root: &Table<'_, '_>,
    dir: &Path,
) -> Option<crate::approvals::WebhookSettings> {
    let t = root.table(cx, "approvals", "`[approvals]`")?;
    t.check_keys(cx, APPROVALS, elsewhere);
    let has_url = t.require(
        cx,
        "webhook",
        "add e.g. `webhook = \"https://chat.example.com/hooks/warden\"` under `[approvals]`, or remove the table",
    );
    let has_secret = t.require(
        cx,
        "webhook_secret_file",
        "add `webhook_secret_file = \"webhook.secret\"`: the receiver verifies each delivery's signature with it",
    );
    let url = t.nonempty(cx, "webhook").filter(|_| has_url);
    let secret = t.nonempty(cx, "webhook_secret_file").filter(|_| has_secret);
    if let Some(url) = &url
        && !crate::approvals::webhook::is_http_url(&url.value)
    {
        cx.push(
            Problem::error(
                url.span.clone(),
                format!("`webhook` is not an http(s) URL: `{}`", url.value),
                "not a URL",
            )
            .with_help("give the receiver's URL, e.g. `https://chat.example.com/hooks/warden`"),
        );
        return None;
    }
    let (url, secret) = (url?, secret?);
    Some(crate::approvals::WebhookSettings {
        url: url.value,
        secret_file: resolve(dir, &secret.value),
    })
}

/// `public_url`: where people reach this warden (`https://warden.example.com`),
/// for the approval page's links; an origin, as `allow_origins` takes.
fn public_url(cx: &mut Cx<'_>, root: &Table<'_, '_>) -> Option<String> {
    let s = root.nonempty(cx, "public_url")?;
    match crate::check_origin(&s.value) {
        Ok(url) => Some(url),
        Err(why) => {
            cx.push(
                Problem::error(s.span, format!("`public_url` {why}"), "not an origin")
                    .with_help("the scheme, host and port people reach warden at, e.g. `https://warden.example.com`; the approval page's links start with it"),
            );
            None
        }
    }
}

fn origins(cx: &mut Cx<'_>, root: &Table<'_, '_>) -> Vec<String> {
    let mut out = Vec::new();
    for s in root.strings(cx, "allow_origins").unwrap_or_default() {
        if crate::check_origin(s.value.trim()).is_ok() {
            out.push(s.value);
        } else {
            cx.push(
                Problem::error(s.span, format!("`{}` is not an origin", s.value), "not an origin")
                    .with_help("an origin is `scheme://host[:port]` with no path, as browsers send it, e.g. `https://app.example.com`"),
            );
        }
    }
    out
}

fn identity(cx: &mut Cx<'_>, root: &Table<'_, '_>) -> IdentityDefaults {
    let Some(t) = root.table(cx, "identity", "`[identity]`") else {
        return IdentityDefaults::default();
    };
    t.check_keys(cx, IDENTITY, elsewhere);
    let groups = t.strings(cx, "groups").unwrap_or_default();
    for g in &groups {
        if g.value.is_empty() {
            cx.push(Problem::error(
                g.span.clone(),
                "an empty group name",
                "empty",
            ));
        }
    }
    IdentityDefaults {
        user: t.nonempty(cx, "user").map(|s| s.value),
        groups: groups.into_iter().map(|s| s.value).collect(),
        model: t.nonempty(cx, "model").map(|s| s.value),
    }
}

fn tls(cx: &mut Cx<'_>, root: &Table<'_, '_>, dir: &Path) -> Option<TlsFiles> {
    let t = root.table(cx, "tls", "`[tls]`")?;
    t.check_keys(cx, TLS, elsewhere);
    let cert = t
        .require(
            cx,
            "cert",
            "add `cert = \"tls/cert.pem\"`: the certificate chain, PEM",
        )
        .then(|| t.nonempty(cx, "cert"))
        .flatten();
    let key = t
        .require(
            cx,
            "key",
            "add `key = \"tls/key.pem\"`: the private key, PEM (PKCS#8, RSA or SEC1)",
        )
        .then(|| t.nonempty(cx, "key"))
        .flatten();
    Some(TlsFiles {
        cert: resolve(dir, &cert?.value),
        key: resolve(dir, &key?.value),
    })
}

fn auth(cx: &mut Cx<'_>, root: &Table<'_, '_>, dir: &Path) -> Option<BearerSettings> {
    let t = root.table(cx, "auth", "`[auth]`")?;
    t.check_keys(cx, AUTH, elsewhere);
    let issuer = t
        .require(
            cx,
            "issuer",
            "add `issuer = \"https://id.example.com\"`: the `iss` of the tokens to accept",
        )
        .then(|| t.nonempty(cx, "issuer"))
        .flatten();
    let audiences = t
        .require(cx, "audiences", "add `audiences = [\"https://warden.example.com/mcp\"]`: names of warden itself, so that tokens minted for other services are refused")
        .then(|| t.strings(cx, "audiences"))
        .flatten();
    if let Some(a) = &audiences {
        if a.is_empty() {
            cx.push(
                Problem::error(
                    t.value_span("audiences").unwrap_or(t.start()),
                    "`audiences` is empty",
                    "empty",
                )
                .with_help("name warden itself, e.g. its public MCP URL"),
            );
        }
        for s in a.iter().filter(|s| s.value.is_empty()) {
            cx.push(Problem::error(s.span.clone(), "an empty audience", "empty"));
        }
    }
    let keys_help = "give the issuer's public keys one way: `jwks = \"jwks.json\"` (a saved JWKS) or `keys = [\"issuer-key.pem\"]` (PEM public keys)";
    let keys = match (t.has("jwks"), t.has("keys")) {
        (true, true) => {
            cx.push(
                Problem::error(
                    t.key_span("keys").unwrap_or(t.start()),
                    "`[auth]` has both `jwks` and `keys`",
                    "second key source",
                )
                .with_help(keys_help),
            );
            None
        }
        (false, false) => {
            cx.push(
                Problem::error(
                    t.start(),
                    "`[auth]` has neither `jwks` nor `keys`",
                    "no key source",
                )
                .with_help(keys_help),
            );
            None
        }
        (true, false) => t
            .nonempty(cx, "jwks")
            .map(|s| KeySource::Jwks(resolve(dir, &s.value))),
        (false, true) => match t.strings(cx, "keys") {
            Some(k) if k.is_empty() => {
                cx.push(
                    Problem::error(
                        t.value_span("keys").unwrap_or(t.start()),
                        "`keys` is empty",
                        "empty",
                    )
                    .with_help(keys_help),
                );
                None
            }
            Some(k) => Some(KeySource::Pem(
                k.iter().map(|s| resolve(dir, &s.value)).collect(),
            )),
            None => None,
        },
    };
    let mut claims = ClaimNames::default();
    if let Some(c) = t.nonempty(cx, "user_claim") {
        claims.user = c.value;
    }
    if let Some(c) = t.nonempty(cx, "groups_claim") {
        claims.groups = c.value;
    }
    if let Some(c) = t.nonempty(cx, "agent_claim") {
        claims.agent = vec![c.value];
    }
    claims.model = t.nonempty(cx, "model_claim").map(|c| c.value);
    let leeway = t.duration(cx, "leeway", Duration::from_secs(MAX_LEEWAY_SECS));
    let leeway_secs = match leeway {
        Some(d) if d.subsec_nanos() != 0 => {
            cx.push(
                Problem::error(
                    t.value_span("leeway").unwrap_or(t.start()),
                    "`leeway` is not whole seconds",
                    "not whole seconds",
                )
                .with_help("tokens count time in seconds: give e.g. `leeway = \"60s\"`"),
            );
            DEFAULT_LEEWAY_SECS
        }
        Some(d) => d.as_secs(),
        None => DEFAULT_LEEWAY_SECS,
    };
    Some(BearerSettings {
        issuer: issuer?.value,
        audiences: values(audiences),
        keys: keys?,
        leeway_secs,
        claims,
    })
}

fn limits(cx: &mut Cx<'_>, root: &Table<'_, '_>) -> Limits {
    let mut l = Limits::default();
    let Some(t) = root.table(cx, "limits", "`[limits]`") else {
        return l;
    };
    t.check_keys(cx, LIMITS, elsewhere);
    if let Some(n) = t.integer(cx, "max_message_bytes", 1024..=1 << 30) {
        l.max_message_bytes = usize::try_from(n).unwrap_or(usize::MAX);
    }
    let positive = |cx: &mut Cx<'_>, key: &str, max: Duration| {
        let d = t.duration(cx, key, max)?;
        if d.is_zero() {
            cx.push(
                Problem::error(
                    t.value_span(key).unwrap_or(t.start()),
                    format!("`{key}` is zero"),
                    "zero",
                )
                .with_help(format!(
                    "give a duration above zero, e.g. `{key} = \"30s\"`"
                )),
            );
            return None;
        }
        Some(d)
    };
    if let Some(d) = positive(cx, "confirm_timeout", MAX_DURATION) {
        l.confirm_timeout = d;
    }
    if let Some(d) = t.duration(cx, "call_timeout", MAX_DURATION) {
        l.call_timeout = d;
    }
    if let Some(d) = positive(cx, "session_idle_timeout", MAX_DURATION) {
        l.session_idle_timeout = d;
    }
    if let Some(d) = positive(cx, "header_read_timeout", HOUR) {
        l.listen.header_read = d;
    }
    if let Some(d) = positive(cx, "body_read_timeout", HOUR) {
        l.listen.body_read = d;
    }
    if let Some(n) = t.integer(cx, "max_connections", 1..=65_536) {
        l.listen.max_connections = usize::try_from(n).unwrap_or(usize::MAX);
    }
    if let Some(d) = t.duration(cx, "drain_timeout", HOUR) {
        l.drain_timeout = d;
    }
    l
}

/// `[federation].separator`; `None` when it is not usable (then server
/// names are not checked against it).
fn separator(cx: &mut Cx<'_>, root: &Table<'_, '_>) -> Option<String> {
    let Some(t) = root.table(cx, "federation", "`[federation]`") else {
        return (!root.has("federation")).then(|| DEFAULT_SEPARATOR.to_string());
    };
    t.check_keys(cx, FEDERATION, elsewhere);
    if !t.has("separator") {
        return Some(DEFAULT_SEPARATOR.to_string());
    }
    let s = t.string(cx, "separator")?;
    let help = "the separator goes between a server's name and a tool's on /mcp (`genomics__run_query`): give a short run of visible characters, e.g. `\"__\"` or `\".\"`";
    if s.value.is_empty() {
        cx.push(Problem::error(s.span, "`separator` is empty", "empty").with_help(help));
        return None;
    }
    if s.value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        cx.push(
            Problem::error(
                s.span,
                "`separator` contains whitespace or a control character",
                "whitespace",
            )
            .with_help(help),
        );
        return None;
    }
    Some(s.value)
}

/// `decision_log_rotate_bytes` (default: never). Standard error cannot be
/// rotated, so it needs a `decision_log` file.
fn decision_log_rotate_bytes(cx: &mut Cx<'_>, root: &Table<'_, '_>, has_file: bool) -> Option<u64> {
    let bytes = root.integer(
        cx,
        "decision_log_rotate_bytes",
        1024..=u64::from(u32::MAX) * 1024,
    )?;
    if !has_file {
        let span = root.value_span("decision_log_rotate_bytes").unwrap_or(0..0);
        cx.push(
            Problem::error(
                span,
                "`decision_log_rotate_bytes` without a `decision_log` file",
                "nothing to rotate",
            )
            .with_help(
                "the decision log goes to standard error, which cannot be rotated; add e.g. `decision_log = \"decisions.jsonl\"`",
            ),
        );
    }
    Some(bytes)
}

/// `decision_log_fsync` (default false). Lines on standard error cannot be
/// synced, so true needs a `decision_log` file.
fn decision_log_fsync(cx: &mut Cx<'_>, root: &Table<'_, '_>, has_file: bool) -> bool {
    let Some(fsync) = root.boolean(cx, "decision_log_fsync") else {
        return false;
    };
    if fsync && !has_file {
        let span = root.value_span("decision_log_fsync").unwrap_or(0..0);
        cx.push(
            Problem::error(
                span,
                "`decision_log_fsync = true` without a `decision_log` file",
                "nothing to sync",
            )
            .with_help(
                "the decision log goes to standard error, which cannot be synced; add e.g. `decision_log = \"decisions.jsonl\"`",
            ),
        );
    }
    fsync
}
