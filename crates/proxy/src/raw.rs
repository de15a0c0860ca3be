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
//! [`Message`] derefs to its `Value` (everything the relay reads), and
//! every change names what it changes ([`Message::edit`],
//! [`Message::set_id`]). An unchanged message is written as its text, with
//! no second decode; a changed one has only the members under the changed
//! paths written anew (an id it remapped, the `_meta` it set, a tools/list
//! it filtered), every other member copied from the text undecoded.
//! [`write_preserving`] (for transports that hold only a text and a changed
//! value, [`rewrite`]) finds what changed by comparing instead.
//!
//! A text with a key twice in one object is read as serde_json reads it
//! (the last wins), and [`Message::parse`] says it had one: the relay
//! writes such a client message anew from what it read, so an upstream
//! that reads the first key cannot see another method, tool or argument
//! than the one warden decided on.
//!
//! [`envelope`] reads just the top level of a message whose whole text
//! serde_json refuses (a number like `1e400`, nesting deeper than 128):
//! its members' texts are kept undecoded, so warden can still tell who the
//! message is for and relay it unchanged.

use serde::de::{Deserialize, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;
use std::cell::Cell;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

/// What was changed in a message since it was decoded: nothing (it is
/// written as its text), the parts under some paths (those are written
/// anew, every other member copied from the text), or anything (the whole
/// value compared with its text, [`write_preserving`]).
#[derive(Debug, Clone, PartialEq)]
enum Edits {
    None,
    Paths(Vec<Vec<String>>),
    All,
}

/// A decoded message and, when it came from a peer, its text.
///
/// Reading is free ([`Deref`] to the `Value`); changing goes through
/// [`Message::edit`] (naming the members changed) or [`Message::set_id`],
/// which track what changed, so an unchanged message is written out as its
/// text without decoding it again, and a changed one has only the named
/// members written anew (an empty path, the whole value: it is then
/// compared with the text member by member when written).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Message {
    value: Value,
    raw: Option<Arc<str>>,
    edits: Edits,
    /// Whether some object of `raw` had a key twice.
    duplicates: bool,
}

impl Message {
    /// A message decoded from `raw`.
    pub(crate) fn decoded(value: Value, raw: Arc<str>) -> Self {
        Message {
            value,
            raw: Some(raw),
            edits: Edits::None,
            duplicates: false,
        }
    }

    /// Decodes one frame's bytes (checked as UTF-8 once; the text is kept).
    /// `Err`: serde_json's reason the bytes are no JSON it decodes.
    ///
    /// A message with a key twice in one object (anywhere in it) is read
    /// as serde_json reads it, the last one winning, and
    /// [`Message::has_duplicate_keys`] says so: a peer that reads the first
    /// would see something else in the same text.
    pub(crate) fn parse(bytes: Vec<u8>) -> Result<Self, (Vec<u8>, serde_json::Error)> {
        match String::from_utf8(bytes) {
            Ok(text) => match decode(&text) {
                Ok((value, duplicates)) => {
                    let mut m = Message::decoded(value, text.into());
                    m.duplicates = duplicates;
                    Ok(m)
                }
                Err(e) => Err((text.into_bytes(), e)),
            },
            // Invalid UTF-8: serde_json says where (it refuses it in a
            // string; anywhere else it is no JSON either).
            Err(e) => {
                let bytes = e.into_bytes();
                match serde_json::from_slice::<Value>(&bytes) {
                    Ok(value) => Ok(Message::from(value)),
                    Err(e) => Err((bytes, e)),
                }
            }
        }
    }

    /// Whether some object of the text had a key twice (see [`Message::parse`]).
    pub(crate) fn has_duplicate_keys(&self) -> bool {
        self.duplicates
    }

    /// Writes the whole message anew from its value (nothing copied from
    /// the text): for a text peers could read differently than warden did.
    pub(crate) fn rewrite_whole(&mut self) {
        self.raw = None;
        self.edits = Edits::None;
    }

    /// The decoded value, without the text.
    pub(crate) fn into_value(self) -> Value {
        self.value
    }

    /// Whether the message will be written as the text it came as.
    #[cfg(test)]
    pub(crate) fn is_unchanged(&self) -> bool {
        self.raw.is_some() && self.edits == Edits::None
    }

