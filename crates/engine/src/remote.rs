//! What the stores on other machines (Redis for state, PostgreSQL for
//! records) share: naming a store by its URL without the credentials in
//! it, and the backoff between failed connects, so that a server that is
//! down costs one connect attempt per step, not one per call.

use std::time::{Duration, Instant};

const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// `url` without its user and password.
pub fn redacted(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            format!("{scheme}://{host}{path}")
        }
        None => url.to_string(),
    }
}

/// Failed connects in a row, and when the next may be tried: 50 ms after
/// the first failure, doubling up to 2 s.
#[derive(Debug, Default)]
pub(crate) struct Backoff {
    failures: u32,
    retry_at: Option<Instant>,
    last_error: String,
}

impl Backoff {
    /// Why not to connect at `now`: the last error and when the next
    /// attempt is due; `None` when a connect may be tried.
    pub(crate) fn refusal(&self, now: Instant) -> Option<String> {
        let at = self.retry_at.filter(|at| *at > now)?;
        Some(format!(
            "{} (next attempt in {} ms)",
            self.last_error,
            at.duration_since(now).as_millis()
        ))
    }

    /// A connect failed with `why`: the next waits one step longer.
    pub(crate) fn failed(&mut self, why: &str) {
        let step = FIRST_BACKOFF
            .saturating_mul(1u32 << self.failures.min(10))
            .min(MAX_BACKOFF);
        self.failures = self.failures.saturating_add(1);
        self.retry_at = Some(Instant::now() + step);
        self.last_error = why.to_string();
    }

    /// A connect succeeded: the next failure starts from the first step.
    pub(crate) fn succeeded(&mut self) {
        *self = Backoff::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_is_named_without_its_credentials() {
        assert_eq!(
            redacted("redis://user:s3cret@10.0.0.5:6379/0"),
            "redis://10.0.0.5:6379/0"
        );
        assert_eq!(redacted("redis://:p@w@host/2"), "redis://host/2");
        assert_eq!(redacted("redis://127.0.0.1"), "redis://127.0.0.1");
    }

    #[test]
    fn the_backoff_doubles_up_to_its_cap_and_resets() {
        let mut b = Backoff::default();
        assert_eq!(b.refusal(Instant::now()), None);
        b.failed("cannot connect: refused");
        let why = b.refusal(Instant::now()).unwrap();
        assert!(
            why.starts_with("cannot connect: refused (next attempt in"),
            "{why}"
        );
        for _ in 0..20 {
            b.failed("again");
        }
        assert!(
            b.refusal(Instant::now() + MAX_BACKOFF).is_none(),
            "capped at 2 s"
        );
        b.succeeded();
        assert_eq!(b.refusal(Instant::now()), None);
    }
}
