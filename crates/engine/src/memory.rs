//! Cap, rate and budget state in memory ([`CallState`]), the default
//! [`StateStore`]: streaks, windows and held slots per key, under one
//! lock, so that a check and a reservation are one step.
//!
//! An entry is one key: a row ([`ScopeKey`]) and a split value. A cap's
//! streak lives in the row's entry without a split value (it remembers
//! the split value it runs under); windows and held weights live in the
//! entry of their row and split value. Only a key that holds something
//! live (a streak, an event still in a window, a held slot) has an entry:
//! a call that counts for nothing creates none, and an entry that empties
//! is dropped. The table is bounded twice: at most `max_keys` entries in
//! all, and at most `max_keys_per_user` entries with a session, an agent
//! or a split value created by one user's calls, so that names a client
//! declares (a new agent or model name per call) cannot take the room
//! other callers need. A reservation that would pass a bound is refused
//! as [`Reserved::Untracked`], which the engine reports as warden's own
//! limit, never as the rule's.
//!
//! A budget window coalesces the amounts committed within
//! [`crate::state::coalescing`] of its newest event into that event,
//! timed by the latest amount: it holds about 1024 events per key at most
//! and frees late, never early. Rate windows keep one event per call.

use crate::state::{
    Clock, Count, Hold, HoldId, LimitSpec, Reserved, ScopeKey, StateError, StateLimits, StateStore,
    coalescing, fits, frees_in, newer_decide,
};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// A row and a split value (empty for the row's own entry).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct EntryKey {
    row: ScopeKey,
    split: String,
}

impl EntryKey {
    fn new(row: &ScopeKey, split: &str) -> Self {
        EntryKey {
            row: row.clone(),
            split: split.to_string(),
        }
    }

    /// Keys a caller can multiply by declaring names count towards the
    /// user's bound.
    fn owned(&self) -> bool {
        self.row.is_declared() || !self.split.is_empty()
    }
}

/// Weight committed at `last` (coalesced since `first` for a budget).
#[derive(Debug, Clone, Copy)]
struct Event {
    first: Instant,
    last: Instant,
    weight: u64,
}

#[derive(Debug)]
struct Entry {
    /// Cap rule id → (split value the streak runs under, its length).
    streaks: HashMap<String, (String, u64)>,
    /// Rate and budget rule id → recent events, oldest first.
    windows: HashMap<String, VecDeque<Event>>,
    /// Rule id → weight held by calls decided and not yet forwarded.
    held: HashMap<String, u64>,
    last_used: Instant,
    /// The user whose call created an owned entry.
    owner: Option<String>,
}

impl Entry {
    fn new(now: Instant, owner: Option<String>) -> Self {
        Entry {
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
        if let Some(events) = self.windows.get_mut(rule) {
            while events
                .front()
                .is_some_and(|e| now.duration_since(e.last) >= window)
            {
                events.pop_front();
            }
            if events.is_empty() {
                self.windows.remove(rule);
            }
        }
    }

    fn held(&self, rule: &str) -> u64 {
        self.held.get(rule).copied().unwrap_or(0)
    }

    fn is_empty(&self) -> bool {
        self.streaks.is_empty() && self.windows.is_empty() && self.held.is_empty()
    }
}

/// Most single-use marks kept in memory; past it (after dropping expired
/// ones) a new mark is refused, which fails closed.
pub const MAX_MARKS: usize = 100_000;
/// Most sessions with labels kept in memory; past it (after dropping
/// expired labels) a call that would label another session is denied.
pub const MAX_LABELLED_SESSIONS: usize = 100_000;

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<EntryKey, Entry>,
    /// Single-use marks and when each expires.
    marks: HashMap<String, Instant>,
    /// Grants by key: id, expiry, uses left when counted.
    grants: HashMap<String, (String, Instant, Option<u64>)>,
    /// Pending approvals by id: record, decision, expiry.
    approvals: HashMap<String, (String, Option<String>, Instant)>,
    /// Session → label → when it expires.
    labels: HashMap<String, HashMap<String, Instant>>,
    /// (server, tool) → the pinned definition and a pending one.
    pins: std::collections::BTreeMap<(String, String), crate::pins::ToolPin>,
    /// User → owned entries their calls created.
    per_user: HashMap<String, usize>,
    next_hold: u64,
}

