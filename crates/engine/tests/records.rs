//! Records created through warden and `created by agent`, through the
//! engine's public API: a creating call's result stores the new record's
//! id, an agent may then change that record and no other, the record
//! survives a policy swap and (in a state file) a new engine, a store that
//! cannot answer denies, and `verified ...` reads the identity's flags.
//! Records are kept per kind (a note and a sample may share an id), and a
//! record already stored keeps its first creator (finding 4 of issue 10).

use serde_json::{Value, json};
use std::collections::HashSet;
use std::sync::Arc;
use warden_engine::state::ManualClock;
use warden_engine::{
    CallContext, Engine, EngineOptions, Identity, NewRecord, Outcome, PolicyBundle, Provenance,
    RecordBackend, RecordError, RecordStore, Retry, Verified,
};
use warden_lang::{Sources, compile_policy_set};

const POLICY: &str = r#"default allow
records sample {
  server "genomics"
  created by tool "create_sample" at "/sample/id"
}
records note {
  server "genomics"
  created by tool "create_note" at "/note/id"
}
deny agents-update-only-their-samples {
  server "genomics"
  tool "update_sample"
  when via agent and not args.sample_id created by agent as sample
  reason "sample {args.sample_id} was not created by an agent"
}
deny unverified-users-never-export {
  tool "export"
  when not verified user
}
"#;

fn bundle(text: &str, version: &str) -> PolicyBundle {
    let mut s = Sources::new();
    s.add("t.policy", text);
    PolicyBundle::new(
        compile_policy_set(&s).expect("compiles").policy_set,
        version.into(),
    )
}

fn engine(records: RecordBackend) -> Engine {
    Engine::new(
        bundle(POLICY, "v1"),
        EngineOptions {
            clock: Arc::new(ManualClock::default()),
            records,
            ..EngineOptions::default()
        },
    )
}

fn call(tool: &str, args: Value, via_agent: bool) -> CallContext {
    CallContext {
        identity: Identity {
            user: "alice".into(),
            agent: Some("claude-code".into()),
            ..Identity::default()
        },
        session: "s1".into(),
        provenance: Provenance {
            via_agent,
            via_server: Some("genomics".into()),
        },
        server: "genomics".into(),
        tool: tool.into(),
        arguments: args,
        ..CallContext::default()
    }
}

/// Creates a sample through `e` as the demo server answers, returning its id.
fn create(e: &Engine, id: &str, via_agent: bool) -> Vec<String> {
    let c = call(
        "create_sample",
        json!({"name": "n", "project": "p"}),
        via_agent,
    );
    let d = e.decide(&c);
    assert!(d.is_allow());
    let result = json!({
        "content": [{"type": "text", "text": "{}"}],
        "structuredContent": {"sample": {"id": id, "name": "n"}}
    });
    e.record_created(&c, &d, &result).expect("stored")
}

fn update(e: &Engine, id: Value) -> Outcome {
    e.decide(&call("update_sample", json!({"sample_id": id}), true))
        .outcome
}

fn denied_by_rule(o: &Outcome) -> bool {
    matches!(o, Outcome::Deny(d) if d.rules.iter().any(|h| h.rule == "agents-update-only-their-samples"))
}

#[test]
fn an_agent_updates_only_the_samples_an_agent_created() {
    let e = engine(RecordBackend::Memory);
    assert_eq!(create(&e, "S-0004", true), vec!["S-0004".to_string()]);
    assert!(matches!(update(&e, json!("S-0004")), Outcome::Allow { .. }));

    let seed = update(&e, json!("S-0001"));
    assert!(denied_by_rule(&seed), "{seed:?}");
    let Outcome::Deny(d) = seed else {
        unreachable!()
    };
    assert!(
        d.reason.contains("sample S-0001 was not created"),
        "{}",
        d.reason
    );
    assert_eq!(d.retry, Retry::Never);

    // A missing or non-id argument is not an agent-created record.
    let missing = e.decide(&call("update_sample", json!({}), true)).outcome;
    assert!(denied_by_rule(&missing), "{missing:?}");
    assert!(denied_by_rule(&update(&e, json!({"id": "S-0004"}))));

    // A sample created on the human path is not agent-created; people are
    // not restricted by the rule.
    create(&e, "S-0005", false);
    assert!(denied_by_rule(&update(&e, json!("S-0005"))));
    let person = e.decide(&call(
        "update_sample",
        json!({"sample_id": "S-0001"}),
        false,
    ));
    assert!(person.is_allow());
}

