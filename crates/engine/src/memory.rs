//! Cap and rate state in memory ([`CallState`]), the default
//! [`StateStore`]: streaks, rate windows and held slots per scope value,
//! under one lock, so that a check and a reservation are one step.
//!
//! Only a scope that holds something live (a streak, an event still in a
//! window, a held slot) has an entry: a call that counts for nothing
//! creates none, and an entry that empties is dropped. The table is
//! bounded twice: at most `max_keys` entries in all, and at most
//! `max_keys_per_user` session and agent entries created by one user's
//! calls, so that names a client declares (a new agent name per call)
//! cannot take the room other callers need. A reservation that would pass
//! a bound is refused as [`Reserved::Untracked`], which the engine reports
//! as warden's own limit, never as the rule's.

use crate::state::{
    Clock, Count, Hold, HoldId, LimitSpec, Reserved, ScopeKey, StateError, StateLimits, StateStore,
};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use warden_lang::ast::Scope;

#[derive(Debug)]
struct ScopeState {
    /// Cap rule id → consecutive matching forwarded calls.
    streaks: HashMap<String, u64>,
    /// Rate rule id → times of recent matching forwarded calls, oldest first.
    windows: HashMap<String, VecDeque<Instant>>,
    /// Rule id → slots held by calls decided and not yet forwarded.
    held: HashMap<String, u64>,
    last_used: Instant,
    /// The user whose call created a session or agent entry.
    owner: Option<String>,
}

impl ScopeState {
    fn new(now: Instant, owner: Option<String>) -> Self {
        ScopeState {
            streaks: HashMap::new(),
            windows: HashMap::new(),
            held: HashMap::new(),
            last_used: now,
            owner,
        }
    }

    /// Drops events that left their window. `windows` keeps no spec, so
    /// the window comes from the rule's spec at each use; `idle_ttl`
    /// bounds an entry whose rule disappeared.
    fn prune(&mut self, rule: &str, window: Duration, now: Instant) {
        if let Some(times) = self.windows.get_mut(rule) {
            while times
                .front()
                .is_some_and(|t| now.duration_since(*t) >= window)
            {
                times.pop_front();
            }
            if times.is_empty() {
                self.windows.remove(rule);
            }
        }
    }

    fn committed(&mut self, rule: &str, spec: &LimitSpec, now: Instant) -> Count {
        match spec.window {
            None => Count {
                count: self.streaks.get(rule).copied().unwrap_or(0),
                frees_in: None,
            },
            Some(window) => {
                self.prune(rule, window, now);
                let times = self.windows.get(rule);
                Count {
                    count: times.map_or(0, |t| t.len() as u64),
                    frees_in: times
                        .and_then(|t| t.front())
                        .map(|t| window.saturating_sub(now.duration_since(*t))),
                }
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.streaks.is_empty() && self.windows.is_empty() && self.held.is_empty()
    }
}

#[derive(Debug, Default)]
struct Inner {
    scopes: HashMap<ScopeKey, ScopeState>,
    /// User → session and agent entries their calls created.
    per_user: HashMap<String, usize>,
    next_hold: u64,
}

impl Inner {
    fn drop_if_empty(&mut self, key: &ScopeKey) {
        if self.scopes.get(key).is_some_and(ScopeState::is_empty)
            && let Some(s) = self.scopes.remove(key)
        {
            self.disown(s.owner.as_deref());
        }
    }

    fn disown(&mut self, owner: Option<&str>) {
        if let Some(o) = owner
            && let Some(n) = self.per_user.get_mut(o)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_user.remove(o);
            }
        }
    }

    /// Drops idle entries (no held slot, untouched for `ttl`) and entries
    /// whose windows emptied.
    fn sweep(&mut self, now: Instant, ttl: Duration) {
        let Inner {
            scopes, per_user, ..
        } = self;
        scopes.retain(|_, s| {
            for times in s.windows.values_mut() {
                // Without the spec, an event older than the idle bound is
                // surely out of any window worth keeping.
                while times.front().is_some_and(|t| now.duration_since(*t) >= ttl) {
                    times.pop_front();
                }
            }
            s.windows.retain(|_, t| !t.is_empty());
            let idle = s.held.is_empty() && now.duration_since(s.last_used) >= ttl;
            let keep = !idle && !s.is_empty();
            if !keep
                && let Some(o) = &s.owner
                && let Some(n) = per_user.get_mut(o)
            {
                *n = n.saturating_sub(1);
            }
            keep
        });
        per_user.retain(|_, n| *n > 0);
    }
}

