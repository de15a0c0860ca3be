//! `warden check --config FILE`: validates a `warden serve` configuration
//! without starting anything. First the file itself (every problem at once,
//! from `warden_proxy::gateway::config`), then what `warden serve` loads
//! before it starts: the policies compile, the bearer keys, the signing key
//! and the TLS certificate and key load. A stdio server's command that is
//! not found is a warning only: it may exist where and when warden runs.
//!
//! Exit codes: 0 valid (warnings allowed), 1 problems, 2 the file could not
//! be read.

use crate::exit;
use crate::lint::render_report;
use clap::Args;
use miette::Severity;
use std::path::{Path, PathBuf};
use warden_proxy::Upstream;
use warden_proxy::gateway::config::{GatewayConfig, Problem};

/// `warden check` arguments.
#[derive(Debug, Args)]
pub(crate) struct CheckArgs {
    /// The `warden serve` configuration file to validate.
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
}

pub(crate) fn run(args: CheckArgs) -> i32 {
    let file = args.config.display().to_string();
    let cfg = match GatewayConfig::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprint!("{}", render_report(&e));
            return if e.is_read_error() {
                exit::USAGE
            } else {
                exit::FAILURE
            };
        }
    };

    // What serve loads before it starts, each failure shown at the key
    // that names the file (the policy diagnostics follow, at their own
    // files).
    let mut errors = Vec::new();
    let mut policy_diagnostics = Vec::new();
    let bundle = match warden_engine::load_bundle(&cfg.policies) {
        Ok(b) => Some(b),
        Err(e) => {
            errors.push(at_key(&cfg, "policies", &e));
            if let warden_engine::LoadError::Invalid { diagnostics, .. } = &e {
                policy_diagnostics = diagnostics.iter().cloned().collect();
            }
            None
        }
    };
    if let Some(auth) = &cfg.auth
        && let Err(e) = warden_proxy::bearer::Verifier::load(auth)
    {
        let key = match auth.keys {
            warden_proxy::bearer::KeySource::Jwks(_) => "auth.jwks",
            warden_proxy::bearer::KeySource::Pem(_) => "auth.keys",
        };
        errors.push(at_key(&cfg, key, &e));
    }
    if let Some(path) = &cfg.signing_key
        && let Err(e) = warden_proxy::provenance_token::Signer::load(path)
    {
        errors.push(at_key(&cfg, "signing_key", &e));
    }
    if let Some(tls) = &cfg.tls
        && let Err(e) = warden_proxy::tls::load_server_config(&tls.cert, &tls.key)
    {
        use warden_proxy::tls::TlsError;
        let key = match e {
            TlsError::ReadCert { .. }
            | TlsError::CertPem { .. }
            | TlsError::NoCertificate { .. } => "tls.cert",
            _ => "tls.key",
        };
        errors.push(at_key(&cfg, key, &e));
    }
    let mut warnings = warnings(&cfg);
    // A rule naming a server this config does not serve never applies.
    if let Some(b) = &bundle {
        let names: Vec<String> = cfg.servers.iter().map(|s| s.name.clone()).collect();
        for w in warden_proxy::tool_pins::unmatched_servers(b, &names) {
            let (message, help) = w.split_once("\n  help: ").unwrap_or((&w, ""));
            warnings.push(
                Problem::warning(
                    cfg.span_of("policies"),
                    message.to_string(),
                    "a rule for no server here",
                )
                .with_help(help.to_string()),
            );
        }
    }
    let unusable = bundle
        .as_ref()
        .map(|b| approver_findings(&cfg, b))
        .unwrap_or_default();
    if let Some(hook) = &cfg.approvals_webhook
        && let Err(e) = warden_proxy::approvals::webhook::check(hook)
    {
        errors.push(at_key(&cfg, "approvals.webhook_secret_file", &e));
    }
    let failures = errors.len() + unusable.len();
    if !errors.is_empty() {
        let failures = errors.len();
        let title = format!(
            "`{file}` names {failures} file{} that do{} not load",
            if failures == 1 { "" } else { "s" },
            if failures == 1 { "es" } else { "" }
        );
        eprint!(
            "{}",
            render_report(&cfg.findings(title, Severity::Error, errors))
        );
        eprint!("{}", crate::lint::render_human(&policy_diagnostics));
    }
    if !unusable.is_empty() {
        let n = unusable.len();
        let title = format!(
            "`{file}`: {n} rule{} can never be approved",
            if n == 1 { "" } else { "s" }
        );
        eprint!(
            "{}",
            render_report(&cfg.findings(title, Severity::Error, unusable))
        );
    }

    if !warnings.is_empty() {
        let n = warnings.len();
        let title = format!("{file}: {n} warning{}", if n == 1 { "" } else { "s" });
        eprint!(
            "{}",
            render_report(&cfg.findings(title, Severity::Warning, warnings))
        );
    }

    match bundle {
        Some(bundle) if failures == 0 => {
            let names: Vec<&str> = cfg.servers.iter().map(|s| s.name.as_str()).collect();
            let n = names.len();
            outln!(
                "warden: {file} is valid: {n} server{} ({}), policies version {}, {} rules",
                if n == 1 { "" } else { "s" },
                names.join(", "),
                bundle.version(),
                bundle.rules().len()
            );
            exit::OK
        }
        _ => {
            eprintln!("warden: {file} is not usable");
            exit::FAILURE
        }
    }
}

