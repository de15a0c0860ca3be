//! Per-scope state that caps and rate limits need: the current streak of
//! each cap and the recent calls of each rate limit, keyed by the scope's
//! value (a session id, a user, an agent). Only forwarded calls count.
//!
//! Memory is bounded: idle entries expire, rate windows keep at most `max`
//! timestamps, and past `max_keys` tracked scopes no new scope is tracked;
//! the engine then supplies no counter for it, which the compiled policies
//! read as "limit reached" (fail closed).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use warden_lang::ast::Scope;

/// A source of time, so that tests can move it.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> Instant;
}

#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// A clock that moves only when told (for tests and `warden test`).
#[derive(Debug)]
pub struct ManualClock {
    start: Instant,
    offset: Mutex<Duration>,
}

impl Default for ManualClock {
    fn default() -> Self {
        ManualClock {
            start: Instant::now(),
            offset: Mutex::new(Duration::ZERO),
        }
    }
}

impl ManualClock {
    pub fn advance(&self, by: Duration) {
        *self.offset.lock().unwrap_or_else(|p| p.into_inner()) += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.start + *self.offset.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The value a scope takes for one call.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ScopeKey {
    pub scope: Scope,
    pub value: String,
}

/// What a cap or rate rule needs to be counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitSpec {
    pub max: u64,
    /// `None` for a cap (streak), `Some` for a rate window.
    pub window: Option<Duration>,
    pub scope: Scope,
}

#[derive(Debug, Clone, Copy)]
pub struct StateLimits {
    /// Streaks and windows untouched this long are forgotten.
    pub idle_ttl: Duration,
    /// Most scope values tracked at once.
    pub max_keys: usize,
}

impl Default for StateLimits {
    fn default() -> Self {
        StateLimits {
            idle_ttl: Duration::from_secs(24 * 3600),
            max_keys: 100_000,
        }
    }
}

#[derive(Debug, Default)]
struct ScopeState {
    /// Cap rule id → consecutive matching forwarded calls.
    streaks: HashMap<String, u64>,
    /// Rate rule id → times of recent matching forwarded calls, oldest first.
    windows: HashMap<String, VecDeque<Instant>>,
    last_used: Option<Instant>,
}

/// Streaks and rate windows of every scope. Survives policy reloads: it is
/// keyed by rule id, so a rule keeps its count as long as its name stays.
#[derive(Debug)]
pub struct CallState {
    scopes: Mutex<HashMap<ScopeKey, ScopeState>>,
    limits: StateLimits,
    clock: std::sync::Arc<dyn Clock>,
}

/// A counter for one rule, and for a rate how long until it drops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Count {
    pub count: u64,
    pub frees_in: Option<Duration>,
}

impl CallState {
    pub fn new(limits: StateLimits, clock: std::sync::Arc<dyn Clock>) -> Self {
        CallState {
            scopes: Mutex::new(HashMap::new()),
            limits,
            clock,
        }
    }

    pub fn now(&self) -> Instant {
        self.clock.now()
    }

    /// The current count of `rule` in `key`, or `None` when the state is
    /// unavailable (lock poisoned, or the scope could not be tracked).
    pub fn count(&self, rule: &str, spec: &LimitSpec, key: &ScopeKey) -> Option<Count> {
        let now = self.clock.now();
        let mut scopes = self.scopes.lock().ok()?;
        let untracked = !scopes.contains_key(key) && scopes.len() >= self.limits.max_keys;
        if untracked {
            Self::sweep(&mut scopes, now, self.limits.idle_ttl);
            if scopes.len() >= self.limits.max_keys {
                return None;
            }
        }
        let Some(state) = scopes.get_mut(key) else {
            return Some(Count {
                count: 0,
                frees_in: None,
            });
        };
        Some(match spec.window {
            None => Count {
                count: state.streaks.get(rule).copied().unwrap_or(0),
                frees_in: None,
            },
            Some(window) => {
                let times = state.windows.entry(rule.to_string()).or_default();
                while times
                    .front()
                    .is_some_and(|t| now.duration_since(*t) >= window)
                {
                    times.pop_front();
                }
                Count {
                    count: times.len() as u64,
                    frees_in: times
                        .front()
                        .map(|t| window.saturating_sub(now.duration_since(*t))),
                }
            }
        })
    }

