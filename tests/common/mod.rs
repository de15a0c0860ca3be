//! Helpers shared by the end-to-end tests that drive `warden proxy` with a
//! real rmcp client: calling a tool and reading its result. Each test file
//! uses some of them (`mod common;`).
#![allow(dead_code)]

use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::{RoleClient, RunningService, Service};
use serde_json::Value;

pub type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

pub mod http_warden;
pub mod otlp;
pub mod raw_proxy;

/// Calls `tool` with `args` (a JSON object) through `client`.
pub async fn call<S: Service<RoleClient>>(
    client: &RunningService<RoleClient, S>,
    tool: &str,
    args: Value,
) -> Res<CallToolResult> {
    let params = CallToolRequestParams::new(tool.to_string())
        .with_arguments(args.as_object().cloned().unwrap_or_default());
    Ok(client.call_tool(params).await?)
}

/// The text content of a tool result, one block per line.
pub fn text(result: &CallToolResult) -> String {
    result
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The call went through: its result is not a tool error.
pub fn assert_allowed(r: &CallToolResult, what: &str) {
    assert_ne!(r.is_error, Some(true), "{what}: {}", text(r));
}

/// Folds each outcome line of the decision log (written after the call,
/// behind its write-ahead decision line) into its decision line, so a test
/// sees one line per decided call.
pub fn merge_outcomes(lines: Vec<Value>) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    for l in lines {
        if l["event"] == "outcome"
            && let Some(d) = out
                .iter_mut()
                .rev()
                .find(|d| d["decision_id"] == l["decision_id"])
        {
            d["upstream"] = l["upstream"].clone();
            continue;
        }
        out.push(l);
    }
    out
}

/// Writes the ed25519 key pair of `seed` as PEM files in `dir`:
/// (`NAME.key`, PKCS#8; `NAME.pub`, SPKI).
pub fn key_pair(
    dir: &std::path::Path,
    name: &str,
    seed: u8,
) -> Res<(std::path::PathBuf, std::path::PathBuf)> {
    use ed25519_dalek::pkcs8::{EncodePrivateKey, EncodePublicKey, spki::der::pem::LineEnding};
    let sk = ed25519_dalek::SigningKey::from_bytes(&[seed; 32]);
    let private = dir.join(format!("{name}.key"));
    let public = dir.join(format!("{name}.pub"));
    std::fs::write(&private, sk.to_pkcs8_pem(LineEnding::LF)?.as_bytes())?;
    std::fs::write(
        &public,
        sk.verifying_key().to_public_key_pem(LineEnding::LF)?,
    )?;
    Ok((private, public))
}
