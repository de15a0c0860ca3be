//! Records created through warden: which record ids (per server and
//! record kind) a call created, so that `args.x created by agent as KIND`
//! can tell records an agent made from the others. Owns the [`RecordStore`] trait, its in-memory
//! implementation ([`MemoryRecords`]), the [`RecordBackend`] choice, and the
//! extraction of a new record's id from a tool result.
//!
//! The SQLite implementation lives with the cap and rate state in
//! [`crate::sqlite::SqliteState`] (same file, its own table), so that
//! `warden proxy --state FILE` keeps both across restarts.
//!
//! Fail closed: a store that cannot answer makes every decision that needs
//! it a Deny ("record store unavailable"); a record that could not be
//! stored is never agent-created, so rules that let agents change only
//! their own records keep denying it.
//!
//! First writer wins: a record already stored keeps its creator. warden
//! knows only the creations it relayed; an id a person created outside
//! warden is unknown here, so if an agent's get-or-create then returns
//! it, it is stored as the agent's (see docs/identity.md).

use crate::state::Clock;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// At most this many records are kept in memory; past it new ones are
/// refused (and so never count as agent-created), keeping memory bounded.
pub const MAX_MEMORY_RECORDS: usize = 1_000_000;

/// A record a forwarded call created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRecord {
    pub server: String,
    pub id: String,
    /// The record kind of the `records` declaration, e.g. `sample`.
    pub kind: String,
    /// Whether the creating call came through the agent path.
    pub via_agent: bool,
    pub agent: Option<String>,
    pub user: String,
    pub session: String,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
    /// The id of the decision that let the creating call through (as in
    /// the decision log), so a record leads back to its rule and reason.
    pub decision: String,
}

/// Why records could not be looked up or stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, miette::Diagnostic)]
pub enum RecordError {
    /// The store could not be opened.
    #[error("cannot open the record store `{path}`: {message}")]
    #[diagnostic(
        code(warden::records::open),
        help("give a file that is a warden state database (SQLite) or does not exist yet")
    )]
    Open { path: PathBuf, message: String },
    /// Reading or writing the store failed.
    #[error("{0}")]
    #[diagnostic(
        code(warden::records::io),
        help(
            "check the state file, its disk and its permissions; calls that ask `created by agent` are denied meanwhile"
        )
    )]
    Store(String),
    /// A record server (PostgreSQL) could not be reached or answered with
    /// an error. `store` is its address without credentials.
    #[error("the record store `{store}` cannot be used: {message}")]
    #[diagnostic(
        code(warden::records::remote),
        help(
            "check that the database is up and reachable from warden; warden reconnects with backoff, and calls that ask `created by agent` are denied meanwhile"
        )
    )]
    Remote { store: String, message: String },
    /// The result of a creating tool holds no usable id where the policy
    /// says it is.
    #[error("`{tool}` created a record, but its result has no id at `{pointer}`: {why}")]
    #[diagnostic(
        code(warden::records::no_id),
        help(
            "check the `created by tool ... at \"POINTER\"` line of the records declaration against what the tool returns"
        )
    )]
    NoId {
        tool: String,
        pointer: String,
        why: String,
    },
}

/// Where created records are kept, keyed by (server, kind, id): ids are
/// unique only within a kind, so an agent-created note 1 says nothing
/// about sample 1.
pub trait RecordStore: Send + Sync + std::fmt::Debug {
    /// Which of `ids` are records of `kind` on `server` that a call on the
    /// agent path created.
    fn agent_created(
        &self,
        server: &str,
        kind: &str,
        ids: &[String],
    ) -> Result<HashSet<String>, RecordError>;

    /// Stores a created record unless one with the same server, kind and
    /// id is stored already: the first creation wins, atomically. A tool
    /// that answers with an existing id (get-or-create) did not create it,
    /// and must not make a person's record the agent's. Returns whether
    /// the record was stored (`false`: it was known already).
    fn insert(&self, record: &NewRecord) -> Result<bool, RecordError>;

    /// Whether a store on another machine (PostgreSQL) answers now, for
    /// `/readyz`. `None` for a store in this process or on its disk.
    fn health(&self) -> Option<crate::state::StoreHealth> {
        None
    }
}

/// Which [`RecordStore`] an engine uses (`EngineOptions::records`).
#[derive(Debug, Clone, Default)]
pub enum RecordBackend {
    /// In memory: lost when the process ends.
    #[default]
    Memory,
    /// A warden state file (SQLite), created if missing. If it cannot be
    /// opened, every decision that needs it is denied.
    Sqlite(PathBuf),
    /// A store opened by the caller (`warden proxy --state` passes the
    /// [`crate::SqliteState`] that also holds caps and rates).
    Store(Arc<dyn RecordStore>),
}

