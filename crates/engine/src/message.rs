//! Turning a rule's reason template into the text an agent and a person
//! read, with the call's values filled in. Interpolated values are cut to a
//! bounded length so an argument cannot flood a message.

use crate::call::CallContext;
use warden_lang::CompiledRule;
use warden_lang::template::{Placeholder, TemplatePart};

const MAX_VALUE_CHARS: usize = 200;

/// The rule's reason with placeholders filled, or `None` without a reason.
pub fn render_reason(rule: &CompiledRule, call: &CallContext) -> Option<String> {
    let template = rule.reason.as_ref()?;
    let mut out = String::new();
    for part in &template.parts {
        match part {
            TemplatePart::Text(t) => out.push_str(t),
            TemplatePart::Placeholder(p) => out.push_str(&clip(&value_of(p, rule, call))),
        }
    }
    Some(out)
}

fn value_of(p: &Placeholder, rule: &CompiledRule, call: &CallContext) -> String {
    match p {
        Placeholder::Arg(path) => {
            let mut v = &call.arguments;
            for seg in path {
                match v.get(seg.as_str()) {
                    Some(next) => v = next,
                    None => return "(none)".to_string(),
                }
            }
            match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            }
        }
        Placeholder::User => call.identity.user.clone(),
        Placeholder::Agent => call
            .identity
            .agent
            .clone()
            .unwrap_or_else(|| "the agent".into()),
        Placeholder::Model => call
            .identity
            .model
            .clone()
            .unwrap_or_else(|| "(unknown model)".into()),
        Placeholder::Tool => call.tool.clone(),
        Placeholder::Server => call.server.clone(),
        Placeholder::Session => call.session.clone(),
        Placeholder::Rule => rule.id.clone(),
        Placeholder::Limit => rule.limit.map(|l| l.max.to_string()).unwrap_or_default(),
        Placeholder::Window => rule
            .limit
            .and_then(|l| l.window_secs)
            .map(human_duration)
            .unwrap_or_default(),
    }
}

fn clip(s: &str) -> String {
    if s.chars().count() <= MAX_VALUE_CHARS {
        s.to_string()
    } else {
        let cut: String = s.chars().take(MAX_VALUE_CHARS).collect();
        format!("{cut}…")
    }
}

/// `3600` → `1h`, `90` → `90s`.
pub fn human_duration(secs: u64) -> String {
    for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60)] {
        if secs >= size && secs.is_multiple_of(size) {
            return format!("{}{unit}", secs / size);
        }
    }
    format!("{secs}s")
}