    /// The value, to change only what is under `paths` (each a list of
    /// object keys from the top: `&["params", "_meta"]`); those members are
    /// written anew (an object among them compared member by member with
    /// its text), everything else is copied from the text. The caller must
    /// change nothing outside `paths`.
    pub(crate) fn edit(&mut self, paths: &[&[&str]]) -> &mut Value {
        if paths.iter().any(|p| p.is_empty()) {
            self.edits = Edits::All;
        }
        if let Edits::None = self.edits {
            self.edits = Edits::Paths(Vec::new());
        }
        if let Edits::Paths(marked) = &mut self.edits {
            marked.extend(
                paths
                    .iter()
                    .map(|p| p.iter().map(|s| s.to_string()).collect()),
            );
        }
        &mut self.value
    }

    /// Sets the top-level `id`, a change only when it differs.
    pub(crate) fn set_id(&mut self, id: Value) {
        if self.value.get("id") != Some(&id)
            && let Some(obj) = self.edit(&[&["id"]]).as_object_mut()
        {
            obj.insert("id".into(), id);
        }
    }
}

impl From<Value> for Message {
    fn from(value: Value) -> Self {
        Message {
            value,
            raw: None,
            edits: Edits::None,
            duplicates: false,
        }
    }
}

impl Deref for Message {
    type Target = Value;
    fn deref(&self) -> &Value {
        &self.value
    }
}

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(raw) = &self.raw else {
            return write!(f, "{}", self.value);
        };
        match &self.edits {
            Edits::None => f.write_str(raw.trim()),
            Edits::Paths(paths) => {
                let mut out = String::with_capacity(raw.len() + 64);
                let paths: Vec<&[String]> = paths.iter().map(Vec::as_slice).collect();
                write_paths(raw, &self.value, &paths, &mut out);
                f.write_str(&out)
            }
            Edits::All => {
                let mut out = String::with_capacity(raw.len() + 64);
                write_preserving(raw, &self.value, &mut out);
                f.write_str(&out)
            }
        }
    }
}

/// Decodes `text` as serde_json's `Value` does (the same depth limit, the
/// same numbers, the last of duplicate keys), and says whether any object
/// had a key twice. Unlike `Value`'s own decoding, no key is special
/// (serde_json re-parses the value of its private raw-value key).
fn decode(text: &str) -> Result<(Value, bool), serde_json::Error> {
    let duplicates = Cell::new(false);
    let mut de = serde_json::Deserializer::from_str(text);
    let value = Decode(&duplicates).deserialize(&mut de)?;
    de.end()?;
    Ok((value, duplicates.get()))
}

/// Builds a `Value`, noting duplicate keys.
#[derive(Clone, Copy)]
struct Decode<'a>(&'a Cell<bool>);

impl<'de> DeserializeSeed<'de> for Decode<'_> {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Decode<'_> {
    type Value = Value;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any valid JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(v) = seq.next_element_seed(self)? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut members = serde_json::Map::new();
        while let Some(k) = map.next_key::<String>()? {
            let v = map.next_value_seed(self)?;
            if members.insert(k, v).is_some() {
                self.0.set(true);
            }
        }
        Ok(Value::Object(members))
    }
}

