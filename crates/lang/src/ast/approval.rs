//! Who approves a `require-confirm` rule's call and what one approval lets
//! through: `by group "lab-leads"` / `by user "..."` and `grant once`,
//! `grant for 30m`, `grant for session`, `grant for 5 calls`, each
//! optionally `within args.sample_id, ...`.

use super::{ArgPath, Duration, Spanned};
use crate::source::Span;

/// `by group "lab-leads"` or `by user "lead@example.org"`: someone other
/// than the caller approves (four eyes). Without it, the caller confirms.
#[derive(Debug, Clone, PartialEq)]
pub struct Approver {
    pub kind: ApproverKind,
    pub name: Spanned<String>,
    pub span: Span,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ApproverKind {
    /// A member of the group.
    Group,
    /// That user.
    User,
}

impl ApproverKind {
    pub fn keyword(self) -> &'static str {
        match self {
            ApproverKind::Group => "group",
            ApproverKind::User => "user",
        }
    }
}

/// `grant for 30m within args.sample_id`: how long, or for how many calls,
/// one approval holds, and which arguments a later call must share with
/// the approved one (without `within`: all of them, exactly).
#[derive(Debug, Clone, PartialEq)]
pub struct Grant {
    pub scope: Spanned<GrantScope>,
    pub within: Vec<ArgPath>,
    pub span: Span,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantScope {
    /// The approved call only (the default).
    Once,
    /// Calls in the window after the approval.
    For(Duration),
    /// Calls in the same session.
    Session,
    /// This many calls, the approved one included.
    Calls(u64),
}

impl GrantScope {
    /// As the formatter and messages write it (`once`, `for 30m`, ...).
    pub fn text(self) -> String {
        match self {
            GrantScope::Once => "once".to_string(),
            GrantScope::For(d) => format!("for {d}"),
            GrantScope::Session => "for session".to_string(),
            GrantScope::Calls(1) => "for 1 call".to_string(),
            GrantScope::Calls(n) => format!("for {n} calls"),
        }
    }
}
