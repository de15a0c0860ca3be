//! Whether a `required` server can be reached, for `/readyz`.
//!
//! A Streamable HTTP server is reachable when a TCP connection to its host
//! and port opens within a second. A stdio server runs per session, so
//! between sessions there is no process to ask: it counts as reachable
//! when its command resolves to an executable file (warden could start
//! it). Neither sends an MCP message: a probe every few seconds from an
//! orchestrator must not create upstream sessions.

use crate::config::Upstream;
use std::path::Path;
use std::time::Duration;

/// How long a TCP probe of an HTTP server may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// `Ok` when `upstream` is reachable, else why not.
pub(crate) async fn probe(upstream: &Upstream) -> Result<(), String> {
    match upstream {
        Upstream::Url(url) => {
            let parsed = reqwest::Url::parse(url).map_err(|e| format!("`{url}`: {e}"))?;
            let host = parsed
                .host_str()
                .ok_or_else(|| format!("`{url}` has no host"))?
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string();
            let port = parsed
                .port_or_known_default()
                .ok_or_else(|| format!("`{url}` has no port"))?;
            match tokio::time::timeout(
                CONNECT_TIMEOUT,
                tokio::net::TcpStream::connect((host.as_str(), port)),
            )
            .await
            {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(format!("cannot connect to {host}:{port}: {e}")),
                Err(_) => Err(format!(
                    "no connection to {host}:{port} within {}s",
                    CONNECT_TIMEOUT.as_secs()
                )),
            }
        }
        Upstream::Command(c) => {
            let program = Path::new(&c.program);
            match c.executable() {
                Some(_) => Ok(()),
                None => Err(format!(
                    "the command `{}` is not an executable file{}",
                    program.display(),
                    if program.components().count() == 1 {
                        " on PATH"
                    } else {
                        ""
                    }
                )),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::resolve_program as resolve_command;

    #[test]
    fn bare_names_are_looked_up_on_path_and_paths_taken_as_given() {
        let path = std::env::var_os("PATH");
        assert!(resolve_command(Path::new("sh"), None, path.as_deref()).is_some());
        assert!(
            resolve_command(Path::new("no-such-program-warden"), None, path.as_deref()).is_none()
        );
        assert!(resolve_command(Path::new("/bin/sh"), None, None).is_some());
        assert!(resolve_command(Path::new("./sh"), Some(Path::new("/bin")), None).is_some());
        // A directory is not a program.
        assert!(resolve_command(Path::new("/tmp/"), None, None).is_none());
    }

    #[tokio::test]
    async fn an_http_server_is_reachable_when_its_port_accepts() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Upstream::Url(format!("http://127.0.0.1:{port}/mcp"));
        assert_eq!(probe(&up).await, Ok(()));
        drop(listener);
        let why = probe(&up).await.unwrap_err();
        assert!(why.contains(&format!("127.0.0.1:{port}")), "{why}");
    }
}
