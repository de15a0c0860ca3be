//! Where the operator says caps, rates and budgets live, as written in
//! `state = "..."` or `--state`: a SQLite file (a path, or
//! `sqlite:///path`) or a Redis server (`redis://...`), parsed into a
//! [`StateLocation`] with a reason when the text is neither.

use std::path::{Path, PathBuf};

/// A parsed `state` setting. Its `Debug` never shows a password.
#[derive(Clone, PartialEq, Eq)]
pub enum StateLocation {
    /// A SQLite file, shared by the processes of one machine.
    Sqlite(PathBuf),
    /// A Redis server, shared by replicas: the URL as written.
    Redis(String),
}

impl std::fmt::Debug for StateLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StateLocation::Sqlite(p) => f.debug_tuple("Sqlite").field(p).finish(),
            StateLocation::Redis(url) => f
                .debug_tuple("Redis")
                .field(&crate::remote::redacted(url))
                .finish(),
        }
    }
}

/// Why a `state` setting is not a store warden knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateLocationError {
    pub message: String,
    pub help: String,
}

impl StateLocation {
    /// Parses `text`; a relative path is taken from `base` (the config
    /// file's directory, or the working directory for `--state`).
    pub fn parse(text: &str, base: &Path) -> Result<Self, StateLocationError> {
        let resolve = |p: &str| {
            let p = Path::new(p);
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                base.join(p)
            }
        };
        let Some((scheme, rest)) = text.split_once("://") else {
            return Ok(StateLocation::Sqlite(resolve(text)));
        };
        match scheme.to_ascii_lowercase().as_str() {
            "redis" => {
                crate::redis_state::RedisState::check_url(text).map_err(|why| {
                    StateLocationError {
                        message: format!("`{}` is not a Redis URL: {why}", crate::remote::redacted(text)),
                        help: "write it as `redis://[user:password@]host[:port][/db]`, e.g. `redis://127.0.0.1:6379/0`".into(),
                    }
                })?;
                Ok(StateLocation::Redis(text.to_string()))
            }
            "rediss" => Err(StateLocationError {
                message: "TLS to Redis (`rediss://`) is not built into warden".into(),
                help: "use `redis://` on a private network, or a local TLS tunnel (stunnel, a sidecar) in front of the server".into(),
            }),
            "sqlite" if !rest.is_empty() => Ok(StateLocation::Sqlite(resolve(rest))),
            _ => Err(StateLocationError {
                message: format!("`{scheme}://` is not a state store warden knows"),
                help: "give a SQLite file (`state.db` or `sqlite:///var/lib/warden/state.db`) or a Redis server (`redis://127.0.0.1:6379/0`)".into(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_sqlite_urls_and_redis_urls() {
        let base = Path::new("/etc/warden");
        let parse = |t| StateLocation::parse(t, base);
        assert_eq!(
            parse("state.db"),
            Ok(StateLocation::Sqlite("/etc/warden/state.db".into()))
        );
        assert_eq!(
            parse("sqlite:///var/lib/warden/state.db"),
            Ok(StateLocation::Sqlite("/var/lib/warden/state.db".into()))
        );
        assert_eq!(
            parse("redis://127.0.0.1:6379/0"),
            Ok(StateLocation::Redis("redis://127.0.0.1:6379/0".into()))
        );
        assert!(parse("rediss://h/0").unwrap_err().message.contains("TLS"));
        assert!(
            parse("postgres://h/db")
                .unwrap_err()
                .message
                .contains("`postgres://`")
        );
        let bad = parse("redis://:s3cret@host:notaport/0").unwrap_err();
        assert!(!bad.message.contains("s3cret"), "{}", bad.message);
        let good = parse("redis://warden:s3cret@host:6379/0").unwrap();
        assert_eq!(format!("{good:?}"), "Redis(\"redis://host:6379/0\")");
    }
}
