//! The records agents created, in a real PostgreSQL shared by replicas:
//! one replica's creation is another's `created by agent`, the first
//! creation wins, the table answers the platform's query (what agents
//! created this week, for whom, through which decision), migrations run
//! once when replicas start together and a newer schema is refused, and a
//! database that is down denies only what needs it, naming the store,
//! until warden reconnects.

#[path = "support/postgres_server.rs"]
mod postgres_server;

use postgres_server::PostgresServer;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};
use warden_engine::{
    CallContext, Engine, EngineOptions, Identity, NewRecord, Outcome, PolicyBundle,
    PostgresOptions, PostgresRecords, Provenance, RecordBackend, RecordStore,
};
use warden_lang::{Sources, compile_policy_set};

const POLICY: &str = r#"default allow
records sample {
  server "genomics"
  created by tool "create_sample" at "/sample/id"
}
deny agents-update-only-their-samples {
  server "genomics"
  tool "update_sample"
  when via agent and not args.sample_id created by agent as sample
  reason "sample {args.sample_id} was not created by an agent"
}
"#;

fn store(db: &PostgresServer) -> Arc<PostgresRecords> {
    Arc::new(PostgresRecords::open(&db.url(), PostgresOptions::default()).unwrap())
}

fn replica(db: &PostgresServer) -> Engine {
    let mut s = Sources::new();
    s.add("t.policy", POLICY);
    let bundle = PolicyBundle::new(compile_policy_set(&s).unwrap().policy_set, "v1".into());
    Engine::new(
        bundle,
        EngineOptions {
            records: RecordBackend::Store(store(db)),
            ..EngineOptions::default()
        },
    )
}

fn call(user: &str, tool: &str, args: Value) -> CallContext {
    CallContext {
        identity: Identity {
            user: user.into(),
            agent: Some("claude-code".into()),
            ..Identity::default()
        },
        session: format!("{user}-s"),
        provenance: Provenance {
            via_agent: true,
            via_server: Some("genomics".into()),
        },
        server: "genomics".into(),
        tool: tool.into(),
        arguments: args,
        ..CallContext::default()
    }
}

/// Creates sample `id` through `e`, as the demo server answers; the
/// decision's id.
fn create(e: &Engine, user: &str, id: &str) -> String {
    let c = call(user, "create_sample", json!({}));
    let d = e.decide(&c);
    assert!(d.is_allow());
    e.record_forwarded(&c, &d);
    let stored = e
        .record_created(
            &c,
            &d,
            &json!({"structuredContent": {"sample": {"id": id}}}),
        )
        .unwrap();
    assert_eq!(stored, vec![id.to_string()]);
    d.id.clone()
}

fn update_allowed(e: &Engine, id: &str) -> Outcome {
    e.decide(&call("alice", "update_sample", json!({ "sample_id": id })))
        .outcome
}

#[test]
fn one_replicas_creation_is_anothers_created_by_agent_and_the_ledger_says_by_whom() {
    let db = PostgresServer::start();
    let (a, b) = (replica(&db), replica(&db));
    let decision = create(&a, "alice", "S-1");
    assert!(matches!(update_allowed(&b, "S-1"), Outcome::Allow { .. }));
    let Outcome::Deny(d) = update_allowed(&b, "S-2") else {
        panic!("S-2 was never created by an agent")
    };
    assert!(
        d.reason.contains("S-2 was not created by an agent"),
        "{}",
        d.reason
    );

    // The platform's question, on the documented table.
    let rows = db.query(
        "SELECT record_id, user_name, agent, decision_id FROM warden_records
         WHERE kind = 'sample' AND via_agent AND created_at > now() - interval '7 days'",
    );
    assert_eq!(rows.trim(), format!("S-1|alice|claude-code|{decision}"));
}

#[test]
fn the_first_creation_wins_across_replicas() {
    let db = PostgresServer::start();
    let (a, b) = (store(&db), store(&db));
    let record = |via_agent, user: &str| NewRecord {
        server: "genomics".into(),
        id: "S-9".into(),
        kind: "sample".into(),
        via_agent,
        agent: None,
        user: user.into(),
        session: "s".into(),
        created_at: 1_700_000_000_000,
        decision: "d-1".into(),
    };
    assert!(a.insert(&record(false, "person")).unwrap());
    assert!(!b.insert(&record(true, "agent")).unwrap(), "known already");
    let ids = vec!["S-9".to_string()];
    assert!(
        b.agent_created("genomics", "sample", &ids)
            .unwrap()
            .is_empty()
    );
    // Kinds do not mix: note S-9 is another record.
    assert!(
        b.agent_created("genomics", "note", &ids)
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        db.query("SELECT user_name, extract(epoch FROM created_at)::bigint FROM warden_records")
            .trim(),
        "person|1700000000"
    );
}

#[test]
fn migrations_run_once_when_replicas_start_together_and_a_newer_schema_is_refused() {
    let db = PostgresServer::start();
    let stores: Vec<_> = (0..5).map(|_| store(&db)).collect();
    std::thread::scope(|s| {
        for st in &stores {
            s.spawn(move || st.ping().unwrap());
        }
    });
    assert_eq!(
        db.query(
            "SELECT string_agg(version::text, ',' ORDER BY version) FROM warden_schema_migrations"
        )
        .trim(),
        (1..=warden_engine::postgres_records::MIGRATIONS.len())
            .map(|v| v.to_string())
            .collect::<Vec<_>>()
            .join(",")
    );

    db.query("INSERT INTO warden_schema_migrations (version) VALUES (999)");
    let e = store(&db).ping().unwrap_err().to_string();
    assert!(e.contains("newer than this warden knows"), "{e}");
}

#[test]
fn a_database_that_is_down_denies_what_needs_it_and_is_reconnected() {
    let mut db = PostgresServer::start();
    let e = replica(&db);
    create(&e, "alice", "S-1");
    db.stop();

    let started = Instant::now();
    let Outcome::Deny(d) = update_allowed(&e, "S-1") else {
        panic!("`created by agent` cannot be answered with the database down")
    };
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let name = format!("postgres://127.0.0.1:{}/warden", db.port());
    assert!(
        d.reason.contains("record store unavailable") && d.reason.contains(&name),
        "{}",
        d.reason
    );
    // A call that asks nothing of the store passes.
    assert!(
        e.decide(&call("alice", "list_samples", json!({})))
            .is_allow()
    );

    db.restart();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !matches!(update_allowed(&e, "S-1"), Outcome::Allow { .. }) {
        assert!(Instant::now() < deadline, "not reconnected");
        std::thread::sleep(Duration::from_millis(200));
    }
}