impl RecordBackend {
    /// Opens the store. Never fails: a store that cannot be opened becomes
    /// one that refuses every lookup and insert, so the engine fails closed.
    pub fn open(&self, clock: Arc<dyn Clock>) -> Arc<dyn RecordStore> {
        match self {
            RecordBackend::Memory => Arc::new(MemoryRecords::default()),
            RecordBackend::Sqlite(path) => {
                match crate::sqlite::SqliteState::open(path, Default::default(), clock) {
                    Ok(s) => Arc::new(s),
                    Err(e) => Arc::new(Unavailable(RecordError::Open {
                        path: path.clone(),
                        message: e.to_string(),
                    })),
                }
            }
            RecordBackend::Store(s) => Arc::clone(s),
        }
    }
}

/// A store that could not be opened.
#[derive(Debug)]
struct Unavailable(RecordError);

impl RecordStore for Unavailable {
    fn agent_created(
        &self,
        _: &str,
        _: &str,
        _: &[String],
    ) -> Result<HashSet<String>, RecordError> {
        Err(self.0.clone())
    }
    fn insert(&self, _: &NewRecord) -> Result<bool, RecordError> {
        Err(self.0.clone())
    }
}

/// (server, kind, id): what identifies a record.
type RecordKey = (String, String, String);

/// Records in memory, keyed by (server, kind, id).
#[derive(Debug, Default)]
pub struct MemoryRecords {
    records: Mutex<HashMap<RecordKey, NewRecord>>,
}

impl RecordStore for MemoryRecords {
    fn agent_created(
        &self,
        server: &str,
        kind: &str,
        ids: &[String],
    ) -> Result<HashSet<String>, RecordError> {
        let records = self
            .records
            .lock()
            .map_err(|_| RecordError::Store("the record lock is poisoned".into()))?;
        Ok(ids
            .iter()
            .filter(|id| {
                records
                    .get(&(server.to_string(), kind.to_string(), (*id).clone()))
                    .is_some_and(|r| r.via_agent)
            })
            .cloned()
            .collect())
    }

    fn insert(&self, record: &NewRecord) -> Result<bool, RecordError> {
        let mut records = self
            .records
            .lock()
            .map_err(|_| RecordError::Store("the record lock is poisoned".into()))?;
        let key = (
            record.server.clone(),
            record.kind.clone(),
            record.id.clone(),
        );
        if records.contains_key(&key) {
            return Ok(false);
        }
        if records.len() >= MAX_MEMORY_RECORDS {
            return Err(RecordError::Store(format!(
                "the in-memory record store is full ({MAX_MEMORY_RECORDS} records); use a state file"
            )));
        }
        records.insert(key, record.clone());
        Ok(true)
    }
}

/// A JSON value as a record id: a string as is, a number as its JSON
/// text; anything else is not an id.
pub fn id_of(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The id at `pointer` in a `tools/call` result: in `structuredContent`,
/// or, when that is missing, in the JSON of the result's only text content
/// (servers written before structured content return their data that way).
pub fn extract_id(result: &Value, pointer: &str) -> Result<String, String> {
    match structured_content(result)?.pointer(pointer) {
        None => Err("nothing is there".to_string()),
        Some(v) => {
            id_of(v).ok_or_else(|| "the value there is not a string or a number".to_string())
        }
    }
}

/// Most ids one result records; the rest of a longer list are never
/// agent-created (fail closed), and memory stays bounded.
pub const MAX_IDS_PER_RESULT: usize = 10_000;

/// The ids a result holds at `pointer`, where a segment `*` stands for
/// every element of an array (or every value of an object): a tool that
/// creates several records at once (`/entities/*/name`). Without `*`, the
/// one id [`extract_id`] finds. Elements where the rest of the pointer
/// finds no id are skipped; none found at all is an error. At most
/// [`MAX_IDS_PER_RESULT`], in the result's order, without repeats.
pub fn extract_ids(result: &Value, pointer: &str) -> Result<Vec<String>, String> {
    if !pointer.split('/').any(|seg| seg == "*") {
        return extract_id(result, pointer).map(|id| vec![id]);
    }
    let structured = structured_content(result)?;
    // Breadth-first over the segments, without recursion.
    let mut at: Vec<&Value> = vec![&structured];
    for seg in pointer.split('/').skip(1) {
        let mut next = Vec::new();
        for v in at {
            if seg == "*" {
                match v {
                    Value::Array(items) => next.extend(items.iter()),
                    Value::Object(map) => next.extend(map.values()),
                    _ => {}
                }
            } else {
                let key = seg.replace("~1", "/").replace("~0", "~");
                let child = match v {
                    Value::Object(map) => map.get(&key),
                    Value::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get(i)),
                    _ => None,
                };
                next.extend(child);
            }
            if next.len() > MAX_IDS_PER_RESULT {
                next.truncate(MAX_IDS_PER_RESULT);
                break;
            }
        }
        at = next;
    }
    let mut seen = HashSet::new();
    let ids: Vec<String> = at
        .into_iter()
        .filter_map(id_of)
        .filter(|id| seen.insert(id.clone()))
        .collect();
    if ids.is_empty() {
        return Err("no string or number id is there".to_string());
    }
    Ok(ids)
}

