//! Which record kind a `created by agent` condition asks about. Owns the
//! one resolution the checker reports on and the compiler emits from, so
//! that the two can never disagree.
//!
//! Record ids are only unique within their kind: note 1 and sample 1 are
//! different records, so `args.sample_id created by agent` must not hold
//! because an agent created note 1. The condition names its kind
//! (`created by agent as sample`), or the kind is inferred when exactly one
//! `records` declaration can cover the rule's servers; with two candidates
//! the condition is ambiguous and rejected (finding 4 of issue 10).

use crate::ast::{PatternList, RecordsClause, RecordsDecl};
use crate::glob::{glob_matches, is_glob};

/// A records declaration as the resolution reads it: its kind and its
/// server patterns (`None`: any server).
#[derive(Debug, Clone, Copy)]
pub(crate) struct KindDecl<'a> {
    pub kind: &'a str,
    pub servers: Option<&'a PatternList>,
}

impl<'a> KindDecl<'a> {
    /// The kind and first `server` clause of a declaration (a second one
    /// is an error the checker reports).
    pub fn of(decl: &'a RecordsDecl) -> Self {
        let servers = decl.clauses.iter().find_map(|c| match c {
            RecordsClause::Server(list) => Some(list),
            RecordsClause::CreatedBy(_) => None,
        });
        KindDecl {
            kind: &decl.name.node,
            servers,
        }
    }
}

/// What a `created by agent` condition's kind resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum KindChoice<'a> {
    /// Named with `as KIND`, declared for (some of) the rule's servers.
    Named(&'a str),
    /// Not named; the only kind declared for the rule's servers.
    Inferred(&'a str),
    /// Not named; these kinds are all declared for the rule's servers.
    Ambiguous(Vec<&'a str>),
    /// Named, but no declaration has that kind.
    Unknown,
    /// Named and declared, but not for any of the rule's servers.
    NotForServers,
    /// Not named, and no declaration covers the rule's servers.
    NoneDeclared,
}

impl<'a> KindChoice<'a> {
    /// The kind the engine looks ids up under, when the condition has one.
    pub fn kind(&self) -> Option<&'a str> {
        match self {
            KindChoice::Named(k) | KindChoice::Inferred(k) => Some(k),
            _ => None,
        }
    }
}

/// Resolves the kind of a condition in a rule on `rule_servers`.
pub(crate) fn resolve<'a>(
    decls: &[KindDecl<'a>],
    rule_servers: Option<&PatternList>,
    named: Option<&str>,
) -> KindChoice<'a> {
    match named {
        Some(name) => match decls.iter().find(|d| d.kind == name) {
            None => KindChoice::Unknown,
            Some(d) if servers_may_overlap(d.servers, rule_servers) => KindChoice::Named(d.kind),
            Some(_) => KindChoice::NotForServers,
        },
        None => {
            let mut kinds: Vec<&'a str> = decls
                .iter()
                .filter(|d| servers_may_overlap(d.servers, rule_servers))
                .map(|d| d.kind)
                .collect();
            kinds.dedup();
            match kinds.as_slice() {
                [] => KindChoice::NoneDeclared,
                [one] => KindChoice::Inferred(one),
                _ => KindChoice::Ambiguous(kinds),
            }
        }
    }
}

/// Whether a records declaration's servers and a rule's servers can name
/// the same server (`None`: any server). Two globs are assumed to overlap.
pub(crate) fn servers_may_overlap(decl: Option<&PatternList>, rule: Option<&PatternList>) -> bool {
    let (Some(decl), Some(rule)) = (decl, rule) else {
        return true;
    };
    decl.patterns.iter().any(|d| {
        rule.patterns
            .iter()
            .any(|r| match (is_glob(&d.node), is_glob(&r.node)) {
                (false, false) => d.node == r.node,
                (true, false) => glob_matches(&d.node, &r.node),
                (false, true) => glob_matches(&r.node, &d.node),
                (true, true) => true,
            })
    })
}
