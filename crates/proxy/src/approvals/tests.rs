//! The approval book alone: expiry, single use under racing decisions,
//! the caller's own call without bearer auth, and what a full book does.

use super::*;
use warden_engine::{EngineOptions, PolicyBundle, RuleHit};

const POLICY: &str = "default allow\nrequire-confirm runs {\n  tool \"run\"\n}\n";

fn book(ttl: std::time::Duration) -> Arc<Approvals> {
    let mut sources = warden_lang::Sources::new();
    sources.add("t.policy", POLICY);
    let compiled = warden_lang::compile_policy_set(&sources).expect("compiles");
    let engine = Arc::new(Engine::new(
        PolicyBundle::new(compiled.policy_set, "v".into()),
        EngineOptions::default(),
    ));
    let log = Arc::new(DecisionLog::to_writer(std::io::sink()));
    let a =
        Approvals::new("http://127.0.0.1:1".into(), engine, log, None, None).expect("no webhook");
    let mut a = Arc::try_unwrap(a).expect("one owner");
    a.ttl = ttl;
    Arc::new(a)
}

fn call() -> CallContext {
    CallContext {
        identity: warden_engine::Identity {
            user: "ada".into(),
            ..Default::default()
        },
        session: "s".into(),
        provenance: Default::default(),
        server: "genomics".into(),
        tool: "run".into(),
        annotations: Default::default(),
        arguments: serde_json::json!({"n": 1}),
        confirmed: Vec::new(),
    }
}

fn confirmation() -> Confirmation {
    Confirmation {
        rules: vec![RuleHit {
            rule: "runs".into(),
            kind: warden_lang::ast::RuleKind::RequireConfirm,
            message: "run?".into(),
            source: "t.policy:2:17".into(),
        }],
        message: "run?".into(),
        approvers: Vec::new(),
    }
}

/// The secret and CSRF token of approval `o`.
fn secrets(a: &Approvals, o: &Opened) -> (String, String) {
    let secret = o.link.split_once("?s=").expect("a secret").1.to_string();
    let csrf = a.get(&o.id, &secret).expect("found").csrf;
    (secret, csrf)
}

#[test]
fn an_expired_approval_cannot_be_decided() {
    let a = book(std::time::Duration::from_millis(30));
    let o = a.open(&call(), &confirmation(), "d-1").expect("opened");
    let (secret, csrf) = secrets(&a, &o);
    std::thread::sleep(std::time::Duration::from_millis(60));
    assert_eq!(
        a.decide(&o.id, &secret, &csrf, None, true, ""),
        Err(Refusal::Expired)
    );
}

#[test]
fn racing_decisions_decide_once() {
    let a = book(APPROVED_CALL_LIFE);
    let o = a.open(&call(), &confirmation(), "d-1").expect("opened");
    let (secret, csrf) = secrets(&a, &o);
    let barrier = Arc::new(std::sync::Barrier::new(8));
    let outcomes: Vec<Result<String, Refusal>> = (0..8)
        .map(|i| {
            let (a, id, s, c, b) = (
                Arc::clone(&a),
                o.id.clone(),
                secret.clone(),
                csrf.clone(),
                Arc::clone(&barrier),
            );
            std::thread::spawn(move || {
                b.wait();
                a.decide(&id, &s, &c, None, i % 2 == 0, "")
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().expect("no panic"))
        .collect();
    assert_eq!(
        outcomes.iter().filter(|r| r.is_ok()).count(),
        1,
        "{outcomes:?}"
    );
    assert!(
        outcomes
            .iter()
            .filter(|r| r.is_err())
            .all(|r| *r == Err(Refusal::AlreadyDecided)),
        "{outcomes:?}"
    );
}

#[test]
fn a_wrong_secret_or_form_decides_nothing() {
    let a = book(APPROVED_CALL_LIFE);
    let o = a.open(&call(), &confirmation(), "d-1").expect("opened");
    let (secret, csrf) = secrets(&a, &o);
    assert_eq!(
        a.decide(&o.id, "guess", &csrf, None, true, ""),
        Err(Refusal::NotFound)
    );
    assert_eq!(
        a.decide("no-such-id", &secret, &csrf, None, true, ""),
        Err(Refusal::NotFound)
    );
    assert_eq!(
        a.decide(&o.id, &secret, "forged", None, true, ""),
        Err(Refusal::BadForm)
    );
    assert_eq!(
        a.get(&o.id, &secret).expect("found").status,
        Status::Pending
    );
    // Without bearer auth the caller decides their own call by the link.
    let by = a
        .decide(&o.id, &secret, &csrf, None, true, "")
        .expect("approved");
    assert_eq!(by, "ada (the caller, by the link)");
}

#[test]
fn another_persons_approval_needs_bearer_auth() {
    let a = book(APPROVED_CALL_LIFE);
    let mut c = confirmation();
    c.approvers = vec![(
        "runs".into(),
        warden_lang::CompiledApprover::Group("lab-leads".into()),
    )];
    let o = a.open(&call(), &c, "d-1").expect("opened");
    let (secret, csrf) = secrets(&a, &o);
    assert!(matches!(
        a.decide(&o.id, &secret, &csrf, None, true, ""),
        Err(Refusal::NotAllowed(_))
    ));
}

#[test]
fn a_public_url_is_an_origin() {
    assert_eq!(
        crate::check_origin("https://warden.example.com/").as_deref(),
        Ok("https://warden.example.com")
    );
    assert_eq!(
        crate::check_origin("http://127.0.0.1:8080").as_deref(),
        Ok("http://127.0.0.1:8080")
    );
    for bad in [
        "warden.example.com",
        "ftp://warden.example.com",
        "https://warden.example.com/approvals",
        "https://user:pw@warden.example.com",
        "https://warden.example.com/?a=1",
    ] {
        assert!(crate::check_origin(bad).is_err(), "{bad}");
    }
}
