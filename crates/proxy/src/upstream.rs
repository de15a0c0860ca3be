//! The upstream link. A command upstream is a child process speaking
//! newline-delimited JSON-RPC, restarted with exponential backoff when it
//! exits; a URL upstream is a Streamable HTTP session
//! ([`crate::http_upstream`]), reconnected the same way. After a restart the
//! client's session is replayed (initialize, initialized, log level,
//! subscriptions) before client requests go through again.

use crate::config::{ProxyConfig, ProxyError, Upstream, UpstreamCommand};
use crate::framing::{LineReader, write_lines};
use crate::http_upstream::{self, HttpUpstream};
use crate::relay::Relay;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::BufReader;
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// An upstream that stayed up this long resets the backoff.
const STABLE_AFTER: Duration = Duration::from_secs(30);
/// How long a closing upstream gets to exit before it is killed.
const EXIT_GRACE: Duration = Duration::from_secs(3);

/// A link ready to be supervised: the first child process already started
/// (so a command that cannot start is reported before anything else), or
/// the HTTP endpoint.
pub(crate) enum Start {
    Child(Child, UpstreamCommand),
    Http(HttpUpstream),
}

/// Starts the upstream (a command) or checks it (a URL).
pub(crate) fn start(cfg: &ProxyConfig) -> Result<Start, ProxyError> {
    match &cfg.upstream {
        Upstream::Command(c) => Ok(Start::Child(spawn(c)?, c.clone())),
        Upstream::Url(u) => Ok(Start::Http(http_upstream::prepare(
            u,
            &cfg.upstream_headers,
        )?)),
    }
}

/// Runs the upstream link until `shutdown`, restarting it when it fails.
pub(crate) async fn supervise(relay: Arc<Relay>, start: Start, shutdown: CancellationToken) {
    match start {
        Start::Child(child, cmd) => supervise_command(relay, cmd, child, shutdown).await,
        Start::Http(up) => http_upstream::supervise(relay, up, shutdown).await,
    }
}

/// Starts the upstream command with piped stdin/stdout, in its working
/// directory and with its extra environment variables; its stderr is
/// warden's (so its logs reach wherever warden's go).
pub(crate) fn spawn(cmd: &UpstreamCommand) -> Result<Child, ProxyError> {
    let failed = |message: String| ProxyError::Spawn {
        program: cmd.program.to_string_lossy().into_owned(),
        message,
    };
    let mut command = Command::new(&cmd.program);
    if !cmd.inherit_env {
        command.env_clear();
        for name in crate::config::PASSED_ENV {
            if let Some(value) = std::env::var_os(name) {
                command.env(name, value);
            }
        }
    }
    command
        .args(&cmd.args)
        .envs(cmd.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    if let Some(dir) = &cmd.cwd {
        // A missing directory fails the spawn with the same "not found" as
        // a missing program; say which it is.
        if !dir.is_dir() {
            return Err(failed(format!(
                "its working directory `{}` is not a directory",
                dir.display()
            )));
        }
        command.current_dir(dir);
    }
    command.spawn().map_err(|e| failed(e.to_string()))
}

/// Runs the upstream command until `shutdown`, restarting it when it exits.
async fn supervise_command(
    relay: Arc<Relay>,
    cmd: UpstreamCommand,
    first: Child,
    shutdown: CancellationToken,
) {
    let mut next = Some(first);
    let mut delay = relay.cfg.restart_initial;
    let mut epoch = 0u64;
    loop {
        epoch += 1;
        let child = match next.take() {
            Some(c) => Some(c),
            None => match spawn(&cmd) {
                Ok(c) => Some(c),
                Err(e) => {
                    tracing::error!("{e}");
                    relay
                        .link_down(epoch, format!("could not be started ({e})"), delay)
                        .await;
                    None
                }
            },
        };
        if let Some(child) = child {
            let started = Instant::now();
            let reason = run_instance(&relay, child, epoch, &shutdown).await;
            // The session ended (its client is gone): closing the upstream was
            // warden's doing, not a crash to restart from.
            if shutdown.is_cancelled() || relay.is_closed() {
                return;
            }
            if started.elapsed() >= STABLE_AFTER {
                delay = relay.cfg.restart_initial;
            }
            tracing::warn!("upstream {reason}; restarting in {} ms", delay.as_millis());
            relay.link_down(epoch, reason, delay).await;
        }
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = shutdown.cancelled() => return,
        }
        delay = (delay * 2).min(relay.cfg.restart_max);
    }
}