impl Inner {
    fn drop_if_empty(&mut self, key: &EntryKey) {
        if self.entries.get(key).is_some_and(Entry::is_empty)
            && let Some(e) = self.entries.remove(key)
            && let Some(o) = e.owner
            && let Some(n) = self.per_user.get_mut(&o)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_user.remove(&o);
            }
        }
    }

    /// The entry of `key`, made (owned by `user` if it is an owned key)
    /// when missing.
    fn entry(&mut self, key: &EntryKey, user: &str, now: Instant) -> &mut Entry {
        if !self.entries.contains_key(key) {
            let owner = key.owned().then(|| user.to_string());
            if let Some(o) = &owner {
                *self.per_user.entry(o.clone()).or_insert(0) += 1;
            }
            self.entries.insert(key.clone(), Entry::new(now, owner));
        }
        self.entries.get_mut(key).expect("inserted above")
    }

    /// What `rule` used in the row `row` under `split`, held included;
    /// and its window's events as (time until each leaves, weight).
    fn used(
        &mut self,
        rule: &str,
        spec: &LimitSpec,
        row: &ScopeKey,
        split: &str,
        now: Instant,
    ) -> (u64, u64, Vec<(Duration, u64)>) {
        let here = self.entries.get_mut(&EntryKey::new(row, split));
        match spec.window {
            None => {
                let held = here.map_or(0, |e| e.held(rule));
                let streak = self
                    .entries
                    .get(&EntryKey::new(row, ""))
                    .and_then(|e| e.streaks.get(rule))
                    .filter(|(s, _)| s == split)
                    .map_or(0, |(_, n)| *n);
                (streak, held, Vec::new())
            }
            Some(window) => {
                let Some(e) = here else {
                    return (0, 0, Vec::new());
                };
                e.prune(rule, window, now);
                let events: Vec<(Duration, u64)> = e
                    .windows
                    .get(rule)
                    .into_iter()
                    .flatten()
                    .map(|ev| {
                        (
                            window.saturating_sub(now.duration_since(ev.last)),
                            ev.weight,
                        )
                    })
                    .collect();
                let committed = events.iter().fold(0u64, |a, (_, w)| a.saturating_add(*w));
                (committed, e.held(rule), events)
            }
        }
    }

    /// Drops idle entries (no held slot, untouched for `ttl`) and entries
    /// whose windows emptied.
    fn sweep(&mut self, now: Instant, ttl: Duration) {
        let Inner {
            entries, per_user, ..
        } = self;
        entries.retain(|_, e| {
            for events in e.windows.values_mut() {
                // Without the spec, an event older than the idle bound is
                // surely out of any window worth keeping.
                while events
                    .front()
                    .is_some_and(|ev| now.duration_since(ev.last) >= ttl)
                {
                    events.pop_front();
                }
            }
            e.windows.retain(|_, t| !t.is_empty());
            let idle = e.held.is_empty() && now.duration_since(e.last_used) >= ttl;
            let keep = !idle && !e.is_empty();
            if !keep
                && let Some(o) = &e.owner
                && let Some(n) = per_user.get_mut(o)
            {
                *n = n.saturating_sub(1);
            }
            keep
        });
        per_user.retain(|_, n| *n > 0);
    }
}

/// Streaks, windows and held slots of every key. Survives policy reloads:
/// it is keyed by rule id, so a rule keeps its count as long as its name
/// stays.
#[derive(Debug)]
pub struct CallState {
    inner: Mutex<Inner>,
    limits: StateLimits,
    clock: Arc<dyn Clock>,
}