/// Streaks, rate windows and held slots of every scope. Survives policy
/// reloads: it is keyed by rule id, so a rule keeps its count as long as
/// its name stays.
#[derive(Debug)]
pub struct CallState {
    inner: Mutex<Inner>,
    limits: StateLimits,
    clock: Arc<dyn Clock>,
}

impl CallState {
    pub fn new(limits: StateLimits, clock: Arc<dyn Clock>) -> Self {
        CallState {
            inner: Mutex::new(Inner::default()),
            limits,
            clock,
        }
    }

    pub fn now(&self) -> Instant {
        self.clock.now()
    }

    fn lock(&self) -> Result<MutexGuard<'_, Inner>, StateError> {
        self.inner
            .lock()
            .map_err(|_| StateError::Store("the state lock is poisoned".into()))
    }

    /// Number of scope values tracked (for status and tests).
    pub fn tracked_scopes(&self) -> usize {
        self.inner.lock().map(|s| s.scopes.len()).unwrap_or(0)
    }

    /// Why the new entries a hold needs cannot be made, if they cannot.
    fn room_for(&self, inner: &mut Inner, hold: &Hold, now: Instant) -> Option<String> {
        let owner = owner_of(hold);
        let fresh = |inner: &Inner| -> (usize, usize) {
            let mut new: Vec<&ScopeKey> = hold
                .slots()
                .map(|(_, _, k)| k)
                .filter(|k| !inner.scopes.contains_key(*k))
                .collect();
            new.dedup();
            let owned = new.iter().filter(|k| owned_scope(k.scope)).count();
            (new.len(), owned)
        };
        let over = |inner: &Inner, (new, owned): (usize, usize)| {
            let used = owner.map_or(0, |o| inner.per_user.get(o).copied().unwrap_or(0));
            if inner.scopes.len() + new > self.limits.max_keys {
                Some(format!(
                    "it holds live caps and rates for at most {} scope values",
                    self.limits.max_keys
                ))
            } else if owned > 0 && used + owned > self.limits.max_keys_per_user {
                Some(format!(
                    "one user's calls may hold live caps and rates for at most {} sessions and agents",
                    self.limits.max_keys_per_user
                ))
            } else {
                None
            }
        };
        let need = fresh(inner);
        if need.0 == 0 {
            return None;
        }
        over(inner, need)?;
        inner.sweep(now, self.limits.idle_ttl);
        over(inner, fresh(inner))
    }
}

/// Session and agent values are what a caller can make up; the user is
/// the bound's owner.
fn owned_scope(scope: Scope) -> bool {
    matches!(scope, Scope::Session | Scope::Agent)
}

fn owner_of(hold: &Hold) -> Option<&str> {
    hold.keys
        .iter()
        .find(|k| k.scope == Scope::User)
        .map(|k| k.value.as_str())
}

impl StateStore for CallState {
    fn count(
        &self,
        rule: &str,
        spec: &LimitSpec,
        key: &ScopeKey,
    ) -> Result<Option<Count>, StateError> {
        let now = self.clock.now();
        let mut inner = self.lock()?;
        let Some(state) = inner.scopes.get_mut(key) else {
            return Ok(Some(Count {
                count: 0,
                frees_in: None,
            }));
        };
        let mut c = state.committed(rule, spec, now);
        c.count += state.held.get(rule).copied().unwrap_or(0);
        Ok(Some(c))
    }

    fn reserve(&self, hold: &Hold) -> Result<Reserved, StateError> {
        let now = self.clock.now();
        let mut inner = self.lock()?;
        for (rule, spec, key) in hold.slots() {
            if hold.unchecked.iter().any(|r| r == rule) {
                continue;
            }
            if let Some(state) = inner.scopes.get_mut(key) {
                let used = state.committed(rule, spec, now).count
                    + state.held.get(rule).copied().unwrap_or(0);
                if used >= spec.max {
                    return Ok(Reserved::Full {
                        rule: rule.to_string(),
                    });
                }
            }
        }
        if let Some(why) = self.room_for(&mut inner, hold, now) {
            return Ok(Reserved::Untracked(why));
        }
        let owner = owner_of(hold).map(str::to_string);
        for (rule, _, key) in hold.slots() {
            if !inner.scopes.contains_key(key) {
                let owner = owned_scope(key.scope).then(|| owner.clone()).flatten();
                if let Some(o) = &owner {
                    *inner.per_user.entry(o.clone()).or_insert(0) += 1;
                }
                inner
                    .scopes
                    .insert(key.clone(), ScopeState::new(now, owner));
            }
            let state = inner.scopes.get_mut(key).expect("inserted above");
            *state.held.entry(rule.to_string()).or_insert(0) += 1;
            state.last_used = now;
        }
        inner.next_hold += 1;
        Ok(Reserved::Held(HoldId(inner.next_hold)))
    }

