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
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use warden_proxy::gateway::config::{GatewayConfig, Problem};
use warden_proxy::{Upstream, UpstreamCommand};

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

    let mut failures = 0;
    let bundle = match warden_engine::load_bundle(&cfg.policies) {
        Ok(b) => Some(b),
        Err(e) => {
            eprint!("{}", render_report(&e));
            if let warden_engine::LoadError::Invalid { diagnostics, .. } = &e {
                let diags: Vec<_> = diagnostics.iter().cloned().collect();
                eprint!("{}", crate::lint::render_human(&diags));
            }
            failures += 1;
            None
        }
    };
    if let Some(auth) = &cfg.auth
        && let Err(e) = warden_proxy::bearer::Verifier::load(auth)
    {
        eprint!("{}", render_report(&e));
        failures += 1;
    }
    if let Some(path) = &cfg.signing_key
        && let Err(e) = warden_proxy::provenance_token::Signer::load(path)
    {
        eprint!("{}", render_report(&e));
        failures += 1;
    }
    if let Some(tls) = &cfg.tls
        && let Err(e) = warden_proxy::tls::load_server_config(&tls.cert, &tls.key)
    {
        eprint!("{}", render_report(&e));
        failures += 1;
    }

    let warnings = warnings(&cfg);
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
            eprintln!(
                "warden: {file} is not usable: {failures} problem{} with what it names",
                if failures == 1 { "" } else { "s" }
            );
            exit::FAILURE
        }
    }
}

/// What may go wrong when `warden serve` starts but need not: a command
/// that is not found here, a working directory that does not exist, an
/// unauthenticated listener beyond loopback.
fn warnings(cfg: &GatewayConfig) -> Vec<Problem> {
    let mut out = Vec::new();
    for (i, server) in cfg.servers.iter().enumerate() {
        let Upstream::Command(cmd) = &server.upstream else {
            continue;
        };
        if find_program(cmd).is_none() {
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
    if cfg.auth.is_none() && !loopback_host(&cfg.listen) {
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

/// Where the upstream's program would be found: a path (already resolved
/// against the config file's directory) as is, a bare name on PATH.
fn find_program(cmd: &UpstreamCommand) -> Option<PathBuf> {
    let program = Path::new(&cmd.program);
    if program.components().count() > 1 {
        return is_executable(program).then(|| program.to_path_buf());
    }
    let path = cmd
        .env
        .iter()
        .find(|(k, _)| k == OsStr::new("PATH"))
        .map(|(_, v)| v.clone())
        .or_else(|| std::env::var_os("PATH"))?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| is_executable(p))
}

#[cfg(unix)]
fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(p: &Path) -> bool {
    p.is_file() || p.with_extension("exe").is_file()
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