#[test]
fn numeric_ids_match_their_json_text() {
    let e = engine(RecordBackend::Memory);
    let c = call("create_sample", json!({}), true);
    let d = e.decide(&c);
    // A result without structuredContent whose only text is JSON.
    let result = json!({"content": [{"type": "text", "text": "{\"sample\": {\"id\": 42}}"}]});
    assert_eq!(e.record_created(&c, &d, &result).unwrap(), vec!["42"]);
    assert!(matches!(update(&e, json!(42)), Outcome::Allow { .. }));
    assert!(matches!(update(&e, json!("42")), Outcome::Allow { .. }));
}

#[test]
fn nothing_is_stored_for_errors_denials_and_undeclared_tools() {
    let e = engine(RecordBackend::Memory);
    let c = call("create_sample", json!({}), true);
    let d = e.decide(&c);
    let failed = json!({"isError": true, "structuredContent": {"sample": {"id": "S-9"}}});
    assert!(e.record_created(&c, &d, &failed).unwrap().is_empty());
    let other = call("get_sample", json!({}), true);
    let d2 = e.decide(&other);
    let ok = json!({"structuredContent": {"sample": {"id": "S-9"}}});
    assert!(e.record_created(&other, &d2, &ok).unwrap().is_empty());
    assert!(denied_by_rule(&update(&e, json!("S-9"))));

    // A declared tool whose result has no id there is an error to log.
    let err = e
        .record_created(&c, &d, &json!({"structuredContent": {"other": 1}}))
        .unwrap_err();
    assert!(matches!(err, RecordError::NoId { .. }), "{err}");
}

#[test]
fn records_survive_a_policy_swap_and_a_new_engine_on_the_state_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let e = engine(RecordBackend::Sqlite(path.clone()));
    create(&e, "S-0004", true);
    e.swap_policies(bundle(&format!("{POLICY}\n# v2\n"), "v2"));
    assert!(matches!(update(&e, json!("S-0004")), Outcome::Allow { .. }));
    drop(e);

    let again = engine(RecordBackend::Sqlite(path));
    assert!(matches!(
        update(&again, json!("S-0004")),
        Outcome::Allow { .. }
    ));
    assert!(denied_by_rule(&update(&again, json!("S-0001"))));
}

/// A store whose every lookup and insert fails.
#[derive(Debug)]
struct Broken;

impl RecordStore for Broken {
    fn agent_created(
        &self,
        _: &str,
        _: &str,
        _: &[String],
    ) -> Result<HashSet<String>, RecordError> {
        Err(RecordError::Store("disk I/O error".into()))
    }
    fn insert(&self, _: &NewRecord) -> Result<bool, RecordError> {
        Err(RecordError::Store("disk I/O error".into()))
    }
}

#[test]
fn a_record_store_that_cannot_answer_denies() {
    let e = engine(RecordBackend::Store(Arc::new(Broken)));
    let o = update(&e, json!("S-0004"));
    let Outcome::Deny(d) = o else {
        panic!("not denied: {o:?}")
    };
    assert!(
        d.reason
            .contains("record store unavailable: disk I/O error"),
        "{}",
        d.reason
    );
    assert_eq!(d.retry, Retry::Never);
    // Calls no `created by agent` rule reads are decided as usual.
    assert!(e.decide(&call("get_sample", json!({}), true)).is_allow());
    // A failed insert is reported, never a panic.
    let c = call("create_sample", json!({}), true);
    let d = e.decide(&c);
    let ok = json!({"structuredContent": {"sample": {"id": "S-9"}}});
    assert!(e.record_created(&c, &d, &ok).is_err());

    // A state file that cannot be opened is a store that cannot answer.
    let dir = tempfile::tempdir().unwrap();
    let e = engine(RecordBackend::Sqlite(dir.path().to_path_buf()));
    let o = update(&e, json!("S-0004"));
    assert!(
        matches!(&o, Outcome::Deny(d) if d.reason.contains("record store unavailable")),
        "{o:?}"
    );
}

#[test]
fn verified_reads_the_identity_flags() {
    let e = engine(RecordBackend::Memory);
    let mut c = call("export", json!({}), true);
    assert!(!e.decide(&c).is_allow(), "a declared user is not verified");
    c.identity.verified = Verified {
        user: true,
        ..Verified::default()
    };
    assert!(e.decide(&c).is_allow());
}

