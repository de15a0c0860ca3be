//! `warden eval`: decide one call from a JSON file and show the decision
//! and the rules behind it, as `cedar authorize` does for Cedar.

use crate::Format;
use std::path::Path;
use warden_engine::{CallContext, Engine, EngineOptions, Outcome, load_bundle};

/// Exit codes of `warden eval`, following Cedar's CLI where it has one.
pub mod exit {
    pub const ALLOW: i32 = 0;
    pub const ERROR: i32 = 1;
    pub const DENY: i32 = 2;
    pub const CONFIRM: i32 = 3;
}

pub(crate) fn run(policies: &Path, request: &Path, format: Format) -> i32 {
    let bundle = match load_bundle(policies) {
        Ok(b) => b,
        Err(e) => {
            eprint!("{}", crate::lint::render_report(&e));
            if let warden_engine::LoadError::Invalid { diagnostics, .. } = &e {
                let diags: Vec<_> = diagnostics.iter().cloned().collect();
                eprint!("{}", crate::lint::render_human(&diags));
            }
            return exit::ERROR;
        }
    };
    let text = match std::fs::read_to_string(request) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: cannot read `{}`: {e}", request.display());
            return exit::ERROR;
        }
    };
    let call: CallContext = match serde_json::from_str(&text) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: `{}` is not a call request: {e}", request.display());
            eprintln!("  help: see docs/engine.md for the request format");
            return exit::ERROR;
        }
    };
    let engine = Engine::new(bundle, EngineOptions::default());
    let decided = engine.decide(&call);
    match format {
        Format::Json | Format::Sarif => {
            outln!(
                "{}",
                serde_json::to_string_pretty(&decided).expect("decision serialises")
            )
        }
        Format::Human => {
            match &decided.outcome {
                Outcome::Allow { rules } => {
                    outln!("ALLOW");
                    for r in rules {
                        outln!("  by {r}");
                    }
                }
                Outcome::Deny(d) => {
                    outln!("DENY");
                    outln!("  {}", d.reason);
                    for h in &d.rules {
                        outln!("  rule {} ({}) at {}", h.rule, h.kind, h.source);
                    }
                    outln!(
                        "  retry: {}",
                        serde_json::to_string(&d.retry).unwrap_or_default()
                    );
                    outln!("  instead: {}", d.instead);
                }
                Outcome::Confirm(c) => {
                    outln!("CONFIRM");
                    outln!("  ask the person: {}", c.message);
                    for h in &c.rules {
                        outln!("  rule {} at {}", h.rule, h.source);
                    }
                }
            }
            for s in &decided.shadow {
                outln!("  shadow: {} would {}: {}", s.rule, s.would, s.message);
            }
            outln!(
                "  policy version {}, decision {}",
                decided.policy_version,
                decided.id
            );
        }
    }
    match decided.outcome {
        Outcome::Allow { .. } => exit::ALLOW,
        Outcome::Deny(_) => exit::DENY,
        Outcome::Confirm(_) => exit::CONFIRM,
    }
}
