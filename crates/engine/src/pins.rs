//! Pinned tool definitions (issue 17): what the state store keeps of each
//! upstream tool's definition, so that a definition that changes between
//! two `tools/list` (a "rug pull") is caught. The proxy computes a digest
//! of the canonical JSON of the definition ([`definition_digest`]); the
//! store keeps the first definition it sees (trust on first use) and the
//! latest different one, until an operator approves it.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The parts of a tool object of a `tools/list` result that make its
/// definition: what the agent reads and what calls are checked against.
const DEFINITION_KEYS: [&str; 6] = [
    "name",
    "title",
    "description",
    "inputSchema",
    "outputSchema",
    "annotations",
];

/// A tool's definition as pinned: the parts of [`DEFINITION_KEYS`] the
/// tool has, as canonical JSON (keys sorted at every depth).
pub fn definition_of(tool: &Value) -> String {
    let mut parts = serde_json::Map::new();
    for k in DEFINITION_KEYS {
        if let Some(v) = tool.get(k) {
            parts.insert(k.to_string(), v.clone());
        }
    }
    crate::args::canonical_json(&Value::Object(parts))
}

/// `sha256:<hex>` of a definition ([`definition_of`]).
pub fn definition_digest(definition: &str) -> String {
    format!(
        "sha256:{}",
        crate::log::chain::hex(&Sha256::digest(definition.as_bytes()))
    )
}

/// What the store said of a definition it was shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PinCheck {
    /// Not pinned before: pinned now (trust on first use).
    New,
    /// The pinned definition.
    Same,
    /// Another definition is pinned: this one waits for an operator's
    /// approval (`warden tools approve`) and is kept as the pending one.
    Changed { pinned: String },
}

/// One pinned tool, as `warden tools list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolPin {
    pub server: String,
    pub tool: String,
    pub digest: String,
    /// Canonical JSON ([`definition_of`]).
    pub definition: String,
    /// A different definition seen since, waiting for approval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<PendingDefinition>,
}

/// A definition seen after the pinned one, not approved yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingDefinition {
    pub digest: String,
    pub definition: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_digest_covers_the_definition_and_not_key_order_or_other_fields() {
        let a = json!({"name": "t", "description": "d", "inputSchema": {"type": "object", "properties": {"x": {}}},
                       "annotations": {"readOnlyHint": true}, "x-vendor": 1});
        let b = json!({"annotations": {"readOnlyHint": true}, "inputSchema": {"properties": {"x": {}}, "type": "object"},
                       "description": "d", "name": "t", "x-vendor": 2});
        assert_eq!(definition_of(&a), definition_of(&b));
        for changed in [
            json!({"name": "t", "description": "d!", "inputSchema": {"type": "object", "properties": {"x": {}}}, "annotations": {"readOnlyHint": true}}),
            json!({"name": "t", "description": "d", "inputSchema": {"type": "object"}, "annotations": {"readOnlyHint": true}}),
            json!({"name": "t", "description": "d", "inputSchema": {"type": "object", "properties": {"x": {}}}, "annotations": {"readOnlyHint": false}}),
            json!({"name": "t", "description": "d", "inputSchema": {"type": "object", "properties": {"x": {}}}, "annotations": {"readOnlyHint": true}, "outputSchema": {}}),
        ] {
            assert_ne!(
                definition_digest(&definition_of(&a)),
                definition_digest(&definition_of(&changed)),
                "{changed}"
            );
        }
        assert!(definition_digest("x").starts_with("sha256:"));
    }
}
