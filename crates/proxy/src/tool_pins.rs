//! Pinned tool definitions, the proxy's side (issue 17): the mode
//! ([`ToolPins`]), the committed pin file of strict mode ([`PinFile`]),
//! and the check of one listed tool against its pin ([`check_tool`]). The
//! pins themselves live in the engine's state store (`warden_engine::pins`)
//! in trust-on-first-use mode, so replicas sharing it share them.

use crate::govern::PinVerdict;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use warden_engine::Engine;
use warden_engine::pins::{PinCheck, ToolPin, definition_digest, definition_of};

/// How warden treats tool definitions.
#[derive(Debug, Clone, Default)]
pub enum ToolPins {
    /// Definitions are not checked.
    Off,
    /// The first definition seen of each tool is pinned in the state
    /// store; a different one later is hidden and refused until approved.
    #[default]
    TrustOnFirstUse,
    /// Only the definitions of a committed pin file are trusted: a tool it
    /// lacks, or a different definition, is hidden and refused.
    Strict(Arc<PinFile>),
}

/// Two settings are the same when their modes are (a pin file is compared
/// by the path it was read from, in the config).
impl PartialEq for ToolPins {
    fn eq(&self, other: &ToolPins) -> bool {
        self.name() == other.name()
    }
}

impl ToolPins {
    /// As config and logs write it.
    pub fn name(&self) -> &'static str {
        match self {
            ToolPins::Off => "off",
            ToolPins::TrustOnFirstUse => "trust-on-first-use",
            ToolPins::Strict(_) => "strict",
        }
    }
}

/// A pin file (`warden tools pin > tools.lock`): the approved definition
/// of each tool, by server.
#[derive(Debug, Default)]
pub struct PinFile {
    digests: HashMap<(String, String), String>,
    /// Every server the file names, with its tools (for `warden lint --tools`).
    catalog: Vec<(String, Vec<String>)>,
}

/// The pin file's format (JSON).
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PinFileText {
    /// Format version: 1.
    pub warden_tool_pins: u32,
    pub tools: Vec<PinnedTool>,
}

/// One tool of a pin file.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PinnedTool {
    pub server: String,
    pub tool: String,
    pub digest: String,
    /// The definition (for reading and diffs; the digest decides).
    pub definition: Value,
}

/// Why a pin file could not be read.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("cannot read the pin file `{path}`: {why}")]
#[diagnostic(
    code(warden::pin_file),
    help(
        "write one with `warden tools pin --state FILE > tools.lock` (JSON: `warden_tool_pins`, `tools`)"
    )
)]
pub struct PinFileError {
    path: String,
    why: String,
}

impl PinFile {
    pub fn load(path: &Path) -> Result<PinFile, PinFileError> {
        let err = |why: String| PinFileError {
            path: path.display().to_string(),
            why,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let parsed: PinFileText = serde_json::from_str(&text).map_err(|e| err(e.to_string()))?;
        if parsed.warden_tool_pins != 1 {
            return Err(err(format!(
                "format version {} is not one this warden reads (1)",
                parsed.warden_tool_pins
            )));
        }
        Ok(PinFile::of(parsed.tools.iter().map(|t| {
            (t.server.clone(), t.tool.clone(), t.digest.clone())
        })))
    }

    fn of(pins: impl Iterator<Item = (String, String, String)>) -> PinFile {
        let mut out = PinFile::default();
        for (server, tool, digest) in pins {
            match out.catalog.iter_mut().find(|(s, _)| *s == server) {
                Some((_, tools)) => tools.push(tool.clone()),
                None => out.catalog.push((server.clone(), vec![tool.clone()])),
            }
            out.digests.insert((server, tool), digest);
        }
        out
    }

    /// The pinned digest of `tool` on `server`.
    pub fn digest(&self, server: &str, tool: &str) -> Option<&str> {
        self.digests
            .get(&(server.to_string(), tool.to_string()))
            .map(String::as_str)
    }

    /// Every server the file names and its tools.
    pub fn catalog(&self) -> &[(String, Vec<String>)] {
        &self.catalog
    }

    /// The pin file's text for `pins` (the pinned definitions; pending
    /// ones are not approved, so not written).
    pub fn text_of(pins: &[ToolPin]) -> String {
        let text = PinFileText {
            warden_tool_pins: 1,
            tools: pins
                .iter()
                .map(|p| PinnedTool {
                    server: p.server.clone(),
                    tool: p.tool.clone(),
                    digest: p.digest.clone(),
                    definition: serde_json::from_str(&p.definition).unwrap_or(Value::Null),
                })
                .collect(),
        };
        serde_json::to_string_pretty(&text).unwrap_or_default() + "\n"
    }
}

/// Where the pin file named by a flag or config is.
pub fn load_pin_file(path: &Path) -> Result<Arc<PinFile>, PinFileError> {
    PinFile::load(path).map(Arc::new)
}

/// One warning per rule or annotation declaration of `bundle` that names
/// a server other than `server`, or (on this server) a tool pattern none
/// of `tools` matches: such a rule never applies here.
pub fn unmatched_rules(
    bundle: &warden_engine::PolicyBundle,
    server: &str,
    tools: &[String],
) -> Vec<String> {
    use warden_lang::glob::glob_matches;
    let set = bundle.compiled();
    let mut out = Vec::new();
    let mut check = |what: String,
                     servers: Option<&Vec<String>>,
                     patterns: Option<&Vec<String>>| {
        if let Some(ss) = servers
            && !ss.iter().any(|p| glob_matches(p, server))
        {
            out.push(format!(
                "{what} names server {}, and this warden's upstream is `{server}`: it never applies\n  help: patterns match the name the server gives itself (`warden tools list -- COMMAND` shows it), or the one `--name` gives",
                ss.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", ")
            ));
            return;
        }
        for p in patterns.into_iter().flatten() {
            if !tools.iter().any(|t| glob_matches(p, t)) {
                out.push(format!(
                    "{what} names tool `{p}`, which `{server}` does not list: it never applies to it\n  help: `warden tools list -- COMMAND` shows the tools; `warden lint --tools tools.lock` checks policies against a pin file"
                ));
            }
        }
    };
    for r in set.rules() {
        check(
            format!("rule `{}` ({})", r.id, r.location),
            r.servers.as_ref(),
            r.tools.as_ref(),
        );
    }
    for a in set.stated_annotations() {
        check(
            format!("the annotation declaration at {}", a.location),
            a.servers.as_ref(),
            Some(&a.tools),
        );
    }
    out
}

