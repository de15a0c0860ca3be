//! The scopes of a limit: [`Scope`] (one dimension a cap, rate limit or
//! budget counts separately by) and [`ScopeSet`] (the set a limit names).

use std::fmt;

/// One dimension a cap, rate limit or budget counts separately by.
///
/// `session`, `user` and `agent` say *whose* calls are counted together
/// (the *row* a streak is measured in); `model` and `tool` say which of
/// those calls count as the same (a call with another tool or model is
/// another counter, and ends a streak of the one before).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Session,
    User,
    Agent,
    Model,
    Tool,
}

impl Scope {
    /// Every scope, in the canonical order compound scopes print in.
    pub const ALL: [Scope; 5] = [
        Scope::Session,
        Scope::User,
        Scope::Agent,
        Scope::Model,
        Scope::Tool,
    ];

    pub fn keyword(self) -> &'static str {
        match self {
            Scope::Session => "session",
            Scope::User => "user",
            Scope::Agent => "agent",
            Scope::Model => "model",
            Scope::Tool => "tool",
        }
    }

    /// Whether this scope says whose calls are counted together (the
    /// row of a streak) rather than which calls count as the same.
    pub fn is_row(self) -> bool {
        matches!(self, Scope::Session | Scope::User | Scope::Agent)
    }

    /// Whether the value comes from what the client declares (agent and
    /// model names), unless a bearer token verified it.
    pub fn is_client_declared(self) -> bool {
        matches!(self, Scope::Agent | Scope::Model)
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// The scopes of one limit (`per user per tool`): a set, so `per tool per
/// user` is the same limit, always printed in [`Scope::ALL`] order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ScopeSet(u8);

impl ScopeSet {
    pub fn single(scope: Scope) -> ScopeSet {
        ScopeSet(scope.bit())
    }

    pub fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    /// Adds `scope`; false if it was already there.
    pub fn insert(&mut self, scope: Scope) -> bool {
        let had = self.contains(scope);
        self.0 |= scope.bit();
        !had
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The scopes, in canonical order.
    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL
            .into_iter()
            .filter(move |s| self.contains(s.to_owned()))
    }

    /// The part that says whose calls are counted together.
    pub fn row(self) -> ScopeSet {
        self.iter().filter(|s| s.is_row()).collect()
    }

    /// The part that says which calls count as the same.
    pub fn split_by(self) -> ScopeSet {
        self.iter().filter(|s| !s.is_row()).collect()
    }

    /// `user+tool`: the stable text state stores and annotations use.
    pub fn key(self) -> String {
        self.iter()
            .map(Scope::keyword)
            .collect::<Vec<_>>()
            .join("+")
    }

    /// `per user per tool`, as the language writes it.
    pub fn phrase(self) -> String {
        self.iter()
            .map(|s| format!("per {}", s.keyword()))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

impl FromIterator<Scope> for ScopeSet {
    fn from_iter<I: IntoIterator<Item = Scope>>(iter: I) -> Self {
        let mut set = ScopeSet::default();
        for s in iter {
            set.insert(s);
        }
        set
    }
}

impl From<Scope> for ScopeSet {
    fn from(scope: Scope) -> Self {
        ScopeSet::single(scope)
    }
}

impl serde::Serialize for ScopeSet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

impl fmt::Display for ScopeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.key())
    }
}
