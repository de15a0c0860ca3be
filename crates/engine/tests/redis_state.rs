//! Caps, rates and budgets in a real Redis shared by several engines (one
//! per warden replica): exact when calls race across replicas, a dead
//! replica's hold expires, a commit retried after a lost reply counts
//! once, a server that is down denies only the calls that need it and is
//! reconnected, and a durable server keeps counts across its restart.

#[path = "support/redis_server.rs"]
mod redis_server;

use redis_server::RedisServer;
use serde_json::json;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};
use warden_engine::state::{
    Counted, Hold, LimitSpec, ManualClock, Reserved, ScopeKey, StateLimits,
};
use warden_engine::{
    CallContext, Engine, EngineOptions, Identity, Outcome, PolicyBundle, RedisOptions, RedisState,
    RedisTime, Retry, StateBackend, StateStore,
};
use warden_lang::ast::{Scope, ScopeSet};
use warden_lang::{Sources, compile_policy_set};

const POLICY: &str = "default allow
cap-consecutive runs {
  tool \"run\"
  max 3 per user
}
rate-limit exports {
  tool \"export\"
  max 3 per 1h per user
}
budget spend {
  tool \"spend\"
  sum args.cost
  max 10 per 1h per user
}
";

fn bundle() -> PolicyBundle {
    let mut s = Sources::new();
    s.add("t.policy", POLICY);
    PolicyBundle::new(
        compile_policy_set(&s).expect("compiles").policy_set,
        "v1".into(),
    )
}

/// One replica's store: its own connections to the shared server, timed
/// by `clock` when given (else by the server).
fn store(server: &RedisServer, clock: Option<Arc<ManualClock>>) -> Arc<RedisState> {
    let options = RedisOptions {
        time: match clock {
            Some(c) => RedisTime::Caller(c),
            None => RedisTime::Server,
        },
        ..RedisOptions::default()
    };
    Arc::new(RedisState::open(&server.url(), StateLimits::default(), options).unwrap())
}

fn replica(server: &RedisServer, clock: Option<Arc<ManualClock>>) -> Engine {
    let mut options = EngineOptions::default();
    if let Some(c) = &clock {
        options.clock = c.clone();
    }
    options.state = StateBackend::Store(store(server, clock));
    Engine::new(bundle(), options)
}

fn call_of(user: &str, tool: &str, cost: u64) -> CallContext {
    CallContext {
        identity: Identity {
            user: user.into(),
            agent: Some("claude-code".into()),
            ..Identity::default()
        },
        session: format!("{user}-session"),
        server: "lab".into(),
        tool: tool.into(),
        arguments: json!({ "cost": cost }),
        ..CallContext::default()
    }
}

/// Decides and, when allowed, forwards (records) the call.
fn call(engine: &Engine, c: &CallContext) -> Outcome {
    let d = engine.decide(c);
    if d.is_allow() {
        engine.record_forwarded(c, &d);
    }
    d.outcome
}

fn allowed(o: &Outcome) -> bool {
    matches!(o, Outcome::Allow { .. })
}