/// Runs one upstream process until it exits (or is stopped); returns what
/// happened, for errors and logs ("exited (exit status: 1)").
async fn run_instance(
    relay: &Arc<Relay>,
    mut child: Child,
    epoch: u64,
    shutdown: &CancellationToken,
) -> String {
    let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        let _ = child.kill().await;
        return "had no stdio pipes".to_string();
    };
    let (tx, rx) = mpsc::channel::<String>(256);
    let writer = tokio::spawn(async move {
        if let Err(e) = write_lines(stdin, rx).await {
            tracing::debug!("writing to the upstream failed: {e}");
        }
    });
    let recovering = epoch > 1 && relay.needs_replay();
    relay.link_started(epoch, tx, recovering);
    if epoch > 1 {
        tracing::info!("upstream restarted");
    }

    let reader_relay = Arc::clone(relay);
    let max = relay.cfg.max_message_bytes;
    let reader = async move {
        let mut lines = LineReader::new(BufReader::new(stdout), max);
        loop {
            match lines.next().await {
                Ok(Some(frame)) => reader_relay.on_upstream_frame(epoch, frame).await,
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!("reading from the upstream failed: {e}");
                    break;
                }
            }
        }
    };
    tokio::pin!(reader);

    let replay_failed = CancellationToken::new();
    if recovering {
        let r = Arc::clone(relay);
        let failed = replay_failed.clone();
        tokio::spawn(async move {
            if let Err(e) = r.replay_session(epoch).await {
                tracing::error!("cannot restore the session on the restarted upstream: {e}");
                failed.cancel();
            }
        });
    }

    let reason = tokio::select! {
        () = &mut reader => {
            // Output closed: the process is exiting (or closed stdout).
            match tokio::time::timeout(EXIT_GRACE, child.wait()).await {
                Ok(Ok(status)) => format!("exited ({status})"),
                Ok(Err(e)) => format!("could not be waited for ({e})"),
                Err(_) => {
                    let _ = child.kill().await;
                    "closed its output and was killed".to_string()
                }
            }
        }
        status = child.wait() => {
            // Let the reader pass on what the process wrote before exiting.
            let _ = tokio::time::timeout(Duration::from_millis(500), &mut reader).await;
            match status {
                Ok(status) => format!("exited ({status})"),
                Err(e) => format!("could not be waited for ({e})"),
            }
        }
        () = replay_failed.cancelled() => {
            let _ = child.kill().await;
            "could not be re-initialized after a restart".to_string()
        }
        () = shutdown.cancelled() => {
            // The client is gone and the link closed, so the writer ends and
            // the upstream reads end of input; give it time to exit.
            let _ = tokio::time::timeout(EXIT_GRACE, writer).await;
            if tokio::time::timeout(EXIT_GRACE, child.wait()).await.is_err() {
                let _ = child.kill().await;
            }
            return "was stopped".to_string();
        }
    };
    reason
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    /// What `sh -c script` writes to its stdout, run as an upstream.
    async fn output_of(cmd: &UpstreamCommand) -> String {
        let mut child = spawn(cmd).unwrap_or_else(|e| panic!("spawn failed: {e}"));
        drop(child.stdin.take());
        let mut out = String::new();
        let mut stdout = child.stdout.take().expect("stdout is piped");
        stdout.read_to_string(&mut out).await.expect("readable");
        let _ = child.wait().await;
        out
    }

    #[tokio::test]
    async fn the_child_gets_its_extra_environment_and_working_directory() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let dir = dir.path().canonicalize().expect("canonical");
        let mut cmd = UpstreamCommand::new(
            "sh",
            [
                "-c",
                r#"printf '%s|%s|%s' "$WARDEN_T_TOKEN" "$(pwd -P)" "${PATH:+has-path}""#,
            ],
        );
        cmd.env = vec![("WARDEN_T_TOKEN".into(), "s3cret value".into())];
        cmd.cwd = Some(dir.clone());
        assert_eq!(
            output_of(&cmd).await,
            format!("s3cret value|{}|has-path", dir.display()),
            "the extra variable is added to warden's environment (PATH kept) and the child runs in cwd"
        );
        // Without them: warden's environment and directory.
        let plain = UpstreamCommand::new(
            "sh",
            ["-c", r#"printf '%s|%s' "$WARDEN_T_TOKEN" "$(pwd -P)""#],
        );
        let here = std::env::current_dir()
            .expect("cwd")
            .canonicalize()
            .expect("canonical");
        assert_eq!(output_of(&plain).await, format!("|{}", here.display()));
    }

    #[tokio::test]
    async fn without_inherit_env_the_child_gets_only_the_passed_variables_and_its_own() {
        // Something warden's environment surely has that is not passed on.
        // SAFETY-free: read, not set, so parallel tests are unaffected.
        // Non-empty (`:+` reads an empty one as unset), a name `sh` can
        // expand, and none `sh` sets itself.
        let (secret, _) = std::env::vars()
            .find(|(k, v)| {
                !crate::config::PASSED_ENV.contains(&k.as_str())
                    && !["PWD", "OLDPWD", "_", "SHLVL", "IFS", "PPID", "OPTIND"]
                        .contains(&k.as_str())
                    && !v.is_empty()
                    && k.starts_with(|c: char| c.is_ascii_alphabetic())
                    && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            })
            .expect("the test process has some variable that is not passed");
        let script =
            format!(r#"printf '%s|%s|%s' "${{{secret}:+leaked}}" "${{PATH:+has-path}}" "$OWN""#);
        let mut cmd = UpstreamCommand::new("sh", ["-c", script.as_str()]);
        cmd.env = vec![("OWN".into(), "mine".into())];
        cmd.inherit_env = false;
        assert_eq!(
            output_of(&cmd).await,
            "|has-path|mine",
            "`{secret}` must not reach the child"
        );
        cmd.inherit_env = true;
        assert_eq!(output_of(&cmd).await, "leaked|has-path|mine");
    }

    #[test]
    fn a_missing_working_directory_is_named_in_the_error() {
        let mut cmd = UpstreamCommand::new("sh", ["-c", "true"]);
        cmd.cwd = Some("/nonexistent/warden-test-dir".into());
        let err = spawn(&cmd).expect_err("must not start");
        assert!(
            err.to_string()
                .contains("working directory `/nonexistent/warden-test-dir`"),
            "{err}"
        );
    }

    #[test]
    fn debug_output_does_not_show_environment_values() {
        let mut cmd = UpstreamCommand::new("srv", ["--stdio"]);
        cmd.env = vec![("TOKEN".into(), "hunter2".into())];
        let shown = format!("{cmd:?}");
        assert!(
            shown.contains("TOKEN") && !shown.contains("hunter2"),
            "{shown}"
        );
    }
}