    /// Records a forwarded call. `matched` are the cap and rate rules whose
    /// counting policy matched it. In every scope of the call, streaks of
    /// caps it did not match end; a call the person confirmed ends all
    /// streaks; matched caps and rates count it.
    pub fn record_forwarded(
        &self,
        keys: &[ScopeKey],
        matched: &[(&str, LimitSpec)],
        confirmed: bool,
    ) {
        let now = self.clock.now();
        let Ok(mut scopes) = self.scopes.lock() else {
            return;
        };
        if scopes.len() + keys.len() > self.limits.max_keys {
            Self::sweep(&mut scopes, now, self.limits.idle_ttl);
        }
        for key in keys {
            if !scopes.contains_key(key) && scopes.len() >= self.limits.max_keys {
                continue;
            }
            let state = scopes.entry(key.clone()).or_default();
            state.last_used = Some(now);
            let caps_here: Vec<&str> = matched
                .iter()
                .filter(|(_, s)| s.scope == key.scope && s.window.is_none())
                .map(|(id, _)| *id)
                .collect();
            state
                .streaks
                .retain(|id, _| !confirmed && caps_here.contains(&id.as_str()));
            if !confirmed {
                for id in caps_here {
                    *state.streaks.entry(id.to_string()).or_insert(0) += 1;
                }
            }
            for (id, spec) in matched.iter().filter(|(_, s)| s.scope == key.scope) {
                if let Some(window) = spec.window {
                    let times = state.windows.entry(id.to_string()).or_default();
                    while times
                        .front()
                        .is_some_and(|t| now.duration_since(*t) >= window)
                    {
                        times.pop_front();
                    }
                    times.push_back(now);
                    // Beyond `max` the oldest no longer decides anything.
                    while times.len() as u64 > spec.max.max(1) {
                        times.pop_front();
                    }
                }
            }
        }
    }

    fn sweep(scopes: &mut HashMap<ScopeKey, ScopeState>, now: Instant, ttl: Duration) {
        scopes.retain(|_, s| s.last_used.is_some_and(|t| now.duration_since(t) < ttl));
    }

    /// Number of scope values tracked (for status and tests).
    pub fn tracked_scopes(&self) -> usize {
        self.scopes.lock().map(|s| s.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn key(v: &str) -> ScopeKey {
        ScopeKey {
            scope: Scope::Session,
            value: v.to_string(),
        }
    }
    const CAP: LimitSpec = LimitSpec {
        max: 3,
        window: None,
        scope: Scope::Session,
    };
    const RATE: LimitSpec = LimitSpec {
        max: 2,
        window: Some(Duration::from_secs(60)),
        scope: Scope::Session,
    };

    #[test]
    fn streaks_count_and_end() {
        let s = CallState::new(StateLimits::default(), Arc::new(SystemClock));
        let k = [key("s1")];
        s.record_forwarded(&k, &[("cap", CAP)], false);
        s.record_forwarded(&k, &[("cap", CAP)], false);
        assert_eq!(s.count("cap", &CAP, &k[0]).unwrap().count, 2);
        // Another session is separate.
        assert_eq!(s.count("cap", &CAP, &key("s2")).unwrap().count, 0);
        // A non-matching call ends the streak.
        s.record_forwarded(&k, &[], false);
        assert_eq!(s.count("cap", &CAP, &k[0]).unwrap().count, 0);
        s.record_forwarded(&k, &[("cap", CAP)], false);
        // A confirmed call ends it too.
        s.record_forwarded(&k, &[("cap", CAP)], true);
        assert_eq!(s.count("cap", &CAP, &k[0]).unwrap().count, 0);
    }

    #[test]
    fn rate_windows_slide() {
        let clock = Arc::new(ManualClock::default());
        let s = CallState::new(StateLimits::default(), clock.clone());
        let k = [key("s1")];
        s.record_forwarded(&k, &[("rate", RATE)], false);
        clock.advance(Duration::from_secs(30));
        s.record_forwarded(&k, &[("rate", RATE)], false);
        let c = s.count("rate", &RATE, &k[0]).unwrap();
        assert_eq!(c.count, 2);
        assert_eq!(c.frees_in, Some(Duration::from_secs(30)));
        clock.advance(Duration::from_secs(31));
        assert_eq!(s.count("rate", &RATE, &k[0]).unwrap().count, 1);
    }

    #[test]
    fn memory_is_bounded_and_overflow_fails_closed() {
        let clock = Arc::new(ManualClock::default());
        let limits = StateLimits {
            idle_ttl: Duration::from_secs(10),
            max_keys: 2,
        };
        let s = CallState::new(limits, clock.clone());
        s.record_forwarded(&[key("a")], &[("cap", CAP)], false);
        s.record_forwarded(&[key("b")], &[("cap", CAP)], false);
        s.record_forwarded(&[key("c")], &[("cap", CAP)], false);
        assert_eq!(s.tracked_scopes(), 2);
        assert_eq!(
            s.count("cap", &CAP, &key("c")),
            None,
            "untrackable scope has no counter"
        );
        clock.advance(Duration::from_secs(11));
        assert_eq!(
            s.count("cap", &CAP, &key("c")).map(|c| c.count),
            Some(0),
            "idle scopes expired"
        );
        assert_eq!(s.tracked_scopes(), 0);
    }
}
