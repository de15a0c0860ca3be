//! Any bytes as a tool call's JSON arguments: deciding never panics, and
//! arguments the engine cannot read are denied, never allowed. Two policy
//! sets decide each call: baseline.policy (every construct, argument
//! conditions of every operator) and `policies/depth.policy` (a budget's
//! sum, `any`/`all` over lists, `length of`/`size of`, `ignoring case`,
//! a `during` window on a fixed clock), so arguments reach every test.
//! A budgeted call is allowed only with an exact amount that fits.

#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::{Arc, OnceLock};
use warden_engine::state::{Clock, ManualClock};
use warden_engine::{
    CallContext, Engine, EngineOptions, Identity, Outcome, PolicyBundle, Provenance,
};
use warden_lang::{Sources, compile_policy_set};

fn compiled(name: &str, text: &str) -> Engine {
    let mut sources = Sources::new();
    sources.add(name, text);
    let set = compile_policy_set(&sources)
        .unwrap_or_else(|_| panic!("{name} compiles"))
        .policy_set;
    // A fixed wall time (Wednesday 2026-12-02 08:30 in Berlin), so that a
    // `during` window decides the same on every run.
    let clock = Arc::new(ManualClock::default());
    clock.step_wall(1_796_196_600_000 - clock.unix_millis());
    Engine::new(
        PolicyBundle::new(set, "fuzz".into()),
        EngineOptions {
            clock,
            ..EngineOptions::default()
        },
    )
}

fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        compiled(
            "baseline.policy",
            include_str!("../../policies/baseline.policy"),
        )
    })
}

fn depth() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| compiled("depth.policy", include_str!("../policies/depth.policy")))
}

/// Whether `args.estimated_cost` is an amount depth.policy's budget
/// (`max 2000`) lets through on its own: a JSON number, exact to four
/// places, not negative, at most 2000. (Nothing is ever recorded here,
/// so the budget's use stays 0.)
fn fits_budget(arguments: &serde_json::Value) -> bool {
    match arguments.get("estimated_cost") {
        Some(serde_json::Value::Number(n)) => warden_lang::amount::parse_units(&n.to_string())
            .is_ok_and(|units| units <= 2000 * warden_lang::amount::UNITS_PER_ONE),
        _ => false,
    }
}

fuzz_target!(|data: &[u8]| {
    // The first byte picks the tool, so argument conditions of several
    // rules are reached; the rest is the arguments.
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let Ok(arguments) = serde_json::from_slice::<serde_json::Value>(rest) else {
        return;
    };
    let tools = [
        "start_pipeline_run",
        "delete_sample",
        "update_sample",
        "get_sample",
        "export_data",
        "search_samples",
        "query",
        "write_file",
    ];
    let servers = ["genomics", "billing", "lims"];
    let call = CallContext {
        identity: Identity {
            user: "alice".into(),
            groups: vec!["lab".into()],
            agent: Some("claude-code".into()),
            model: Some("claude-sonnet".into()),
            ..Identity::default()
        },
        session: "fuzz".into(),
        provenance: Provenance {
            via_agent: pick & 0x80 != 0,
            via_server: Some(servers[(pick as usize >> 3) % servers.len()].into()),
        },
        server: servers[(pick as usize >> 3) % servers.len()].into(),
        tool: tools[pick as usize % tools.len()].into(),
        arguments: arguments.clone(),
        ..CallContext::default()
    };
    let deep = depth().decide(&call);
    if call.tool == "start_pipeline_run" && deep.is_allow() {
        assert!(
            fits_budget(&arguments),
            "a budgeted call was allowed with `estimated_cost` not an exact amount that fits: {arguments}"
        );
    }
    let decided = engine().decide(&call);
    // Arguments that are not an object cannot satisfy any argument
    // condition; the engine must not wave them through a rule that reads one.
    if !arguments.is_object() {
        if let Outcome::Allow { .. } = decided.outcome {
            let bundle = engine().policies();
            let slice = bundle.slice(&call.server, &call.tool);
            let reads_args = slice
                .rules
                .iter()
                .any(|&i| !bundle.rules()[i].arg_fields.is_empty());
            assert!(
                !reads_args,
                "non-object arguments {arguments} allowed where a rule reads arguments: {decided:?}"
            );
        }
    }
});