/// The entries a hold's slots live in: each slot's own, and a cap's row
/// entry (where its streak is kept).
fn entries_of(hold: &Hold) -> Vec<EntryKey> {
    let mut keys: Vec<EntryKey> = Vec::new();
    for s in hold.slots() {
        let mut push = |k: EntryKey| {
            if !keys.contains(&k) {
                keys.push(k);
            }
        };
        push(EntryKey::new(s.key, s.split));
        if s.spec.window.is_none() {
            push(EntryKey::new(s.key, ""));
        }
    }
    keys
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

    /// Number of keys tracked (for status and tests).
    pub fn tracked_scopes(&self) -> usize {
        self.inner.lock().map(|s| s.entries.len()).unwrap_or(0)
    }

    /// Why the new entries a hold needs cannot be made, if they cannot.
    fn room_for(&self, inner: &mut Inner, hold: &Hold, now: Instant) -> Option<String> {
        let wanted = entries_of(hold);
        let fresh = |inner: &Inner| -> (usize, usize) {
            let new: Vec<&EntryKey> = wanted
                .iter()
                .filter(|k| !inner.entries.contains_key(*k))
                .collect();
            let owned = new.iter().filter(|k| k.owned()).count();
            (new.len(), owned)
        };
        let over = |inner: &Inner, (new, owned): (usize, usize)| {
            let used = inner.per_user.get(&hold.user).copied().unwrap_or(0);
            if inner.entries.len() + new > self.limits.max_keys {
                Some(format!(
                    "it holds live caps, rates and budgets for at most {} keys",
                    self.limits.max_keys
                ))
            } else if owned > 0 && used + owned > self.limits.max_keys_per_user {
                Some(format!(
                    "one user's calls may hold live caps, rates and budgets for at most {} sessions, agents, models and tools",
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

impl StateStore for CallState {
    fn in_process(&self) -> bool {
        true
    }

    fn count(
        &self,
        rule: &str,
        spec: &LimitSpec,
        key: &ScopeKey,
        split: &str,
        need: u64,
    ) -> Result<Option<Count>, StateError> {
        let now = self.clock.now();
        let mut inner = self.lock()?;
        let (committed, held, events) = inner.used(rule, spec, key, split, now);
        Ok(Some(Count {
            count: committed.saturating_add(held),
            frees_in: frees_in(events, held, need, spec),
        }))
    }

    fn reserve(&self, hold: &Hold) -> Result<Reserved, StateError> {
        let now = self.clock.now();
        let mut inner = self.lock()?;
        for s in hold.slots() {
            if hold.is_unchecked(s.rule) {
                continue;
            }
            let (committed, held, _) = inner.used(s.rule, s.spec, s.key, s.split, now);
            if !fits(committed.saturating_add(held), s.weight, s.spec.max) {
                return Ok(Reserved::Full {
                    rule: s.rule.to_string(),
                });
            }
        }
        if let Some(why) = self.room_for(&mut inner, hold, now) {
            return Ok(Reserved::Untracked(why));
        }
        for key in entries_of(hold) {
            inner.entry(&key, &hold.user, now).last_used = now;
        }
        for s in hold.slots() {
            let e = inner.entry(&EntryKey::new(s.key, s.split), &hold.user, now);
            let held = e.held.entry(s.rule.to_string()).or_insert(0);
            *held = held.saturating_add(s.weight);
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
        for row in &hold.keys {
            let key = EntryKey::new(row, "");
            let caps: Vec<(&str, &str)> = hold
                .caps_in(row)
                .map(|c| (c.rule.as_str(), c.split.as_str()))
                .collect();
            let starts = !hold.confirmed && !caps.is_empty();
            if !starts && !inner.entries.contains_key(&key) {
                continue;
            }
            let e = inner.entry(&key, &hold.user, now);
            e.last_used = now;
            // Streaks of caps this call does not count for end; a
            // confirmed call ends them all and starts none.
            e.streaks
                .retain(|id, _| !hold.confirmed && caps.iter().any(|(r, _)| r == id));
            if !hold.confirmed {
                for (rule, split) in caps {
                    match e.streaks.get_mut(rule) {
                        Some((s, n)) if s == split => *n = n.saturating_add(1),
                        _ => {
                            e.streaks.insert(rule.to_string(), (split.to_string(), 1));
                        }
                    }
                }
            }
            inner.drop_if_empty(&key);
        }
        for c in &hold.matched {
            let Some(window) = c.spec.window else {
                continue;
            };
            let row = c.spec.scope.row();
            let Some(row) = hold.keys.iter().find(|k| k.row == row) else {
                continue;
            };
            let key = EntryKey::new(row, &c.split);
            let e = inner.entry(&key, &hold.user, now);
            e.last_used = now;
            e.prune(&c.rule, window, now);
            let events = e.windows.entry(c.rule.clone()).or_default();
            match events.back_mut() {
                Some(last) if now.duration_since(last.first) < coalescing(&c.spec) => {
                    last.last = now;
                    last.weight = last.weight.saturating_add(c.weight);
                }
                _ => events.push_back(Event {
                    first: now,
                    last: now,
                    weight: c.weight,
                }),
            }
            // Once the newer events refuse every call, the oldest no
            // longer decides anything.
            let mut total = events.iter().fold(0u64, |a, e| a.saturating_add(e.weight));
            while events.len() > 1 {
                let oldest = events.front().map_or(0, |e| e.weight);
                if !newer_decide(total.saturating_sub(oldest), &c.spec) {
                    break;
                }
                total = total.saturating_sub(oldest);
                events.pop_front();
            }
            inner.drop_if_empty(&key);
        }
        Ok(())
    }

    fn release(&self, _id: HoldId, hold: &Hold) -> Result<(), StateError> {
        let mut inner = self.lock()?;
        unhold(&mut inner, hold, true);
        Ok(())
    }

    fn use_once(&self, mark: &str, ttl: Duration) -> Result<bool, StateError> {
        let now = self.clock.now();
        let mut inner = self.lock()?;
        if inner.marks.get(mark).is_some_and(|exp| *exp > now) {
            return Ok(false);
        }
        if inner.marks.len() >= MAX_MARKS {
            inner.marks.retain(|_, exp| *exp > now);
            if inner.marks.len() >= MAX_MARKS {
                return Err(StateError::Store(format!(
                    "it keeps at most {MAX_MARKS} single-use marks in memory"
                )));
            }
        }
        inner.marks.insert(mark.to_string(), now + ttl);
        Ok(true)
    }

    fn add_session_labels(
        &self,
        session: &str,
        labels: &[(String, Duration)],
    ) -> Result<(), StateError> {
        let now = self.clock.now();
        let mut inner = self.lock()?;
        if !inner.labels.contains_key(session) && inner.labels.len() >= MAX_LABELLED_SESSIONS {
            inner.labels.retain(|_, l| {
                l.retain(|_, exp| *exp > now);
                !l.is_empty()
            });
            if inner.labels.len() >= MAX_LABELLED_SESSIONS {
                return Err(StateError::Store(format!(
                    "it keeps the labels of at most {MAX_LABELLED_SESSIONS} sessions in memory"
                )));
            }
        }
        let on = inner.labels.entry(session.to_string()).or_default();
        for (name, ttl) in labels {
            let until = now + *ttl;
            let exp = on.entry(name.clone()).or_insert(until);
            if *exp < until {
                *exp = until;
            }
        }
        Ok(())
    }

    fn session_labels(&self, session: &str, names: &[String]) -> Result<Vec<String>, StateError> {
        let now = self.clock.now();
        let inner = self.lock()?;
        let Some(on) = inner.labels.get(session) else {
            return Ok(Vec::new());
        };
        Ok(names
            .iter()
            .filter(|n| on.get(*n).is_some_and(|exp| *exp > now))
            .cloned()
            .collect())
    }

    fn check_pin(
        &self,
        server: &str,
        tool: &str,
        digest: &str,
        definition: &str,
    ) -> Result<crate::pins::PinCheck, StateError> {
        use crate::pins::{PendingDefinition, PinCheck, ToolPin};
        let mut inner = self.lock()?;
        let key = (server.to_string(), tool.to_string());
        if !inner.pins.contains_key(&key) && inner.pins.len() >= MAX_MARKS {
            return Err(StateError::Store(format!(
                "it keeps at most {MAX_MARKS} tool pins in memory"
            )));
        }
        match inner.pins.get_mut(&key) {
            None => {
                inner.pins.insert(
                    key,
                    ToolPin {
                        server: server.to_string(),
                        tool: tool.to_string(),
                        digest: digest.to_string(),
                        definition: definition.to_string(),
                        pending: None,
                    },
                );
                Ok(PinCheck::New)
            }
            Some(pin) if pin.digest == digest => Ok(PinCheck::Same),
            Some(pin) => {
                pin.pending = Some(PendingDefinition {
                    digest: digest.to_string(),
                    definition: definition.to_string(),
                });
                Ok(PinCheck::Changed {
                    pinned: pin.digest.clone(),
                })
            }
        }
    }

    fn pins(&self) -> Result<Vec<crate::pins::ToolPin>, StateError> {
        Ok(self.lock()?.pins.values().cloned().collect())
    }

    fn approve_pin(&self, server: &str, tool: &str) -> Result<bool, StateError> {
        let mut inner = self.lock()?;
        let Some(pin) = inner.pins.get_mut(&(server.to_string(), tool.to_string())) else {
            return Ok(false);
        };
        let Some(p) = pin.pending.take() else {
            return Ok(false);
        };
        pin.digest = p.digest;
        pin.definition = p.definition;
        Ok(true)
    }

    fn put_grant(
        &self,
        key: &str,
        id: &str,
        ttl: Duration,
        uses: Option<u64>,
    ) -> Result<(), StateError> {
        let now = self.clock.now();
        let mut inner = self.lock()?;
        if inner.grants.len() >= MAX_MARKS && !inner.grants.contains_key(key) {
            inner.grants.retain(|_, (_, exp, _)| *exp > now);
            if inner.grants.len() >= MAX_MARKS {
                return Err(StateError::Store(format!(
                    "it keeps at most {MAX_MARKS} grants in memory"
                )));
            }
        }
        inner
            .grants
            .insert(key.to_string(), (id.to_string(), now + ttl, uses));
        Ok(())
    }

    fn put_approval(&self, id: &str, record: &str, ttl: Duration) -> Result<(), StateError> {
        let now = self.clock.now();
        let mut inner = self.lock()?;
        if inner.approvals.len() >= MAX_MARKS {
            inner.approvals.retain(|_, (_, _, exp)| *exp > now);
            if inner.approvals.len() >= MAX_MARKS {
                return Err(StateError::Store(format!(
                    "it keeps at most {MAX_MARKS} approvals in memory"
                )));
            }
        }
        inner
            .approvals
            .insert(id.to_string(), (record.to_string(), None, now + ttl));
        Ok(())
    }

    fn get_approval(&self, id: &str) -> Result<Option<(String, Option<String>)>, StateError> {
        let now = self.clock.now();
        let inner = self.lock()?;
        Ok(inner
            .approvals
            .get(id)
            .filter(|(_, _, exp)| *exp > now)
            .map(|(r, d, _)| (r.clone(), d.clone())))
    }

    fn decide_approval(&self, id: &str, decision: &str) -> Result<bool, StateError> {
        let now = self.clock.now();
        let mut inner = self.lock()?;
        match inner.approvals.get_mut(id) {
            Some((_, d @ None, exp)) if *exp > now => {
                *d = Some(decision.to_string());
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    fn use_grant(&self, key: &str) -> Result<Option<String>, StateError> {
        let now = self.clock.now();
        let mut inner = self.lock()?;
        let Some((id, exp, uses)) = inner.grants.get_mut(key) else {
            return Ok(None);
        };
        if *exp <= now || *uses == Some(0) {
            inner.grants.remove(key);
            return Ok(None);
        }
        let id = id.clone();
        if let Some(n) = uses {
            *n -= 1;
            if *n == 0 {
                inner.grants.remove(key);
            }
        }
        Ok(Some(id))
    }

    fn end_streaks(&self, keys: &[ScopeKey], _wait: bool) -> Result<(), StateError> {
        let now = self.clock.now();
        let mut inner = self.lock()?;
        for row in keys {
            let key = EntryKey::new(row, "");
            if let Some(e) = inner.entries.get_mut(&key) {
                e.streaks.clear();
                e.last_used = now;
                inner.drop_if_empty(&key);
            }
        }
        Ok(())
    }
}

fn unhold(inner: &mut Inner, hold: &Hold, drop_empty: bool) {
    for s in hold.slots() {
        let key = EntryKey::new(s.key, s.split);
        if let Some(e) = inner.entries.get_mut(&key)
            && let Some(n) = e.held.get_mut(s.rule)
        {
            *n = n.saturating_sub(s.weight);
            if *n == 0 {
                e.held.remove(s.rule);
            }
        }
        if drop_empty {
            inner.drop_if_empty(&key);
            if s.spec.window.is_none() {
                inner.drop_if_empty(&EntryKey::new(s.key, ""));
            }
        }
    }
}

#[cfg(test)]
mod tests;