/// Writes `value` to `out` where only the parts under `paths` (relative
/// to `value`) may differ from `raw`: a member no path enters is copied
/// from `raw` as it is, without decoding it; one a path ends at is
/// written with [`write_preserving`]; one a path goes through, member by
/// member again. Members of `raw` that `value` lacks are left out; members
/// `value` has and `raw` lacks are written anew.
fn write_paths(raw: &str, value: &Value, paths: &[&[String]], out: &mut String) {
    if paths.is_empty() {
        out.push_str(raw.trim());
        return;
    }
    if paths.iter().any(|p| p.is_empty()) {
        write_preserving(raw, value, out);
        return;
    }
    let (Value::Object(map), Ok(Members(members))) =
        (value, serde_json::from_str::<Members<'_>>(raw))
    else {
        write_preserving(raw, value, out);
        return;
    };
    out.push('{');
    for (i, (k, v)) in map.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_json(out, &Value::String(k.clone()));
        out.push(':');
        // The last of duplicate keys, as serde_json keeps it.
        match members.iter().rev().find(|(rk, _)| rk == k) {
            Some((_, rv)) => {
                let under: Vec<&[String]> = paths
                    .iter()
                    .filter(|p| p[0] == *k)
                    .map(|p| &p[1..])
                    .collect();
                write_paths(rv.get(), v, &under, out);
            }
            None => push_json(out, v),
        }
    }
    out.push('}');
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
        change(m.edit(&[&[]]));
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

    fn parsed(raw: &str) -> Message {
        Message::parse(raw.as_bytes().to_vec()).expect("JSON")
    }

    #[test]
    fn an_unchanged_message_is_written_as_its_text_and_a_same_id_changes_nothing() {
        let raw = r#"{"jsonrpc":"2.0", "id":1 ,"result":{"n":123456789012345678901234567890,"s":"\u00e9\/"}}"#;
        let mut m = parsed(raw);
        assert!(m.is_unchanged());
        m.set_id(json!(1));
        assert!(m.is_unchanged(), "setting the id it has is no change");
        assert_eq!(m.to_string(), raw);
        m.set_id(json!("1"));
        assert!(!m.is_unchanged());
        assert_eq!(
            m.to_string(),
            r#"{"jsonrpc":"2.0","id":"1","result":{"n":123456789012345678901234567890,"s":"\u00e9\/"}}"#
        );
    }

    #[test]
    fn edited_paths_are_written_anew_and_nothing_else() {
        let raw = r#"{"id":1,"method":"tools/call","params":{"name":"t", "arguments":{"big":123456789012345678901234567890},"_meta":{"progressToken":"p\u0031","io.warden/x":1}}}"#;
        let mut m = parsed(raw);
        let v = m.edit(&[&["params", "_meta"]]);
        crate::jsonrpc::strip_reserved_meta(v, &["io.warden/"]);
        v["params"]["_meta"]["io.warden/provenance"] = json!({"user": "u"});
        assert_eq!(
            m.to_string(),
            r#"{"id":1,"method":"tools/call","params":{"name":"t","arguments":{"big":123456789012345678901234567890},"_meta":{"progressToken":"p\u0031","io.warden/provenance":{"user":"u"}}}}"#
        );
        // A member a path names but the text lacks is written anew; one
        // the value lost is left out.
        let mut m = parsed(r#"{"id":1,"params":{"a":1E2}}"#);
        m.edit(&[&["params", "_meta"]])["params"]["_meta"] = json!({"k": 1});
        assert_eq!(
            m.to_string(),
            r#"{"id":1,"params":{"a":1E2,"_meta":{"k":1}}}"#
        );
        let mut m = parsed(r#"{"id":1,"params":{"a":1E2,"_meta":{"io.warden/p":1}}}"#);
        crate::jsonrpc::strip_reserved_meta(m.edit(crate::jsonrpc::META_HOLDERS), &["io.warden/"]);
        assert_eq!(m.to_string(), r#"{"id":1,"params":{"a":1E2}}"#);
    }

    #[test]
    fn decoding_matches_serde_json_and_notes_duplicate_keys() {
        for text in [
            r#"{"a":[1,-2,3.5,1E2,-0,123456789012345678901234567890],"b":{"c":null,"d":true},"s":"\ud83d\ude00\u0000"}"#,
            r#"[{"x":{}},[],"",0]"#,
            "  {\"a\" :\t1 }\r\n",
        ] {
            let (v, dup) = decode(text).expect("decodes");
            assert_eq!(v, serde_json::from_str::<Value>(text).expect("decodes"));
            assert!(!dup, "{text}");
        }
        for text in [
            r#"{"a":1,"a":2}"#,
            r#"{"p":{"_meta":{"io.warden/x":1},"_meta":{}}}"#,
            r#"[{"k":1,"k":1}]"#,
            r#"{"\u0061":1,"a":2}"#,
        ] {
            let (v, dup) = decode(text).expect("decodes");
            assert_eq!(v, serde_json::from_str::<Value>(text).expect("decodes"));
            assert!(dup, "{text}");
        }
        // What serde_json refuses, this refuses too.
        let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
        for text in [
            "{\"x\":1e400}",
            deep.as_str(),
            "{\"a\":1} x",
            "{\"a\":\"\\ud800\"}",
        ] {
            assert_eq!(
                decode(text).is_ok(),
                serde_json::from_str::<Value>(text).is_ok(),
                "{text}"
            );
        }
        assert!(decode("{\"x\":1e400}").is_err());
        assert!(decode(&deep).is_err());
        // serde_json's private raw-value key is an ordinary key here.
        let (v, _) = decode(r#"{"$serde_json::private::RawValue":"{\"a\":1}"}"#).expect("decodes");
        assert_eq!(v, json!({"$serde_json::private::RawValue": "{\"a\":1}"}));
    }

    #[test]
    fn a_message_with_a_key_twice_can_be_written_as_it_was_read() {
        let mut m =
            parsed(r#"{"id":1,"method":"tools/call","method":"x/echo","params":{"n":1.50}}"#);
        assert!(m.has_duplicate_keys());
        m.rewrite_whole();
        assert_eq!(
            m.to_string(),
            r#"{"id":1,"method":"x/echo","params":{"n":1.5}}"#
        );
        assert!(!parsed(r#"{"id":1,"method":"x"}"#).has_duplicate_keys());
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
