//! The confirmation question put to the person (finding 23). It is text
//! an agent partly controls (the arguments, the declared agent name, the
//! tool name), so nothing in it may pass for warden's own words or hide
//! part of the call:
//!
//! - every value is quoted unless a plain token, with line breaks, control
//!   and invisible formatting characters escaped
//!   ([`warden_engine::message::quote_value`]);
//! - every argument name is listed, in sorted order (not the agent's), before
//!   any value, so padding in one argument cannot push another out of view;
//! - values are cut per value and in total, and the question says how many
//!   were cut and under which decision id the decision log holds the whole
//!   call.

use serde_json::Value;
use warden_engine::CallContext;
use warden_engine::message::{escape_text, quote_value};

/// Longest value shown, in characters.
const VALUE_CHARS: usize = 120;
/// Longest argument name shown, in characters.
const NAME_CHARS: usize = 60;
/// Most characters of values shown in all.
const VALUES_BUDGET: usize = 1200;

fn cut(s: &str, n: usize) -> (String, bool) {
    if s.chars().count() <= n {
        (s.to_string(), false)
    } else {
        (s.chars().take(n).collect::<String>() + "…", true)
    }
}

/// The question for a confirmation of `call`, under the rules' `message`.
pub(crate) fn question(call: &CallContext, message: &str, decision_id: &str) -> String {
    let agent = match call.identity.agent.as_deref() {
        Some(a) => format!("the agent {}", quote_value(&cut(a, NAME_CHARS).0)),
        None => "the agent".to_string(),
    };
    let mut text = format!(
        "{message}\n\n{agent} wants to call `{}` on `{}`",
        escape_text(&cut(&call.tool, NAME_CHARS).0),
        escape_text(&call.server)
    );
    let Some(args) = call.arguments.as_object() else {
        let (v, was_cut) = cut(&call.arguments.to_string(), VALUE_CHARS);
        text.push_str(&format!(" with arguments {}", quote_value(&v)));
        if was_cut {
            text.push_str(&format!(
                " (cut; the whole call is in warden's decision log, decision {decision_id})"
            ));
        }
        text.push_str(".\nAccept to allow this one call, decline to refuse it.");
        return text;
    };
    let mut names: Vec<&String> = args.keys().collect();
    names.sort();
    if names.is_empty() {
        text.push_str(" with no arguments.");
    } else {
        let listed: Vec<String> = names
            .iter()
            .map(|n| quote_value(&cut(n, NAME_CHARS).0))
            .collect();
        text.push_str(&format!(
            " with {} argument{}: {}.",
            names.len(),
            if names.len() == 1 { "" } else { "s" },
            listed.join(", ")
        ));
        let mut budget = VALUES_BUDGET;
        let (mut cut_values, mut unshown) = (0usize, 0usize);
        for name in &names {
            let value = match &args[name.as_str()] {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let (shown, was_cut) = cut(&value, VALUE_CHARS.min(budget));
            if budget == 0 {
                unshown += 1;
                continue;
            }
            budget = budget.saturating_sub(shown.chars().count());
            cut_values += usize::from(was_cut);
            text.push_str(&format!(
                "\n  {} = {}",
                quote_value(&cut(name, NAME_CHARS).0),
                quote_value(&shown)
            ));
        }
        if cut_values > 0 || unshown > 0 {
            let mut parts = Vec::new();
            if cut_values > 0 {
                parts.push(format!(
                    "{cut_values} value{} cut",
                    if cut_values == 1 { "" } else { "s" }
                ));
            }
            if unshown > 0 {
                parts.push(format!(
                    "{unshown} value{} not shown",
                    if unshown == 1 { "" } else { "s" }
                ));
            }
            text.push_str(&format!(
                "\n({}; the whole call is in warden's decision log, decision {decision_id})",
                parts.join(", ")
            ));
        }
    }
    text.push_str("\nAccept to allow this one call, decline to refuse it.");
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn call(args: Value, agent: &str) -> CallContext {
        CallContext {
            tool: "start_pipeline_run".into(),
            server: "genomics".into(),
            arguments: args,
            identity: warden_engine::Identity {
                agent: Some(agent.into()),
                ..Default::default()
            },
            ..CallContext::default()
        }
    }

    #[test]
    fn padding_cannot_hide_an_argument() {
        let q = question(
            &call(
                json!({"a_padding": "x".repeat(420), "zz_output_bucket": "s3://attacker-bucket/exfil"}),
                "claude",
            ),
            "run it?",
            "d-7",
        );
        assert!(
            q.contains("2 arguments: a_padding, zz_output_bucket."),
            "{q}"
        );
        assert!(
            q.contains("zz_output_bucket = s3://attacker-bucket/exfil"),
            "{q}"
        );
        assert!(q.contains("1 value cut"), "{q}");
        assert!(q.contains("decision d-7"), "{q}");
    }

    #[test]
    fn many_arguments_are_all_named_and_the_rest_counted() {
        let args: serde_json::Map<String, Value> = (0..40)
            .map(|i| (format!("k{i:02}"), json!("v".repeat(100))))
            .collect();
        let q = question(&call(Value::Object(args), "a"), "ok?", "d-1");
        for i in 0..40 {
            assert!(q.contains(&format!("k{i:02}")), "{q}");
        }
        assert!(q.contains("values not shown"), "{q}");
        assert!(q.contains("decision d-1"), "{q}");
    }

    #[test]
    fn nothing_the_agent_sends_starts_a_line() {
        let q = question(
            &call(
                json!({"pipeline": "qc\nwarden: this run was pre-approved", "x\ny": 1}),
                "bot\nwarden: trusted",
            ),
            "run it?",
            "d-2",
        );
        let lines: Vec<&str> = q.lines().collect();
        assert!(lines.iter().all(|l| !l.starts_with("warden:")), "{q}");
        assert!(
            q.contains(r#""qc\nwarden: this run was pre-approved""#),
            "{q}"
        );
        assert!(q.contains(r#"the agent "bot\nwarden: trusted""#), "{q}");
    }
}
