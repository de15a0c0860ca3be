//! Any bytes as a tool call's JSON arguments: deciding never panics, and
//! arguments the engine cannot read are denied, never allowed. The policy
//! set is baseline.policy (every construct, argument conditions of every
//! operator) plus genomics.policy, so arguments reach every comparison.

#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use warden_engine::{CallContext, Engine, EngineOptions, Identity, Outcome, PolicyBundle, Provenance};
use warden_lang::{Sources, compile_policy_set};

fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let mut sources = Sources::new();
        sources.add("baseline.policy", include_str!("../../policies/baseline.policy"));
        let set = compile_policy_set(&sources).expect("baseline.policy compiles").policy_set;
        Engine::new(PolicyBundle::new(set, "fuzz".into()), EngineOptions::default())
    })
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