/// One warning per rule or annotation declaration of `bundle` whose
/// `server` patterns match none of `servers` (`warden serve`'s
/// configured names): it never applies.
pub fn unmatched_servers(bundle: &warden_engine::PolicyBundle, servers: &[String]) -> Vec<String> {
    use warden_lang::glob::glob_matches;
    let set = bundle.compiled();
    let named = |patterns: &Vec<String>| {
        patterns
            .iter()
            .any(|p| servers.iter().any(|s| glob_matches(p, s)))
    };
    let list = servers
        .iter()
        .map(|s| format!("`{s}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut out = Vec::new();
    let rules = set.rules().iter().map(|r| {
        (
            format!("rule `{}` ({})", r.id, r.location),
            r.servers.as_ref(),
        )
    });
    let decls = set.stated_annotations().iter().map(|a| {
        (
            format!("the annotation declaration at {}", a.location),
            a.servers.as_ref(),
        )
    });
    for (what, patterns) in rules.chain(decls) {
        if let Some(ps) = patterns
            && !named(ps)
        {
            out.push(format!(
                "{what} names server {}, which this gateway does not serve ({list}): it never applies\n  help: patterns match the `name` of a `[[server]]`",
                ps.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", ")
            ));
        }
    }
    out
}

/// A definition not the pinned one: for the log and the metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub pinned: Option<String>,
    pub seen: String,
}

/// Checks `tool` (an object of a tools/list result) of `server`.
pub fn check_tool(
    pins: &ToolPins,
    engine: &Engine,
    server: &str,
    tool: &Value,
) -> (PinVerdict, Option<Change>) {
    let Some(name) = tool.get("name").and_then(Value::as_str) else {
        return (PinVerdict::Unchecked, None);
    };
    let definition = definition_of(tool);
    let digest = definition_digest(&definition);
    match pins {
        ToolPins::Off => (PinVerdict::Unchecked, None),
        ToolPins::Strict(file) => match file.digest(server, name) {
            Some(d) if d == digest => (PinVerdict::Pinned, None),
            Some(d) => (
                PinVerdict::DiffersFromPinFile,
                Some(Change {
                    pinned: Some(d.to_string()),
                    seen: digest,
                }),
            ),
            None => (
                PinVerdict::NotInPinFile,
                Some(Change {
                    pinned: None,
                    seen: digest,
                }),
            ),
        },
        ToolPins::TrustOnFirstUse => {
            match engine
                .state_store()
                .check_pin(server, name, &digest, &definition)
            {
                Ok(PinCheck::New | PinCheck::Same) => (PinVerdict::Pinned, None),
                Ok(PinCheck::Changed { pinned }) => (
                    if engine.state_store().in_process() {
                        PinVerdict::ChangedInMemory
                    } else {
                        PinVerdict::Changed
                    },
                    Some(Change {
                        pinned: Some(pinned),
                        seen: digest,
                    }),
                ),
                Err(e) => {
                    tracing::warn!("cannot check the pinned definition of `{name}`: {e}");
                    (PinVerdict::Unavailable, None)
                }
            }
        }
    }
}
