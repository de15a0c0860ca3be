//! What a shared state store costs a call: the decision plus what
//! forwarding records (`decide` then `record_forwarded`), with caps and
//! rates in memory against a real Redis on loopback (a `redis-server`
//! started on a free port), for
//! - a capped call (a cap per user: its counts read and its hold taken in
//!   one script, then the commit: two round trips to Redis), and the same
//!   with the counts read apart from the reservation (three round trips,
//!   as before `engine::reserve` read them together),
//! - a call with a cap and a budget (both counts read and both slots held
//!   in one script, then the commit),
//! - an uncapped call in a set that has a cap (it ends the user's streaks:
//!   one round trip),
//! - an uncapped call in a set without limits (no store at all).
//!
//! Interleaved: every case runs in blocks of `BLOCK` calls, all cases in
//! turn, so a change in the machine's load falls on each alike; the load
//! average is printed before and after. Run with
//! `cargo bench -p warden-engine --bench state` (`WARDEN_BENCH_CALLS`,
//! default 20,000 per case); under `cargo test` it is a smoke pass.
//! Target (issue 14): at most +150 µs p50 for a capped call, +0 for an
//! uncapped one.

#[path = "../tests/support/redis_server.rs"]
mod redis_server;

use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};
use warden_engine::{
    CallContext, Engine, EngineOptions, Identity, PolicyBundle, RedisOptions, RedisState,
    StateBackend, StateStore,
};
use warden_lang::{Sources, compile_policy_set};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BLOCK: usize = 500;

const CAPPED: &str = "default allow
cap-consecutive runs {
  tool \"run\"
  max 1000000000 per user
}
";
const CAPPED_AND_BUDGETED: &str = "default allow
cap-consecutive runs {
  tool \"run\"
  max 1000000000 per user
}
budget spend {
  tool \"run\"
  sum args.cost
  max 100000000 per 1h per user
}
";
/// The lethal-trifecta pattern: `read_results` labels the session, and
/// every call reads the label (the deny names no tool).
const LABELLED: &str = "default allow
label read-private {
  tool \"read_results\"
}
deny no-way-out {
  when session has label read-private and tool.open_world
}
";
const PLAIN: &str = "default allow
deny no-wipes {
  tool \"wipe\"
}
";

fn engine(policy: &str, state: Option<Arc<dyn StateStore>>) -> Engine {
    engine_with(policy, state, None)
}

/// With `reserve_with_counts` as given (`None`: as the store says).
fn engine_with(
    policy: &str,
    state: Option<Arc<dyn StateStore>>,
    reserve_with_counts: Option<bool>,
) -> Engine {
    let mut s = Sources::new();
    s.add("b.policy", policy);
    let bundle = PolicyBundle::new(compile_policy_set(&s).unwrap().policy_set, "v1".into());
    let mut options = EngineOptions {
        reserve_with_counts,
        ..EngineOptions::default()
    };
    if let Some(state) = state {
        options.state = StateBackend::Store(state);
    }
    Engine::new(bundle, options)
}

fn call(tool: &str) -> CallContext {
    CallContext {
        identity: Identity {
            user: "alice".into(),
            agent: Some("claude-code".into()),
            ..Identity::default()
        },
        session: "s1".into(),
        server: "lab".into(),
        tool: tool.into(),
        arguments: json!({"sample_id": "S-1", "cost": 1}),
        ..CallContext::default()
    }
}

/// `call` in session `session`.
fn in_session(mut call: CallContext, session: &str) -> CallContext {
    call.session = session.into();
    call
}

/// `call` of a tool that says it does not reach the outside world.
fn closed_world(mut call: CallContext) -> CallContext {
    call.annotations.open_world_hint = Some(false);
    call
}

struct Case {
    name: &'static str,
    engine: Engine,
    call: CallContext,
    times: Vec<Duration>,
}

impl Case {
    fn block(&mut self, n: usize, keep: bool) {
        for _ in 0..n {
            let t = Instant::now();
            let d = self.engine.decide(&self.call);
            assert!(d.is_allow(), "{}: {:?}", self.name, d.outcome);
            self.engine
                .try_record_forwarded(&self.call, &d)
                .expect("recorded");
            drop(d);
            if keep {
                self.times.push(t.elapsed());
            }
        }
    }

