//! `warden-engine`: the evaluator. It knows policies, identities and
//! state, and nothing of MCP transports. A transport builds a
//! [`CallContext`], asks [`Engine::decide`] (which reserves the call's
//! slots of caps and rates), forwards only on Allow, then calls
//! [`Engine::record_forwarded`] to commit them; a decision dropped without
//! that releases them.
//!
//! Fail closed: every error while deciding is a Deny with a reason.

pub mod args;
pub mod call;
mod cedar_request;
pub mod clock_context;
pub mod decided;
pub mod elements;
pub mod engine;
pub mod gate;
pub mod index;
pub mod log;
pub mod memo;
pub mod memory;
pub mod message;
pub mod pins;
pub mod postgres_records;
pub mod records;
pub mod redis_state;
pub mod reload;
pub mod remote;
pub mod replay;
pub mod report;
pub mod sqlite;
pub mod sqlite_limits;
pub mod state;
pub mod state_location;
pub mod store;

pub use call::{CallContext, Identity, Provenance, ToolAnnotations, Verified};
pub use engine::{
    Confirmation, Decided, Denial, Engine, EngineOptions, ForwardedWrites, Outcome, Retry, RuleHit,
    ShadowFinding,
};
pub use index::PolicyBundle;
pub use log::{DecisionLog, LogError, ToolChangedLine, UpstreamOutcome};
pub use postgres_records::{PostgresOptions, PostgresRecords};
pub use records::{MemoryRecords, NewRecord, RecordBackend, RecordError, RecordStore};
pub use redis_state::{RedisOptions, RedisState, RedisTime};
pub use reload::{
    DEFAULT_DEBOUNCE, OnReload, PolicyReloader, ReloadEvent, WatchError, WatchHandle,
};
pub use sqlite::SqliteState;
pub use state::{StateBackend, StateError, StateStore};
pub use state_location::{StateLocation, StateLocationError};
pub use store::{LoadError, PolicyStatus, load_bundle};
