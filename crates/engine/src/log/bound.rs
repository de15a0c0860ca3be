//! Argument values too big to log whole: a value (at any depth) whose
//! JSON text is longer than the log's bound is logged as
//! `{"warden.elided": {"sha256": ..., "bytes": N, "prefix": ...}}`: the
//! SHA-256 of its text (a string's own UTF-8, anything else its JSON as
//! the log would have written it), its size in bytes and its first 64
//! characters. A 200 KB file written through an agent then costs the log
//! a few hundred bytes, and two calls with the same content still show the
//! same hash. Redaction runs first, so a redacted value is never hashed.

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

/// The default bound on one argument value in the log, in bytes.
pub const DEFAULT_MAX_VALUE_BYTES: usize = 4096;
/// The smallest bound warden takes (below it, the stand-in is larger than
/// what it stands for).
pub const MIN_MAX_VALUE_BYTES: usize = 256;
/// The key of the object that stands for an elided value.
pub const ELIDED_KEY: &str = "warden.elided";
const PREFIX_CHARS: usize = 64;

/// `arguments` with each value longer than `max` bytes elided; the
/// arguments object itself is kept (its values are what is bounded).
pub fn bound_arguments(arguments: Value, max: usize) -> Value {
    match arguments {
        Value::Object(map) => {
            Value::Object(map.into_iter().map(|(k, v)| (k, walk(v, max).0)).collect())
        }
        other => walk(other, max).0,
    }
}

/// The value bounded, and about how many bytes its JSON text takes.
fn walk(v: Value, max: usize) -> (Value, usize) {
    match v {
        Value::String(s) => {
            let n = s.len() + 2;
            if n > max {
                let text = s;
                elided(text.as_bytes(), &text)
            } else {
                (Value::String(s), n)
            }
        }
        Value::Array(items) => {
            let mut total = 2;
            let out: Vec<Value> = items
                .into_iter()
                .map(|i| {
                    let (v, n) = walk(i, max);
                    total += n + 1;
                    v
                })
                .collect();
            let v = Value::Array(out);
            if total > max {
                elided_json(&v)
            } else {
                (v, total)
            }
        }
        Value::Object(map) => {
            let mut total = 2;
            let out: Map<String, Value> = map
                .into_iter()
                .map(|(k, v)| {
                    let (v, n) = walk(v, max);
                    total += k.len() + 3 + n + 1;
                    (k, v)
                })
                .collect();
            let v = Value::Object(out);
            if total > max {
                elided_json(&v)
            } else {
                (v, total)
            }
        }
        other => {
            let n = other.to_string().len();
            (other, n)
        }
    }
}

fn elided_json(v: &Value) -> (Value, usize) {
    let text = v.to_string();
    elided(text.as_bytes(), &text)
}

/// The stand-in for a value whose text is `text`.
fn elided(bytes: &[u8], text: &str) -> (Value, usize) {
    let sha = super::chain::hex(&Sha256::digest(bytes));
    let prefix: String = text.chars().take(PREFIX_CHARS).collect();
    let v = json!({ ELIDED_KEY: { "sha256": sha, "bytes": bytes.len(), "prefix": prefix } });
    let n = v.to_string().len();
    (v, n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_big_value_is_its_hash_size_and_prefix_and_small_ones_stay() {
        let content = "x".repeat(200_000);
        let args = json!({"path": "/notes.txt", "content": content, "n": 3});
        let out = bound_arguments(args, DEFAULT_MAX_VALUE_BYTES);
        assert_eq!(out["path"], "/notes.txt");
        assert_eq!(out["n"], 3);
        let e = &out["content"][ELIDED_KEY];
        assert_eq!(e["bytes"], 200_000);
        assert_eq!(e["prefix"].as_str().unwrap().len(), 64);
        let want: String = Sha256::digest(content.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(e["sha256"], want.as_str());
        assert!(out.to_string().len() < 400, "{}", out.to_string().len());
    }

    #[test]
    fn nested_and_many_small_values_are_bounded_too() {
        let big = "y".repeat(5_000);
        let out = bound_arguments(json!({"files": [{"name": "a", "body": big}]}), 1024);
        assert_eq!(out["files"][0]["name"], "a");
        assert!(out["files"][0]["body"][ELIDED_KEY].is_object());
        // Ten thousand small items: no one is too big, the list is.
        let many: Vec<u32> = (0..10_000).collect();
        let out = bound_arguments(json!({"ids": many}), 1024);
        assert!(out["ids"][ELIDED_KEY]["bytes"].as_u64().unwrap() > 1024);
        // Within the bound, nothing changes.
        let small = json!({"a": [1, 2, {"b": "c"}]});
        assert_eq!(bound_arguments(small.clone(), 1024), small);
    }
}
