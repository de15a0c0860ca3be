//! Messages as they came: a decoded JSON-RPC message together with the
//! exact text it was decoded from, so that what warden relays without
//! changing it reaches the other side byte for byte.
//!
//! serde_json decodes numbers into `u64`/`i64`/`f64`, so re-serialising a
//! `Value` changes `123456789012345678901234567890` into
//! `1.2345678901234568e29` and a long decimal into its nearest `f64`; it
//! also rewrites escapes and spacing. serde_json's `arbitrary_precision`
//! feature would keep numbers, but Cargo unifies features across the
//! workspace, and that feature breaks the `#[serde(untagged)]` enums rmcp
//! decodes request ids with. So the relay keeps the text instead: a
//! [`Message`] derefs to its `Value` (everything the relay reads and
//! changes), and its `Display` writes the value reusing the original bytes
//! of every member that is unchanged ([`write_preserving`]). Only the parts
//! warden changed (an id it remapped, the `_meta` it set, a tools/list it
//! filtered) are serialised anew.
//!
//! [`envelope`] reads just the top level of a message whose whole text
//! serde_json refuses (a number like `1e400`, nesting deeper than 128):
//! its members' texts are kept undecoded, so warden can still tell who the
//! message is for and relay it unchanged.

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

/// A decoded message and, when it came from a peer, its text.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Message {
    value: Value,
    raw: Option<Arc<str>>,
}

impl Message {
    /// A message decoded from `raw`.
    pub(crate) fn decoded(value: Value, raw: Arc<str>) -> Self {
        Message {
            value,
            raw: Some(raw),
        }
    }

    /// The decoded value, without the text.
    pub(crate) fn into_value(self) -> Value {
        self.value
    }
}

impl From<Value> for Message {
    fn from(value: Value) -> Self {
        Message { value, raw: None }
    }
}

impl Deref for Message {
    type Target = Value;
    fn deref(&self) -> &Value {
        &self.value
    }
}

impl DerefMut for Message {
    fn deref_mut(&mut self) -> &mut Value {
        &mut self.value
    }
}

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.raw {
            Some(raw) => {
                let mut out = String::with_capacity(raw.len() + 64);
                write_preserving(raw, &self.value, &mut out);
                f.write_str(&out)
            }
            None => write!(f, "{}", self.value),
        }
    }
}

/// `value` (decoded from `text` and then changed) as text, with every
/// unchanged part as it was in `text`: for transports that rewrite one
/// member (an id, a progress token) of a message they pass on.
pub(crate) fn rewrite(text: &str, value: &Value) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    write_preserving(text, value, &mut out);
    out
}

/// Writes `value` to `out`, reusing `raw` (the text of the JSON value
/// `value` was decoded from, before it was changed) wherever the two still
/// agree: a part whose text decodes to what `value` holds there is copied
/// as it is; an object or array that changed is written member by member.
pub(crate) fn write_preserving(raw: &str, value: &Value, out: &mut String) {
    // Unchanged: the common case, one decode of the text.
    if serde_json::from_str::<Value>(raw).is_ok_and(|old| &old == value) {
        out.push_str(raw.trim());
        return;
    }
    match value {
        Value::Object(map) => {
            if let Ok(Members(members)) = serde_json::from_str::<Members<'_>>(raw) {
                out.push('{');
                for (i, (k, v)) in map.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    push_json(out, &Value::String(k.clone()));
                    out.push(':');
                    // The last of duplicate keys, as serde_json keeps it.
                    match members.iter().rev().find(|(rk, _)| rk == k) {
                        Some((_, rv)) => write_preserving(rv.get(), v, out),
                        None => push_json(out, v),
                    }
                }
                out.push('}');
                return;
            }
        }
        Value::Array(items) => {
            if let Ok(old) = serde_json::from_str::<Vec<&RawValue>>(raw)
                && old.len() == items.len()
            {
                out.push('[');
                for (i, (rv, v)) in old.iter().zip(items).enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_preserving(rv.get(), v, out);
                }
                out.push(']');
                return;
            }
        }
        _ => {}
    }
    push_json(out, value);
}

fn push_json(out: &mut String, v: &Value) {
    out.push_str(&v.to_string());
}

/// The members of a JSON object, in order, each value as its text.
struct Members<'a>(Vec<(String, &'a RawValue)>);

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut members = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, &'de RawValue>()? {
                    members.push((k, v));
                }
                Ok(Members(members))
            }
        }
        d.deserialize_map(V)
    }
}

/// The top level of a message serde_json cannot decode whole.
#[derive(Debug)]
pub(crate) struct Envelope<'a> {
    members: Vec<(String, &'a RawValue)>,
}