    fn commit(&self, _id: HoldId, hold: &Hold) -> Result<(), StateError> {
        let now = self.clock.now();
        let mut inner = self.lock()?;
        // The entries stay until the call is recorded in them (an entry
        // dropped and made anew would lose its owner).
        unhold(&mut inner, hold, false);
        for key in &hold.keys {
            let caps_here: Vec<&str> = hold
                .matched
                .iter()
                .filter(|(_, s)| s.scope == key.scope && s.window.is_none())
                .map(|(id, _)| id.as_str())
                .collect();
            let counts_here = hold
                .matched
                .iter()
                .any(|(_, s)| s.scope == key.scope && (s.window.is_some() || !hold.confirmed));
            if !inner.scopes.contains_key(key) {
                if !counts_here {
                    continue;
                }
                // The hold made the entry; it can only be gone if the hold
                // was released twice. Record the call all the same.
                inner.scopes.insert(key.clone(), ScopeState::new(now, None));
            }
            let state = inner.scopes.get_mut(key).expect("present");
            state.last_used = now;
            // Streaks of caps this call does not count for end; a
            // confirmed call ends them all and starts none.
            state
                .streaks
                .retain(|id, _| !hold.confirmed && caps_here.contains(&id.as_str()));
            if !hold.confirmed {
                for id in caps_here {
                    *state.streaks.entry(id.to_string()).or_insert(0) += 1;
                }
            }
            for (id, spec) in hold.matched.iter().filter(|(_, s)| s.scope == key.scope) {
                if let Some(window) = spec.window {
                    state.prune(id, window, now);
                    let times = state.windows.entry(id.clone()).or_default();
                    times.push_back(now);
                    // Beyond `max` the oldest no longer decides anything.
                    while times.len() as u64 > spec.max.max(1) {
                        times.pop_front();
                    }
                }
            }
            inner.drop_if_empty(key);
        }
        Ok(())
    }

    fn release(&self, _id: HoldId, hold: &Hold) -> Result<(), StateError> {
        let mut inner = self.lock()?;
        unhold(&mut inner, hold, true);
        Ok(())
    }

    fn end_streaks(&self, keys: &[ScopeKey], _wait: bool) -> Result<(), StateError> {
        let now = self.clock.now();
        let mut inner = self.lock()?;
        for key in keys {
            if let Some(state) = inner.scopes.get_mut(key) {
                state.streaks.clear();
                state.last_used = now;
                inner.drop_if_empty(key);
            }
        }
        Ok(())
    }
}

