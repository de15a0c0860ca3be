//! What the engine is asked about: one tool call with the identity behind
//! it, its provenance, the tool's MCP annotations and its JSON arguments.
//! Transports (the proxy, `warden eval`, `warden test`) fill this in; the
//! engine knows nothing of MCP framing.

use serde::{Deserialize, Serialize};

/// Who is calling. `user` is whom the call acts for; `agent` and `model`
/// say what drives it on the agent path.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub user: String,
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Which of the attributes above warden verified (from a bearer token
    /// it checked) rather than took as declared (by the operator's flags or
    /// the client's `clientInfo`). Policies read it with `verified user`.
    #[serde(default, skip_serializing_if = "Verified::is_none")]
    pub verified: Verified,
}

/// Per identity attribute: true when warden verified it. All false (the
/// default) means every attribute is declared.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verified {
    #[serde(default)]
    pub user: bool,
    #[serde(default)]
    pub groups: bool,
    #[serde(default)]
    pub agent: bool,
    #[serde(default)]
    pub model: bool,
}

impl Verified {
    /// Nothing verified.
    pub fn is_none(&self) -> bool {
        *self == Verified::default()
    }
}

/// How the call arrived. On the agent path the proxy sets `via_agent` and
/// the server it came through; the human path leaves both unset.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provenance {
    #[serde(default)]
    pub via_agent: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via_server: Option<String>,
}

/// A tool's MCP annotations as the upstream reports them; absent hints take
/// the MCP specification's defaults, and a read-only tool is neither
/// destructive nor non-idempotent (see [`ToolAnnotations::resolved`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolAnnotations {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only_hint: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destructive_hint: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotent_hint: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_world_hint: Option<bool>,
}

/// Annotations with the MCP defaults applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResolvedAnnotations {
    pub read_only: bool,
    pub destructive: bool,
    pub idempotent: bool,
    pub open_world: bool,
}

impl ToolAnnotations {
    /// The MCP meaning (schema 2025-03-26 through 2025-11-25): readOnlyHint
    /// defaults to false, destructiveHint to true, idempotentHint to false,
    /// openWorldHint to true, and destructiveHint and idempotentHint are
    /// "meaningful only when readOnlyHint == false". A read-only tool
    /// changes nothing, so it is not destructive and calling it again has
    /// no further effect (it is idempotent), whatever those two hints say.
    /// Every absent hint takes the cautious reading.
    /// These hints with the operator's word (`stated`, from annotation
    /// declarations) in place of the upstream's wherever it is given. A
    /// tool the operator calls destructive, or not idempotent, is not
    /// read-only (MCP: a read-only tool is neither), even if another
    /// declaration calls it read-only: the cautious reading wins.
    pub fn stated_by(self, stated: &ToolAnnotations) -> ToolAnnotations {
        let mut out = self;
        if let Some(v) = stated.read_only_hint {
            out.read_only_hint = Some(v);
        }
        if let Some(v) = stated.destructive_hint {
            out.destructive_hint = Some(v);
            if v {
                out.read_only_hint = Some(false);
            }
        }
        if let Some(v) = stated.idempotent_hint {
            out.idempotent_hint = Some(v);
            if !v {
                out.read_only_hint = Some(false);
            }
        }
        if let Some(v) = stated.open_world_hint {
            out.open_world_hint = Some(v);
        }
        out
    }

    /// Whether no hint is given.
    pub fn is_empty(&self) -> bool {
        *self == ToolAnnotations::default()
    }

    pub fn resolved(self) -> ResolvedAnnotations {
        let read_only = self.read_only_hint.unwrap_or(false);
        ResolvedAnnotations {
            read_only,
            destructive: !read_only && self.destructive_hint.unwrap_or(true),
            idempotent: read_only || self.idempotent_hint.unwrap_or(false),
            open_world: self.open_world_hint.unwrap_or(true),
        }
    }
}

/// One tool call to decide.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CallContext {
    pub identity: Identity,
    pub session: String,
    #[serde(default)]
    pub provenance: Provenance,
    /// The upstream server's name as policies know it.
    pub server: String,
    pub tool: String,
    #[serde(default)]
    pub annotations: ToolAnnotations,
    /// The call's `arguments`, a JSON object (anything else is denied).
    #[serde(default = "empty_object")]
    pub arguments: serde_json::Value,
    /// Rules whose confirmation the person gave for this very call.
    #[serde(default)]
    pub confirmed: Vec<String>,
}

fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(Default::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hints(ro: Option<bool>, de: Option<bool>, id: Option<bool>) -> ResolvedAnnotations {
        ToolAnnotations {
            read_only_hint: ro,
            destructive_hint: de,
            idempotent_hint: id,
            open_world_hint: None,
        }
        .resolved()
    }

    /// Every combination of the three related hints, as docs/language.md
    /// tabulates them.
    #[test]
    fn finding_28_annotations_follow_the_mcp_schema() {
        let all = [None, Some(false), Some(true)];
        for de in all {
            for id in all {
                let r = hints(Some(true), de, id);
                assert!(
                    r.read_only && !r.destructive && r.idempotent,
                    "{de:?} {id:?}"
                );
                for ro in [None, Some(false)] {
                    let r = hints(ro, de, id);
                    assert!(!r.read_only);
                    assert_eq!(r.destructive, de.unwrap_or(true), "{ro:?} {de:?}");
                    assert_eq!(r.idempotent, id.unwrap_or(false), "{ro:?} {id:?}");
                }
            }
        }
        assert!(hints(None, None, None).open_world);
    }
}