/// Reads the top-level members of `text` without decoding their values
/// (no depth limit, no number range: the text only has to be JSON);
/// `None` when it is no JSON object.
pub(crate) fn envelope(text: &str) -> Option<Envelope<'_>> {
    serde_json::from_str::<Members<'_>>(text)
        .ok()
        .map(|Members(members)| Envelope { members })
}

impl Envelope<'_> {
    fn member(&self, key: &str) -> Option<&RawValue> {
        self.members
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| *v)
    }

    /// The `id`, when it is a string or a number serde_json can decode.
    pub(crate) fn id(&self) -> Option<Value> {
        let v: Value = serde_json::from_str(self.member("id")?.get()).ok()?;
        matches!(v, Value::String(_) | Value::Number(_)).then_some(v)
    }

    /// Whether this is a response (a `result` or `error`, no `method`).
    pub(crate) fn is_response(&self) -> bool {
        self.member("method").is_none()
            && (self.member("result").is_some() || self.member("error").is_some())
    }

    /// The message's text with its `id` replaced by `id`, every other
    /// member as it came.
    pub(crate) fn with_id(&self, id: &Value) -> String {
        let mut out = String::from("{");
        for (i, (k, v)) in self.members.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            push_json(&mut out, &Value::String(k.clone()));
            out.push(':');
            if k == "id" {
                push_json(&mut out, id);
            } else {
                out.push_str(v.get());
            }
        }
        out.push('}');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn relayed(raw: &str, change: impl FnOnce(&mut Value)) -> String {
        let mut m = Message::decoded(serde_json::from_str(raw).unwrap(), Arc::from(raw));
        change(&mut m);
        m.to_string()
    }

    #[test]
    fn an_unchanged_message_is_its_text() {
        let raw = r#"{"jsonrpc":"2.0", "id":1,"result":{"n":123456789012345678901234567890,"d":0.1000000000000000000000000001,"s":"\u00e9\/"}}"#;
        assert_eq!(relayed(raw, |_| {}), raw);
    }

    #[test]
    fn only_changed_members_are_written_anew() {
        let raw =
            r#"{"jsonrpc":"2.0","id":"warden:1","result":{"n":123456789012345678901234567890}}"#;
        let out = relayed(raw, |v| v["id"] = json!(7));
        assert_eq!(
            out,
            r#"{"jsonrpc":"2.0","id":7,"result":{"n":123456789012345678901234567890}}"#
        );
        let raw = r#"{"id":1,"method":"tools/call","params":{"name":"t","arguments":{"big":1e400,"x":[1.10,2]}}}"#;
        // 1e400 does not decode; the relay never builds such a message.
        assert!(serde_json::from_str::<Value>(raw).is_err());
        let raw = r#"{"id":1,"method":"tools/call","params":{"name":"t","arguments":{"big":123456789012345678901234567890,"x":[1.10,2]}}}"#;
        let out = relayed(raw, |v| {
            v["params"]["_meta"] = json!({"io.warden/provenance": {"user": "u"}});
        });
        assert_eq!(
            out,
            r#"{"id":1,"method":"tools/call","params":{"name":"t","arguments":{"big":123456789012345678901234567890,"x":[1.10,2]},"_meta":{"io.warden/provenance":{"user":"u"}}}}"#
        );
    }

    #[test]
    fn removed_members_and_changed_arrays() {
        let raw = r#"{"a":[1.0,2.50,{"k":1e2}],"b":{"c":1,"d":2}}"#;
        let out = relayed(raw, |v| {
            v["b"].as_object_mut().unwrap().remove("d");
            v["a"][2]["k2"] = json!(true);
        });
        assert_eq!(out, r#"{"a":[1.0,2.50,{"k":1e2,"k2":true}],"b":{"c":1}}"#);
    }

    #[test]
    fn an_envelope_reads_what_serde_json_cannot() {
        let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
        let text =
            format!(r#"{{"jsonrpc":"2.0","id":"warden:3","result":{{"x":1e400,"deep":{deep}}}}}"#);
        assert!(serde_json::from_str::<Value>(&text).is_err());
        let e = envelope(&text).expect("an object");
        assert_eq!(e.id(), Some(json!("warden:3")));
        assert!(e.is_response());
        assert_eq!(
            e.with_id(&json!(9)),
            format!(r#"{{"jsonrpc":"2.0","id":9,"result":{{"x":1e400,"deep":{deep}}}}}"#)
        );
        assert!(envelope("[1]").is_none());
        assert!(envelope("{\"id\":").is_none());
    }
}