fn unhold(inner: &mut Inner, hold: &Hold, drop_empty: bool) {
    let slots: Vec<(String, ScopeKey)> = hold
        .slots()
        .map(|(r, _, k)| (r.to_string(), k.clone()))
        .collect();
    for (rule, key) in slots {
        if let Some(state) = inner.scopes.get_mut(&key) {
            if let Some(n) = state.held.get_mut(&rule) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    state.held.remove(&rule);
                }
            }
            if drop_empty {
                inner.drop_if_empty(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{ManualClock, SystemClock};

    fn key(scope: Scope, v: &str) -> ScopeKey {
        ScopeKey {
            scope,
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

    fn hold(session: &str, matched: &[(&str, LimitSpec)], confirmed: bool) -> Hold {
        Hold {
            keys: vec![
                key(Scope::Session, session),
                key(Scope::User, "alice"),
                key(Scope::Agent, session),
            ],
            matched: matched.iter().map(|(r, s)| (r.to_string(), *s)).collect(),
            confirmed,
            unchecked: Vec::new(),
        }
    }

    /// Reserves and commits; panics if the store refuses.
    fn forward(s: &CallState, h: &Hold) {
        match s.reserve(h).unwrap() {
            Reserved::Held(id) => s.commit(id, h).unwrap(),
            other => panic!("not held: {other:?}"),
        }
    }

    fn count(s: &CallState, rule: &str, spec: &LimitSpec, session: &str) -> u64 {
        s.count(rule, spec, &key(Scope::Session, session))
            .unwrap()
            .unwrap()
            .count
    }

    #[test]
    fn streaks_count_and_end() {
        let s = CallState::new(StateLimits::default(), Arc::new(SystemClock));
        forward(&s, &hold("s1", &[("cap", CAP)], false));
        forward(&s, &hold("s1", &[("cap", CAP)], false));
        assert_eq!(count(&s, "cap", &CAP, "s1"), 2);
        assert_eq!(
            count(&s, "cap", &CAP, "s2"),
            0,
            "another session is separate"
        );
        // A call that counts for nothing ends the streak.
        s.end_streaks(&hold("s1", &[], false).keys, true).unwrap();
        assert_eq!(count(&s, "cap", &CAP, "s1"), 0);
        forward(&s, &hold("s1", &[("cap", CAP)], false));
        // A confirmed call ends it too, and holds no cap slot.
        forward(&s, &hold("s1", &[("cap", CAP)], true));
        assert_eq!(count(&s, "cap", &CAP, "s1"), 0);
        assert_eq!(s.tracked_scopes(), 0, "nothing live, nothing kept");
    }

    #[test]
    fn a_held_slot_counts_until_released_and_the_last_slot_is_taken_once() {
        let s = CallState::new(StateLimits::default(), Arc::new(SystemClock));
        let h = hold("s1", &[("cap", CAP)], false);
        let ids: Vec<HoldId> = (0..3)
            .map(|_| match s.reserve(&h).unwrap() {
                Reserved::Held(id) => id,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(count(&s, "cap", &CAP, "s1"), 3);
        assert_eq!(
            s.reserve(&h).unwrap(),
            Reserved::Full { rule: "cap".into() }
        );
        s.release(ids[0], &h).unwrap();
        assert_eq!(count(&s, "cap", &CAP, "s1"), 2);
        s.commit(ids[1], &h).unwrap();
        s.commit(ids[2], &h).unwrap();
        assert_eq!(count(&s, "cap", &CAP, "s1"), 2);
    }

    #[test]
    fn rate_windows_slide() {
        let clock = Arc::new(ManualClock::default());
        let s = CallState::new(StateLimits::default(), clock.clone());
        forward(&s, &hold("s1", &[("rate", RATE)], false));
        clock.advance(Duration::from_secs(30));
        forward(&s, &hold("s1", &[("rate", RATE)], false));
        let c = s
            .count("rate", &RATE, &key(Scope::Session, "s1"))
            .unwrap()
            .unwrap();
        assert_eq!((c.count, c.frees_in), (2, Some(Duration::from_secs(30))));
        clock.advance(Duration::from_secs(31));
        assert_eq!(count(&s, "rate", &RATE, "s1"), 1);
    }

    #[test]
    fn memory_is_bounded_idle_entries_expire_and_a_full_table_says_so() {
        let clock = Arc::new(ManualClock::default());
        let limits = StateLimits {
            idle_ttl: Duration::from_secs(10),
            max_keys: 2,
            max_keys_per_user: 100,
        };
        let s = CallState::new(limits, clock.clone());
        forward(&s, &hold("a", &[("cap", CAP)], false));
        forward(&s, &hold("b", &[("cap", CAP)], false));
        assert!(matches!(
            s.reserve(&hold("c", &[("cap", CAP)], false)).unwrap(),
            Reserved::Untracked(why) if why.contains("at most 2 scope values")
        ));
        assert_eq!(s.tracked_scopes(), 2);
        clock.advance(Duration::from_secs(11));
        forward(&s, &hold("c", &[("cap", CAP)], false));
        assert_eq!(s.tracked_scopes(), 1, "idle scopes expired");
    }

    #[test]
    fn one_user_cannot_fill_the_table_with_declared_names() {
        let limits = StateLimits {
            max_keys_per_user: 3,
            ..StateLimits::default()
        };
        let s = CallState::new(limits, Arc::new(SystemClock));
        for i in 0..3 {
            forward(&s, &hold(&format!("s{i}"), &[("cap", CAP)], false));
        }
        let h = hold("s9", &[("cap", CAP)], false);
        assert!(matches!(
            s.reserve(&h).unwrap(),
            Reserved::Untracked(why) if why.contains("one user's calls")
        ));
        let mut bob = h.clone();
        bob.keys[1].value = "bob".into();
        assert!(matches!(s.reserve(&bob).unwrap(), Reserved::Held(_)));
    }
}