    fn quantile(&self, q: f64) -> Duration {
        let mut t = self.times.clone();
        t.sort();
        t[((t.len() as f64 - 1.0) * q).round() as usize]
    }
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn us(d: Duration) -> f64 {
    d.as_nanos() as f64 / 1000.0
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let calls: usize = std::env::var("WARDEN_BENCH_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if bench { 20_000 } else { 2 * BLOCK });
    let server = redis_server::RedisServer::start();
    let redis = || -> Arc<dyn StateStore> {
        Arc::new(
            RedisState::open(&server.url(), Default::default(), RedisOptions::default())
                .expect("redis url"),
        )
    };
    let mut cases = vec![
        Case {
            name: "capped, memory",
            engine: engine(CAPPED, None),
            call: call("run"),
            times: Vec::new(),
        },
        Case {
            name: "capped, Redis",
            engine: engine(CAPPED, Some(redis())),
            call: call("run"),
            times: Vec::new(),
        },
        Case {
            name: "capped, memory, counts read apart",
            engine: engine_with(CAPPED, None, Some(false)),
            call: call("run"),
            times: Vec::new(),
        },
        Case {
            name: "capped, Redis, counts read apart (before d19cc2e)",
            engine: engine_with(CAPPED, Some(redis()), Some(false)),
            call: call("run"),
            times: Vec::new(),
        },
        Case {
            name: "capped and budgeted, memory",
            engine: engine(CAPPED_AND_BUDGETED, None),
            call: call("run"),
            times: Vec::new(),
        },
        Case {
            name: "capped and budgeted, Redis",
            engine: engine(CAPPED_AND_BUDGETED, Some(redis())),
            call: call("run"),
            times: Vec::new(),
        },
        Case {
            name: "uncapped in a set with a cap, memory",
            engine: engine(CAPPED, None),
            call: call("list"),
            times: Vec::new(),
        },
        Case {
            name: "uncapped in a set with a cap, Redis",
            engine: engine(CAPPED, Some(redis())),
            call: call("list"),
            times: Vec::new(),
        },
        Case {
            name: "reads a label, memory",
            engine: engine(LABELLED, None),
            call: in_session(call("list"), "reader"),
            times: Vec::new(),
        },
        Case {
            name: "reads a label, Redis",
            engine: engine(LABELLED, Some(redis())),
            // Not the session the next cases label (one Redis for all).
            call: in_session(call("list"), "reader"),
            times: Vec::new(),
        },
        Case {
            name: "closed-world under a label rule, memory",
            engine: engine(LABELLED, None),
            call: closed_world(in_session(call("list"), "reader")),
            times: Vec::new(),
        },
        Case {
            name: "closed-world under a label rule, Redis",
            engine: engine(LABELLED, Some(redis())),
            call: closed_world(in_session(call("list"), "reader")),
            times: Vec::new(),
        },
        Case {
            name: "sets a label, memory",
            engine: engine(LABELLED, None),
            call: closed_world(call("read_results")),
            times: Vec::new(),
        },
        Case {
            name: "sets a label, Redis",
            engine: engine(LABELLED, Some(redis())),
            call: closed_world(call("read_results")),
            times: Vec::new(),
        },
        Case {
            name: "no limits in the set, memory",
            engine: engine(PLAIN, None),
            call: call("list"),
            times: Vec::new(),
        },
        Case {
            name: "no limits in the set, Redis",
            engine: engine(PLAIN, Some(redis())),
            call: call("list"),
            times: Vec::new(),
        },
    ];
    println!("load average before: {}", load_average());
    for c in &mut cases {
        c.block(BLOCK.min(calls), false);
    }
    let mut done = 0;
    while done < calls {
        let n = BLOCK.min(calls - done);
        for c in &mut cases {
            c.block(n, true);
        }
        done += n;
    }
    println!("load average after: {}\n", load_average());
    println!("| call | p50 µs | p99 µs | p50 vs memory |");
    println!("|---|---:|---:|---:|");
    for pair in cases.chunks(2) {
        let (mem, red) = (&pair[0], &pair[1]);
        for c in [mem, red] {
            println!(
                "| {} | {:.1} | {:.1} | {:+.1} µs |",
                c.name,
                us(c.quantile(0.5)),
                us(c.quantile(0.99)),
                us(c.quantile(0.5)) - us(mem.quantile(0.5)),
            );
        }
    }
    where_a_capped_call_goes(&server, &cases[1], calls.min(5_000));
}

/// Where a capped call's time on Redis goes: the round trip alone (a
/// `PING` from this process, p50), and what the server spent inside the
/// scripts per call (`INFO commandstats` over `n` more calls of the case).
fn where_a_capped_call_goes(server: &redis_server::RedisServer, case: &Case, n: usize) {
    let client = redis::Client::open(server.url()).expect("redis url");
    let mut c = client.get_connection().expect("a connection");
    let mut pings: Vec<Duration> = (0..n.max(1))
        .map(|_| {
            let t = Instant::now();
            let _: String = redis::cmd("PING").query(&mut c).expect("PONG");
            t.elapsed()
        })
        .collect();
    pings.sort();
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query(&mut c)
        .expect("CONFIG RESETSTAT");
    for _ in 0..n {
        let d = case.engine.decide(&case.call);
        case.engine
            .try_record_forwarded(&case.call, &d)
            .expect("recorded");
    }
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut c)
        .expect("INFO");
    let (mut calls, mut usec) = (0u64, 0u64);
    for line in info.lines() {
        let Some(stats) = line.strip_prefix("cmdstat_evalsha:") else {
            continue;
        };
        for kv in stats.split(',') {
            if let Some(v) = kv.strip_prefix("calls=") {
                calls = v.parse().unwrap_or(0);
            }
            if let Some(v) = kv.strip_prefix("usec=") {
                usec = v.parse().unwrap_or(0);
            }
        }
    }
    println!(
        "\n{}: one round trip (PING) p50 {:.1} µs; per call {:.1} scripts, {:.1} µs inside Redis",
        case.name,
        us(pings[pings.len() / 2]),
        calls as f64 / n.max(1) as f64,
        usec as f64 / n.max(1) as f64,
    );
    per_script(&mut c, case, n.min(500));
}

/// Each script's p50 inside Redis over `n` more calls of the case, from
/// `SLOWLOG` with every command logged, in the order a call runs them
/// (the first is the decision's, the second the commit's), and the
/// commands they ran per call (the log keeps its newest entries, so the
/// runs counted are the last calls').
fn per_script(c: &mut redis::Connection, case: &Case, n: usize) {
    let set = |c: &mut redis::Connection, k: &str, v: i64| {
        let _: () = redis::cmd("CONFIG")
            .arg("SET")
            .arg(k)
            .arg(v)
            .query(c)
            .expect("CONFIG SET");
    };
    set(c, "slowlog-max-len", (4 * n) as i64);
    set(c, "slowlog-log-slower-than", 0);
    let _: () = redis::cmd("SLOWLOG").arg("RESET").query(c).expect("RESET");
    for _ in 0..n {
        let d = case.engine.decide(&case.call);
        case.engine
            .try_record_forwarded(&case.call, &d)
            .expect("recorded");
    }
    set(c, "slowlog-log-slower-than", 10_000);
    let entries: Vec<redis::Value> = redis::cmd("SLOWLOG")
        .arg("GET")
        .arg(4 * n)
        .query(c)
        .expect("SLOWLOG GET");
    // Newest first: (the script's SHA, duration µs) of each EVALSHA.
    let mut runs: Vec<(String, u64)> = Vec::new();
    let mut inner: std::collections::BTreeMap<String, usize> = Default::default();
    for e in entries.into_iter().rev() {
        let Ok((_, _, micros, args)) =
            redis::from_redis_value::<(i64, i64, u64, Vec<String>)>(truncated(e))
        else {
            continue;
        };
        match args.first() {
            Some(a) if a.eq_ignore_ascii_case("evalsha") && args.len() > 1 => {
                runs.push((args[1].clone(), micros));
            }
            // Redis 7 logs the commands a script runs as well.
            Some(a) => *inner.entry(a.to_ascii_uppercase()).or_default() += 1,
            None => {}
        }
    }
    let mut order: Vec<String> = Vec::new();
    for (sha, _) in &runs {
        if !order.contains(sha) {
            order.push(sha.clone());
        }
    }
    let parts: Vec<String> = order
        .iter()
        .enumerate()
        .map(|(i, sha)| {
            let mut t: Vec<u64> = runs
                .iter()
                .filter(|(s, _)| s == sha)
                .map(|(_, m)| *m)
                .collect();
            t.sort_unstable();
            format!(
                "script {} p50 {} µs ({} runs)",
                i + 1,
                t[t.len() / 2],
                t.len()
            )
        })
        .collect();
    let calls = runs.len() / order.len().max(1);
    let commands: Vec<String> = inner
        .iter()
        .map(|(name, k)| format!("{name} {:.1}", *k as f64 / calls.max(1) as f64))
        .collect();
    println!("{}: inside Redis, {}", case.name, parts.join(", "));
    println!(
        "{}: commands the scripts ran per call: {}",
        case.name,
        commands.join(", ")
    );
}

/// A SLOWLOG entry with only its first four fields (id, time, duration,
/// arguments): Redis 4 and later add the client's address and name.
fn truncated(e: redis::Value) -> redis::Value {
    match e {
        redis::Value::Array(mut v) => {
            v.truncate(4);
            redis::Value::Array(v)
        }
        other => other,
    }
}