/// Rules whose approval must come from another person (`by group` /
/// `by user`) under a config without `[auth]`: every call acts as the
/// `[identity]` user, so no other person exists to approve, and such calls
/// are always refused (an error). With `[auth]` the approval page takes
/// their approval.
fn approver_findings(cfg: &GatewayConfig, bundle: &warden_engine::PolicyBundle) -> Vec<Problem> {
    if cfg.auth.is_some() {
        return Vec::new();
    }
    let mut out = Vec::new();
    for rule in bundle.rules() {
        let Some(by) = rule.approval.as_ref().and_then(|a| a.approver.as_ref()) else {
            continue;
        };
        let who = by.who();
        out.push(
            Problem::error(
                cfg.span_of("policies"),
                format!(
                    "rule `{}` ({}) needs the approval of {who}, and without `[auth]` every call acts as one user: no one else can approve, so its calls are always refused",
                    rule.id, rule.location
                ),
                "approval by another person",
            )
            .with_help("add an `[auth]` section so that callers and approvers are people of their own (docs/approvals.md), or drop `by` so the caller confirms"),
        );
    }
    out
}

/// A load error as a problem at the config key that named the file.
fn at_key(cfg: &GatewayConfig, key: &str, e: &dyn miette::Diagnostic) -> Problem {
    let mut p = Problem::error(cfg.span_of(key), e.to_string(), "does not load");
    p.help = e.help().map(|h| h.to_string());
    p
}

/// What may go wrong when `warden serve` starts but need not: a command
/// that is not found here, a working directory that does not exist, a
/// listener beyond loopback without authentication or without TLS.
fn warnings(cfg: &GatewayConfig) -> Vec<Problem> {
    let mut out = Vec::new();
    for (i, server) in cfg.servers.iter().enumerate() {
        let Upstream::Command(cmd) = &server.upstream else {
            continue;
        };
        if cmd.executable().is_none() {
            let shown = Path::new(&cmd.program).display().to_string();
            let help = if Path::new(&cmd.program).components().count() > 1 {
                "a relative path in `command` is relative to the config file's directory"
                    .to_string()
            } else {
                "install it, give its path, or make sure warden's PATH has it when it runs"
                    .to_string()
            };
            out.push(
                Problem::warning(
                    cfg.span_of(&format!("server.{i}.command")),
                    format!(
                        "the command `{shown}` of server `{}` is not found{}",
                        server.name,
                        if shown.contains('/') { "" } else { " on PATH" }
                    ),
                    "not found",
                )
                .with_help(help),
            );
        }
        if let Some(cwd) = &cmd.cwd
            && !cwd.is_dir()
        {
            out.push(Problem::warning(
                cfg.span_of(&format!("server.{i}.cwd")),
                format!(
                    "the working directory `{}` of server `{}` does not exist",
                    cwd.display(),
                    server.name
                ),
                "no such directory",
            ));
        }
    }
    let beyond_loopback = !loopback_host(&cfg.listen);
    if beyond_loopback && cfg.auth.is_some() && cfg.tls.is_none() {
        out.push(
            Problem::warning(
                cfg.span_of("listen"),
                format!(
                    "warden would listen on `{}`, beyond loopback, without TLS: tokens and calls cross the network in clear",
                    cfg.listen
                ),
                "beyond loopback",
            )
            .with_help("add a `[tls]` section (cert, key), or terminate TLS in front of warden"),
        );
    }
    if beyond_loopback && cfg.auth.is_none() {
        out.push(
            Problem::warning(
                cfg.span_of("listen"),
                format!(
                    "warden would listen on `{}`, beyond loopback, without bearer authentication: anyone who can reach it acts as the `[identity]` user",
                    cfg.listen
                ),
                "beyond loopback",
            )
            .with_help("add an `[auth]` section, or put an authenticating proxy in front"),
        );
    }
    out
}

/// Whether `listen` (HOST:PORT) binds loopback only.
fn loopback_host(listen: &str) -> bool {
    let host = match listen.rsplit_once(':') {
        Some((h, _)) => h.trim_start_matches('[').trim_end_matches(']'),
        None => listen,
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}