/// 30 calls for one user at once, 10 on each of 3 replicas: how many
/// were allowed.
fn race(replicas: &[Engine], tool: &str, cost: u64) -> usize {
    let barrier = Barrier::new(30);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..30)
            .map(|i| {
                let e = &replicas[i % replicas.len()];
                let barrier = &barrier;
                s.spawn(move || {
                    let c = call_of("alice", tool, cost);
                    barrier.wait();
                    allowed(&call(e, &c))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .filter(|a| *a)
            .count()
    })
}

#[test]
fn thirty_calls_on_three_replicas_take_exactly_the_limit() {
    let server = RedisServer::start();
    let replicas: Vec<Engine> = (0..3).map(|_| replica(&server, None)).collect();
    assert_eq!(race(&replicas, "run", 0), 3, "cap: max 3 per user");
    assert_eq!(race(&replicas, "export", 0), 3, "rate: max 3 per 1h");
    // cost 3 of a budget of 10: three fit (9), a fourth would not.
    assert_eq!(race(&replicas, "spend", 3), 3, "budget: max 10 per 1h");
    // Another user is counted apart, on any replica.
    assert!(allowed(&call(&replicas[2], &call_of("bob", "run", 0))));
}

#[test]
fn a_streak_and_a_window_seen_from_another_replica() {
    let server = RedisServer::start();
    let clock = Arc::new(ManualClock::default());
    let a = replica(&server, Some(clock.clone()));
    let b = replica(&server, Some(clock.clone()));
    for e in [&a, &b, &a] {
        assert!(allowed(&call(e, &call_of("alice", "export", 0))));
        clock.advance(Duration::from_secs(600));
    }
    let Outcome::Deny(d) = call(&b, &call_of("alice", "export", 0)) else {
        panic!("a fourth export within the hour, on another replica")
    };
    // The first export leaves the window 1800 s from now.
    assert_eq!(d.retry, Retry::AfterSeconds { seconds: 1800 });
    clock.advance(Duration::from_secs(1800));
    assert!(allowed(&call(&b, &call_of("alice", "export", 0))));

    for e in [&a, &b, &a] {
        assert!(allowed(&call(e, &call_of("alice", "run", 0))));
    }
    assert!(!allowed(&call(&b, &call_of("alice", "run", 0))), "cap");
    // A call the cap does not count, on the other replica, ends the streak.
    assert!(allowed(&call(&b, &call_of("alice", "list", 0))));
    assert!(allowed(&call(&a, &call_of("alice", "run", 0))));
}

fn user_row() -> ScopeKey {
    ScopeKey {
        row: ScopeSet::single(Scope::User),
        value: "alice".into(),
    }
}

fn cap_hold() -> Hold {
    Hold {
        user: "alice".into(),
        keys: vec![user_row()],
        matched: vec![Counted {
            rule: "runs".into(),
            spec: LimitSpec {
                max: 1,
                window: None,
                scope: ScopeSet::single(Scope::User),
                summed: false,
            },
            split: String::new(),
            weight: 1,
        }],
        confirmed: false,
        unchecked: Vec::new(),
    }
}

#[test]
fn the_hold_of_a_replica_that_died_expires() {
    let server = RedisServer::start();
    let clock = Arc::new(ManualClock::default());
    let dead = store(&server, Some(clock.clone()));
    let live = store(&server, Some(clock.clone()));
    let h = cap_hold();
    // The dead replica decided and never forwarded nor released.
    assert!(matches!(dead.reserve(&h).unwrap(), Reserved::Held(_)));
    drop(dead);
    assert_eq!(
        live.reserve(&h).unwrap(),
        Reserved::Full {
            rule: "runs".into()
        },
        "the hold counts while it may still be forwarded"
    );
    clock.advance(RedisOptions::default().hold_ttl + Duration::from_millis(1));
    assert!(
        matches!(live.reserve(&h).unwrap(), Reserved::Held(_)),
        "expired with its replica"
    );
}

#[test]
fn a_commit_retried_after_a_lost_reply_counts_once() {
    let server = RedisServer::start();
    let s = store(&server, None);
    let h = cap_hold();
    let Reserved::Held(id) = s.reserve(&h).unwrap() else {
        panic!("first slot")
    };
    s.commit(id, &h).unwrap();
    // The gate retries a commit whose reply it did not see.
    s.commit(id, &h).unwrap();
    let spec = h.matched[0].spec;
    let n = s.count("runs", &spec, &user_row(), "", 1).unwrap().unwrap();
    assert_eq!(n.count, 1);
}

#[test]
fn a_server_that_is_down_denies_only_calls_that_need_it_and_is_reconnected() {
    let mut server = RedisServer::start_durable();
    let e = replica(&server, None);
    assert!(allowed(&call(&e, &call_of("alice", "run", 0))));
    server.stop();

    let started = Instant::now();
    let Outcome::Deny(d) = call(&e, &call_of("alice", "run", 0)) else {
        panic!("a capped call with the store down")
    };
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the timeout bounds a call: {:?}",
        started.elapsed()
    );
    let name = format!("redis://127.0.0.1:{}/0", server.port());
    assert!(
        d.reason.contains("state store unavailable") && d.reason.contains(&name),
        "the reason names the store: {}",
        d.reason
    );
    // A call that no limit counts needs no counter.
    let d = e.decide(&call_of("alice", "list", 0));
    assert!(d.is_allow(), "{:?}", d.outcome);
    for _ in 0..20 {
        assert!(!allowed(&call(&e, &call_of("alice", "export", 0))));
    }

    server.restart();
    // Reconnected within the backoff; the durable server kept the run.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let o = call(&e, &call_of("alice", "spend", 1));
        if allowed(&o) {
            break;
        }
        assert!(Instant::now() < deadline, "not reconnected: {o:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_durable_server_keeps_every_count_across_its_restart() {
    let mut server = RedisServer::start_durable();
    let e = replica(&server, None);
    for _ in 0..3 {
        assert!(allowed(&call(&e, &call_of("alice", "export", 0))));
    }
    for _ in 0..2 {
        assert!(allowed(&call(&e, &call_of("alice", "run", 0))));
    }
    server.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    // The first calls after the restart may find old connections dead;
    // they are retried on new ones, so no call is wrongly allowed.
    let third_run = loop {
        let d = e.decide(&call_of("alice", "run", 0));
        if d.is_allow() {
            e.record_forwarded(&call_of("alice", "run", 0), &d);
            break true;
        }
        if !matches!(&d.outcome, Outcome::Deny(x) if x.reason.contains("state store unavailable")) {
            break false;
        }
        assert!(Instant::now() < deadline, "not reconnected");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(third_run, "two runs were kept: a third fits the cap of 3");
    assert!(
        !allowed(&call(&e, &call_of("alice", "run", 0))),
        "and a fourth does not"
    );
    let Outcome::Deny(d) = call(&e, &call_of("alice", "export", 0)) else {
        panic!("three exports were kept: the rate is full")
    };
    assert!(d.reason.contains("at most 3"), "{}", d.reason);
}

#[test]
fn one_user_declaring_new_names_cannot_fill_redis() {
    let server = RedisServer::start();
    let limits = StateLimits {
        max_keys_per_user: 3,
        ..StateLimits::default()
    };
    let s = RedisState::open(&server.url(), limits, RedisOptions::default()).unwrap();
    let in_session = |user: &str, session: &str| Hold {
        user: user.into(),
        keys: vec![ScopeKey {
            row: ScopeSet::single(Scope::Session),
            value: session.into(),
        }],
        matched: vec![Counted {
            rule: "runs".into(),
            spec: LimitSpec {
                max: 10,
                window: Some(Duration::from_secs(60)),
                scope: ScopeSet::single(Scope::Session),
                summed: false,
            },
            split: String::new(),
            weight: 1,
        }],
        confirmed: false,
        unchecked: Vec::new(),
    };
    for i in 0..3 {
        let h = in_session("mallory", &format!("s{i}"));
        assert!(
            matches!(s.reserve(&h).unwrap(), Reserved::Held(_)),
            "session {i}"
        );
    }
    let Reserved::Untracked(why) = s.reserve(&in_session("mallory", "s3")).unwrap() else {
        panic!("a fourth session name for one user")
    };
    assert!(
        why.contains("at most 3 sessions, agents, models and tools"),
        "{why}"
    );
    assert!(
        matches!(
            s.reserve(&in_session("mallory", "s0")).unwrap(),
            Reserved::Held(_)
        ),
        "a name already tracked"
    );
    assert!(
        matches!(
            s.reserve(&in_session("alice", "a0")).unwrap(),
            Reserved::Held(_)
        ),
        "another user has room of their own"
    );
}

#[test]
fn counts_read_with_a_reservation_are_those_it_was_checked_against() {
    let server = RedisServer::start();
    let s = store(&server, None);
    let h = cap_hold();
    let reads: Vec<_> = h.slots().collect();
    let (counts, reserved) = s.count_and_reserve(&reads, &h);
    assert_eq!(counts.len(), 1);
    assert_eq!(counts[0].as_ref().unwrap().as_ref().unwrap().count, 0);
    let Ok(Reserved::Held(first)) = reserved else {
        panic!("the first slot of max 1: {reserved:?}")
    };
    // The second sees the first's hold, and takes nothing.
    let (counts, reserved) = s.count_and_reserve(&reads, &h);
    assert_eq!(counts[0].as_ref().unwrap().as_ref().unwrap().count, 1);
    assert_eq!(
        reserved.unwrap(),
        Reserved::Full {
            rule: "runs".into()
        }
    );
    s.release(first, &h).unwrap();
    let spec = h.matched[0].spec;
    let n = s.count("runs", &spec, &user_row(), "", 1).unwrap().unwrap();
    assert_eq!(n.count, 0, "the refused reservation held nothing");
}

/// A hold of two caps on alice's row, `full` (max 1) first and `roomy`
/// (max 5) second.
fn two_cap_hold() -> Hold {
    let cap = |rule: &str, max| Counted {
        rule: rule.into(),
        spec: LimitSpec {
            max,
            window: None,
            scope: ScopeSet::single(Scope::User),
            summed: false,
        },
        split: String::new(),
        weight: 1,
    };
    Hold {
        user: "alice".into(),
        keys: vec![user_row()],
        matched: vec![cap("full", 1), cap("roomy", 5)],
        confirmed: false,
        unchecked: Vec::new(),
    }
}

/// The script checks a hold slot against the count it read of the same
/// slot, whatever order the reads come in, and reads again a slot no read
/// covers: so the answer is the one the state gives.
#[test]
fn a_hold_is_checked_against_the_count_read_of_each_of_its_own_slots() {
    let server = RedisServer::start();
    let s = store(&server, None);
    let h = two_cap_hold();
    let only_full = Hold {
        matched: vec![h.matched[0].clone()],
        ..h.clone()
    };
    // `full` takes its one slot: held, not committed, it counts.
    let Reserved::Held(_) = s.reserve(&only_full).unwrap() else {
        panic!("the first slot of `full`")
    };
    let slots: Vec<_> = h.slots().collect();
    let reversed: Vec<_> = slots.iter().rev().copied().collect();
    let only_roomy = vec![slots[1]];
    for (reads, what) in [
        (slots.clone(), "the reads in the hold's order"),
        (reversed, "the reads in the other order"),
        (only_roomy, "no read of the full slot"),
        (Vec::new(), "no read at all"),
    ] {
        let (counts, reserved) = s.count_and_reserve(&reads, &h);
        assert_eq!(
            reserved.unwrap(),
            Reserved::Full {
                rule: "full".into()
            },
            "{what}"
        );
        for (read, count) in reads.iter().zip(&counts) {
            let expected = u64::from(read.rule == "full");
            assert_eq!(
                count.as_ref().unwrap().as_ref().unwrap().count,
                expected,
                "{what}: the count of `{}`",
                read.rule
            );
        }
    }
    // With `full` read in the same script but not in the hold, the hold
    // of `roomy` alone is taken.
    let only_roomy_hold = Hold {
        matched: vec![h.matched[1].clone()],
        ..h.clone()
    };
    let (_, reserved) = s.count_and_reserve(&slots, &only_roomy_hold);
    assert!(matches!(reserved.unwrap(), Reserved::Held(_)));
}

/// A commit lengthens the streak of the caps its call counts for and ends
/// every other cap's streak in the same row.
#[test]
fn a_commit_ends_the_streaks_of_the_other_caps_in_its_row() {
    let server = RedisServer::start();
    let s = store(&server, None);
    let h = two_cap_hold();
    let only = |i: usize| Hold {
        matched: vec![h.matched[i].clone()],
        ..h.clone()
    };
    let count = |i: usize| {
        let c = &h.matched[i];
        s.count(&c.rule, &c.spec, &user_row(), "", 1)
            .unwrap()
            .unwrap()
            .count
    };
    let commit = |hold: &Hold| {
        let Reserved::Held(id) = s.reserve(hold).unwrap() else {
            panic!("a slot for {:?}", hold.matched[0].rule)
        };
        s.commit(id, hold).unwrap();
    };
    commit(&only(0));
    assert_eq!((count(0), count(1)), (1, 0));
    commit(&only(1));
    assert_eq!((count(0), count(1)), (0, 1), "`full`'s streak ended");
    commit(&only(1));
    assert_eq!((count(0), count(1)), (0, 2), "`roomy`'s streak went on");
}

/// A capped call's one script reads its slot once: the hold is checked
/// against the count just read, and the user's set of owned keys is left
/// alone when the hold has none of them (a cap per user).
#[test]
fn a_capped_calls_script_reads_its_slot_once() {
    let server = RedisServer::start();
    let s = store(&server, None);
    let h = cap_hold();
    let reads: Vec<_> = h.slots().collect();
    let reads_of = |server: &RedisServer| {
        (
            commands_run(server, &["hget"]),
            commands_run(server, &["zrange"]),
            commands_run(server, &["zremrangebyscore"]),
        )
    };
    let before = reads_of(&server);
    let (_, reserved) = s.count_and_reserve(&reads, &h);
    let Ok(Reserved::Held(id)) = reserved else {
        panic!("a slot: {reserved:?}")
    };
    let after = reads_of(&server);
    assert_eq!(
        (after.0 - before.0, after.1 - before.1, after.2 - before.2),
        (1, 1, 1),
        "HGET of the streak, ZRANGE and ZREMRANGEBYSCORE of the holds, once each"
    );
    // Its commit reads the row once and needs no clock (a cap has no
    // window).
    let before = commands_run(&server, &["time", "hget", "hgetall", "hkeys"]);
    s.commit(id, &h).unwrap();
    assert_eq!(
        commands_run(&server, &["time", "hget", "hgetall", "hkeys"]) - before,
        1,
        "one HGETALL of the row"
    );
}

/// How many scripts the server ran (`INFO commandstats`: `evalsha` and
/// `eval`; each of warden's store steps on a limit is one script, and the
/// commands a script runs inside Redis are counted apart).
fn scripts_run(server: &RedisServer) -> u64 {
    commands_run(server, &["evalsha", "eval"])
}

/// How many times the server ran the commands `names` (lowercase), inside
/// scripts or not (`INFO commandstats`).
fn commands_run(server: &RedisServer, names: &[&str]) -> u64 {
    let client = redis::Client::open(server.url()).unwrap();
    let mut c = client.get_connection().unwrap();
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut c)
        .unwrap();
    info.lines()
        .filter_map(|l| l.strip_prefix("cmdstat_")?.split_once(':'))
        .filter(|(name, _)| names.contains(name))
        .filter_map(|(_, stats)| {
            stats
                .split(',')
                .find_map(|kv| kv.strip_prefix("calls="))?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

#[test]
fn a_capped_call_costs_two_store_steps_one_before_it_is_forwarded() {
    let server = RedisServer::start();
    let e = replica(&server, None);
    // Warm: the scripts are loaded (SCRIPT LOAD after NOSCRIPT).
    assert!(allowed(&call(&e, &call_of("alice", "list", 0))));
    assert!(allowed(&call(&e, &call_of("alice", "run", 0))));
    assert!(allowed(&call(&e, &call_of("alice", "list", 0))));
    let before = scripts_run(&server);
    let c = call_of("alice", "run", 0);
    let decided = e.decide(&c);
    assert!(decided.is_allow());
    let decided_at = scripts_run(&server);
    assert_eq!(
        decided_at - before,
        1,
        "deciding a capped call: its counts read and its hold taken in one script"
    );
    e.record_forwarded(&c, &decided);
    assert_eq!(
        scripts_run(&server) - decided_at,
        1,
        "forwarding it: one commit"
    );
    // The fourth in a row is refused on the counts read with the attempt,
    // with the cap's own advice, and holds nothing.
    for _ in 0..2 {
        let c = call_of("alice", "run", 0);
        let d = e.decide(&c);
        assert!(d.is_allow());
        e.record_forwarded(&c, &d);
    }
    let Outcome::Deny(d) = call(&e, &call_of("alice", "run", 0)) else {
        panic!("the fourth run in a row")
    };
    assert!(d.reason.contains("runs"), "{}", d.reason);
}