/// A result's `structuredContent`, or its lone text content read as JSON.
fn structured_content(result: &Value) -> Result<Value, String> {
    Ok(match result.get("structuredContent") {
        Some(v) => v.clone(),
        None => {
            let texts: Vec<&str> = result
                .get("content")
                .and_then(Value::as_array)
                .map(|blocks| {
                    blocks
                        .iter()
                        .filter(|b| b.get("type").and_then(Value::as_str) == Some("text"))
                        .filter_map(|b| b.get("text").and_then(Value::as_str))
                        .collect()
                })
                .unwrap_or_default();
            match texts.as_slice() {
                [one] => serde_json::from_str(one).map_err(|_| {
                    "the result has no structuredContent and its text is not JSON".to_string()
                })?,
                _ => {
                    return Err(
                        "the result has no structuredContent and not exactly one text content"
                            .to_string(),
                    );
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ids_come_from_structured_content_or_a_lone_json_text() {
        let structured = json!({"structuredContent": {"sample": {"id": "S-1"}}, "content": []});
        assert_eq!(extract_id(&structured, "/sample/id").unwrap(), "S-1");
        let text = json!({"content": [{"type": "text", "text": "{\"sample\": {\"id\": 42}}"}]});
        assert_eq!(extract_id(&text, "/sample/id").unwrap(), "42");
        let two =
            json!({"content": [{"type": "text", "text": "{}"}, {"type": "text", "text": "{}"}]});
        assert!(extract_id(&two, "/sample/id").is_err());
        let object = json!({"structuredContent": {"sample": {"id": {"x": 1}}}});
        assert!(extract_id(&object, "/sample/id").is_err());
    }

    #[test]
    fn a_star_segment_takes_every_element() {
        let r = json!({"structuredContent": {"entities": [
            {"name": "A"}, {"name": 7}, {"other": 1}, {"name": {"x": 1}}, {"name": "A"}
        ]}});
        assert_eq!(extract_ids(&r, "/entities/*/name").unwrap(), ["A", "7"]);
        assert_eq!(
            extract_ids(
                &json!({"structuredContent": {"ids": {"a": "x", "b": "y"}}}),
                "/ids/*"
            )
            .unwrap(),
            ["x", "y"]
        );
        assert_eq!(extract_ids(&r, "/entities/0/name").unwrap(), ["A"]);
        assert!(extract_ids(&r, "/entities/*/missing").is_err());
        assert!(
            extract_ids(
                &json!({"structuredContent": {"entities": []}}),
                "/entities/*/name"
            )
            .is_err()
        );
        let many: Vec<Value> = (0..MAX_IDS_PER_RESULT + 5)
            .map(|i| json!({"id": i}))
            .collect();
        let many = json!({"structuredContent": {"e": many}});
        assert_eq!(
            extract_ids(&many, "/e/*/id").unwrap().len(),
            MAX_IDS_PER_RESULT
        );
    }

    #[test]
    fn only_agent_path_records_are_agent_created() {
        let store = MemoryRecords::default();
        let record = |id: &str, via_agent| NewRecord {
            server: "genomics".into(),
            id: id.into(),
            kind: "sample".into(),
            via_agent,
            agent: None,
            user: "alice".into(),
            session: "s".into(),
            created_at: 0,
            decision: String::new(),
        };
        assert!(store.insert(&record("S-1", true)).unwrap());
        assert!(store.insert(&record("S-2", false)).unwrap());
        let found = store
            .agent_created(
                "genomics",
                "sample",
                &["S-1".into(), "S-2".into(), "S-3".into()],
            )
            .unwrap();
        assert_eq!(found, HashSet::from(["S-1".to_string()]));
        assert!(
            store
                .agent_created("other", "sample", &["S-1".into()])
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn finding_04_the_first_creation_wins_and_kinds_do_not_mix() {
        let store = MemoryRecords::default();
        let record = |kind: &str, id: &str, via_agent| NewRecord {
            server: "genomics".into(),
            id: id.into(),
            kind: kind.into(),
            via_agent,
            agent: None,
            user: "alice".into(),
            session: "s".into(),
            created_at: 0,
            decision: String::new(),
        };
        assert!(store.insert(&record("note", "1", true)).unwrap());
        assert!(
            store
                .agent_created("genomics", "sample", &["1".into()])
                .unwrap()
                .is_empty(),
            "note 1 made sample 1 agent-created"
        );
        assert!(store.insert(&record("sample", "5", false)).unwrap());
        // A get-or-create answering with the person's sample 5.
        assert!(!store.insert(&record("sample", "5", true)).unwrap());
        assert!(
            store
                .agent_created("genomics", "sample", &["5".into()])
                .unwrap()
                .is_empty(),
            "a second creation re-marked the person's sample"
        );
    }
}