/// Creates a note through `e` as a notes tool would answer.
fn create_note(e: &Engine, id: Value) -> Vec<String> {
    let c = call("create_note", json!({"text": "t"}), true);
    let d = e.decide(&c);
    assert!(d.is_allow());
    let result = json!({"structuredContent": {"note": {"id": id}}});
    e.record_created(&c, &d, &result).expect("stored")
}

fn each_backend(test: impl Fn(Engine)) {
    test(engine(RecordBackend::Memory));
    let dir = tempfile::tempdir().unwrap();
    test(engine(RecordBackend::Sqlite(dir.path().join("state.db"))));
}

#[test]
fn finding_04_a_note_an_agent_created_does_not_make_the_sample_with_its_id_updatable() {
    each_backend(|e| {
        assert_eq!(create_note(&e, json!(1)), vec!["1".to_string()]);
        let o = update(&e, json!(1));
        assert!(denied_by_rule(&o), "note 1 made sample 1 updatable: {o:?}");
        assert!(denied_by_rule(&update(&e, json!("1"))));
        // The sample kind still works on its own ids.
        create(&e, "1", true);
        assert!(matches!(update(&e, json!(1)), Outcome::Allow { .. }));
    });
}

#[test]
fn finding_04_a_get_or_create_answering_an_existing_id_keeps_its_first_creator() {
    each_backend(|e| {
        // A person creates S-0005 through warden (not on the agent path).
        assert_eq!(create(&e, "S-0005", false), vec!["S-0005".to_string()]);
        // The agent's get-or-create answers with the same id: nothing new
        // is stored, and the sample stays the person's.
        assert!(create(&e, "S-0005", true).is_empty());
        let o = update(&e, json!("S-0005"));
        assert!(denied_by_rule(&o), "re-marked as agent-created: {o:?}");
        // And an agent's own sample stays the agent's when a person's call
        // later answers with its id.
        create(&e, "S-0006", true);
        assert!(create(&e, "S-0006", false).is_empty());
        assert!(matches!(update(&e, json!("S-0006")), Outcome::Allow { .. }));
    });
}

#[test]
fn finding_04_two_engines_on_one_state_file_keep_the_first_creation() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let people = engine(RecordBackend::Sqlite(path.clone()));
    let agents = engine(RecordBackend::Sqlite(path));
    create(&people, "S-0007", false);
    assert!(create(&agents, "S-0007", true).is_empty());
    assert!(denied_by_rule(&update(&agents, json!("S-0007"))));
    assert!(denied_by_rule(&update(&people, json!("S-0007"))));
}

#[test]
fn a_star_pointer_records_every_id_a_call_created() {
    let policy = r#"default allow
records entity {
  server "memory"
  created by tool "create_entities" at "/entities/*/name"
}
deny agents-delete-only-their-entities {
  server "memory"
  tool "delete_entities"
  when via agent and not args.name created by agent
}
"#;
    let e = Engine::new(bundle(policy, "v1"), EngineOptions::default());
    let on_memory = |tool: &str, args: Value| CallContext {
        server: "memory".into(),
        provenance: Provenance {
            via_agent: true,
            via_server: Some("memory".into()),
        },
        ..call(tool, args, true)
    };
    let c = on_memory(
        "create_entities",
        json!({"entities": [{"name": "A"}, {"name": "B"}]}),
    );
    let d = e.decide(&c);
    let result = json!({"structuredContent": {"entities": [
        {"name": "A", "entityType": "gene"},
        {"name": "B", "entityType": "gene"},
    ]}});
    assert_eq!(e.record_created(&c, &d, &result).unwrap(), ["A", "B"]);
    for name in ["A", "B"] {
        assert!(
            e.decide(&on_memory("delete_entities", json!({ "name": name })))
                .is_allow()
        );
    }
    let other = e.decide(&on_memory("delete_entities", json!({"name": "C"})));
    assert!(!other.is_allow());
    // A second creation of A (a get-or-create) stores nothing new.
    assert!(e.record_created(&c, &d, &result).unwrap().is_empty());
    // No element with an id: an error, and nothing is stored.
    let none = json!({"structuredContent": {"entities": [{"entityType": "gene"}]}});
    assert!(matches!(
        e.record_created(&c, &d, &none),
        Err(RecordError::NoId { .. })
    ));
}
