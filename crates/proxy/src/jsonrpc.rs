//! JSON-RPC 2.0 messages as plain `serde_json::Value`s: telling requests,
//! notifications and responses apart, and building the errors the proxy
//! answers with. Nothing here drops or reorders a field.

use serde_json::{Map, Value, json};

/// JSON-RPC's "invalid JSON" code.
pub const PARSE_ERROR: i64 = -32700;
/// JSON-RPC's "not a valid request object" code.
pub const INVALID_REQUEST: i64 = -32600;
/// JSON-RPC's "method not found" code.
pub const METHOD_NOT_FOUND: i64 = -32601;
/// JSON-RPC's "invalid method parameters" code.
pub const INVALID_PARAMS: i64 = -32602;
/// JSON-RPC's "internal error" code.
pub const INTERNAL_ERROR: i64 = -32603;
/// The code warden answers with when the upstream server cannot answer:
/// it is not running, it is restarting, or it exited with the request in
/// flight (an implementation-defined server error in JSON-RPC's range).
pub const UPSTREAM_UNAVAILABLE: i64 = -32001;

/// The prefix of every request id warden itself sends, to the client or to
/// the upstream server. A peer's own ids with this prefix are remapped.
pub const OWN_ID_PREFIX: &str = "warden:";

/// What a message is.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Request { id: Value, method: String },
    Notification { method: String },
    Response { id: Value },
}

/// Classifies a decoded message; `Err` says why it is no JSON-RPC message.
pub fn classify(msg: &Value) -> Result<Kind, &'static str> {
    let Some(obj) = msg.as_object() else {
        return Err(if msg.is_array() {
            "batches are not supported by MCP since 2025-06-18"
        } else {
            "a message must be a JSON object"
        });
    };
    match obj.get("method") {
        Some(Value::String(method)) => match obj.get("id") {
            None => Ok(Kind::Notification {
                method: method.clone(),
            }),
            Some(id @ (Value::String(_) | Value::Number(_))) => Ok(Kind::Request {
                id: id.clone(),
                method: method.clone(),
            }),
            Some(_) => Err("a request id must be a string or a number"),
        },
        Some(_) => Err("`method` must be a string"),
        None if obj.contains_key("result") || obj.contains_key("error") => Ok(Kind::Response {
            id: obj.get("id").cloned().unwrap_or(Value::Null),
        }),
        None => Err("a message needs a `method`, or a `result` or `error`"),
    }
}

/// A map key for an id: `1` and `"1"` stay different.
pub fn id_key(id: &Value) -> String {
    id.to_string()
}

/// An error response.
pub fn error(id: Value, code: i64, message: impl Into<String>, data: Option<Value>) -> Value {
    let mut err = Map::new();
    err.insert("code".into(), code.into());
    err.insert("message".into(), Value::String(message.into()));
    if let Some(data) = data {
        err.insert("data".into(), data);
    }
    json!({"jsonrpc": "2.0", "id": id, "error": err})
}

/// A success response.
pub fn result(id: Value, result: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "result": result})
}

/// A request.
pub fn request(id: Value, method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

/// A notification.
pub fn notification(method: &str, params: Option<Value>) -> Value {
    match params {
        Some(params) => json!({"jsonrpc": "2.0", "method": method, "params": params}),
        None => json!({"jsonrpc": "2.0", "method": method}),
    }
}

/// `params._meta` of a message, created if missing (only when `params` is
/// an object or absent; anything else is left alone and `None` returned).
pub fn meta_mut(msg: &mut Value) -> Option<&mut Map<String, Value>> {
    let obj = msg.as_object_mut()?;
    let params = obj
        .entry("params")
        .or_insert_with(|| Value::Object(Map::new()));
    let params = params.as_object_mut()?;
    params
        .entry("_meta")
        .or_insert_with(|| Value::Object(Map::new()))
        .as_object_mut()
}

/// `params._meta` of a message, if there is one.
pub fn meta(msg: &Value) -> Option<&Map<String, Value>> {
    msg.get("params")?.get("_meta")?.as_object()
}

/// Removes every `params._meta` key starting with `prefix`; returns how
/// many were removed. A `_meta` left empty is removed too, so a message
/// that carried only such keys reaches the upstream as the client would
/// have sent it without them.
pub fn strip_meta_prefix(msg: &mut Value, prefix: &str) -> usize {
    let Some(params) = msg.get_mut("params").and_then(Value::as_object_mut) else {
        return 0;
    };
    let Some(meta) = params.get_mut("_meta").and_then(Value::as_object_mut) else {
        return 0;
    };
    let before = meta.len();
    meta.retain(|k, _| !k.starts_with(prefix));
    let removed = before - meta.len();
    if removed > 0 && meta.is_empty() {
        params.remove("_meta");
    }
    removed
}

/// Whether a `_meta` key is one of warden's own: it starts with one of
/// `prefixes`, compared without regard to ASCII case or leading spaces
/// (`IO.WARDEN/provenance` is refused as `io.warden/provenance` is, in
/// case a backend compares keys loosely).
pub fn is_reserved_key(key: &str, prefixes: &[&str]) -> bool {
    let key = key.trim_start().to_ascii_lowercase();
    prefixes.iter().any(|p| key.starts_with(p))
}

/// Removes warden's reserved keys (see [`is_reserved_key`]) from every
/// `_meta` a client message carries: `params._meta` of a request or
/// notification, and `result._meta` and `error.data._meta` of a response
/// (the client's answers to the upstream's sampling, elicitation or roots
/// requests). Returns how many were removed; a `_meta` left empty is
/// removed too.
pub fn strip_reserved_meta(msg: &mut Value, prefixes: &[&str]) -> usize {
    let Some(obj) = msg.as_object_mut() else {
        return 0;
    };
    let mut removed = 0;
    for holder in ["params", "result"] {
        if let Some(h) = obj.get_mut(holder).and_then(Value::as_object_mut) {
            removed += strip_in(h, prefixes);
        }
    }
    if let Some(data) = obj
        .get_mut("error")
        .and_then(|e| e.get_mut("data"))
        .and_then(Value::as_object_mut)
    {
        removed += strip_in(data, prefixes);
    }
    removed
}

/// Where a message can carry `_meta` that [`strip_reserved_meta`] strips
/// (paths of object keys from the top, for `raw::Message::edit`).
pub(crate) const META_HOLDERS: &[&[&str]] = &[
    &["params", "_meta"],
    &["result", "_meta"],
    &["error", "data", "_meta"],
];

/// Whether [`strip_reserved_meta`] would remove anything from `msg`
/// (read only, so a message without such keys stays unchanged).
pub fn has_reserved_meta(msg: &Value, prefixes: &[&str]) -> bool {
    let reserved = |holder: Option<&Value>| {
        holder
            .and_then(|h| h.get("_meta"))
            .and_then(Value::as_object)
            .is_some_and(|m| m.keys().any(|k| is_reserved_key(k, prefixes)))
    };
    reserved(msg.get("params"))
        || reserved(msg.get("result"))
        || reserved(msg.get("error").and_then(|e| e.get("data")))
}

fn strip_in(holder: &mut Map<String, Value>, prefixes: &[&str]) -> usize {
    let Some(meta) = holder.get_mut("_meta").and_then(Value::as_object_mut) else {
        return 0;
    };
    let before = meta.len();
    meta.retain(|k, _| !is_reserved_key(k, prefixes));
    let removed = before - meta.len();
    if removed > 0 && meta.is_empty() {
        holder.remove("_meta");
    }
    removed
}

/// A method name as a lenient server might read it: without whitespace or
/// control characters, in ASCII lower case.
pub fn loose_method(method: &str) -> String {
    method
        .chars()
        .filter(|c| !c.is_whitespace() && !c.is_control() && *c != '\u{feff}' && *c != '\u{200b}')
        .collect::<String>()
        .to_ascii_lowercase()
}

/// The governed method `method` is a disguised spelling of (`Tools/call`,
/// `"tools/call "`), if it is one: equal to one of `governed` once read
/// loosely ([`loose_method`]) but not exactly.
pub fn disguised<'a>(method: &str, governed: &[&'a str]) -> Option<&'a str> {
    if governed.contains(&method) {
        return None;
    }
    let loose = loose_method(method);
    governed.iter().find(|g| **g == loose).copied()
}

/// Best effort: the top-level `id` of a message too large to decode, from
/// its first bytes. Serializers write `jsonrpc` and `id` first, so this
/// finds it in practice; `None` when it cannot tell.
pub fn sniff_id(head: &[u8]) -> Option<Value> {
    let text = String::from_utf8_lossy(head);
    let mut depth = 0i32;
    let mut in_string = false;
    let mut escaped = false;
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            i += 1;
            continue;
        }
        match b {
            b'{' | b'[' => depth += 1,
            b'}' | b']' => depth -= 1,
            b'"' => {
                if depth == 1 && text[i..].starts_with("\"id\"") {
                    let rest = text[i + 4..].trim_start();
                    let rest = rest.strip_prefix(':')?;
                    let mut values = serde_json::Deserializer::from_str(rest).into_iter::<Value>();
                    return match values.next() {
                        Some(Ok(v @ (Value::String(_) | Value::Number(_)))) => Some(v),
                        _ => None,
                    };
                }
                in_string = true;
            }
            _ => {}
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_messages() {
        assert_eq!(
            classify(&json!({"jsonrpc":"2.0","id":1,"method":"ping"})),
            Ok(Kind::Request {
                id: json!(1),
                method: "ping".into()
            })
        );
        assert_eq!(
            classify(&json!({"jsonrpc":"2.0","method":"notifications/initialized"})),
            Ok(Kind::Notification {
                method: "notifications/initialized".into()
            })
        );
        assert_eq!(
            classify(&json!({"jsonrpc":"2.0","id":"a","result":{}})),
            Ok(Kind::Response { id: json!("a") })
        );
        assert!(classify(&json!([1])).is_err());
        assert!(classify(&json!({"id":1})).is_err());
        assert!(classify(&json!({"id":null,"method":"x"})).is_err());
        assert!(classify(&json!(3)).is_err());
    }

    #[test]
    fn strips_only_the_prefix_and_drops_an_emptied_meta() {
        let mut m = json!({"params":{"_meta":{"io.warden/provenance":{"user":"x"},"io.warden/other":1,"progressToken":3}}});
        assert_eq!(strip_meta_prefix(&mut m, "io.warden/"), 2);
        assert_eq!(m, json!({"params":{"_meta":{"progressToken":3}}}));
        let mut m = json!({"params":{"_meta":{"io.warden/provenance":{}}, "name":"t"}});
        assert_eq!(strip_meta_prefix(&mut m, "io.warden/"), 1);
        assert_eq!(m, json!({"params":{"name":"t"}}));
        let mut m = json!({"params":{"_meta":{"io.wardenx":1}}});
        assert_eq!(strip_meta_prefix(&mut m, "io.warden/"), 0);
    }

    #[test]
    fn strips_reserved_keys_in_every_position_and_any_case() {
        let p = ["io.warden/", "warden/"];
        let mut m = json!({"id":1,"result":{"_meta":{"IO.WARDEN/provenance":{},"Warden/decision":1,"ok":2}}});
        assert_eq!(strip_reserved_meta(&mut m, &p), 2);
        assert_eq!(m, json!({"id":1,"result":{"_meta":{"ok":2}}}));
        let mut m = json!({"method":"x","params":{"_meta":{" io.warden/x":1}}});
        assert_eq!(strip_reserved_meta(&mut m, &p), 1);
        assert_eq!(m, json!({"method":"x","params":{}}));
        let mut m =
            json!({"id":1,"error":{"code":1,"message":"m","data":{"_meta":{"io.Warden/p":1}}}});
        assert_eq!(strip_reserved_meta(&mut m, &p), 1);
        let mut m = json!({"params":{"_meta":{"io.wardenx":1,"mywarden/x":1}}});
        assert_eq!(strip_reserved_meta(&mut m, &p), 0);
    }

    #[test]
    fn disguised_methods_are_recognised() {
        let g = ["tools/call", "tools/list"];
        assert_eq!(disguised("tools/call", &g), None);
        assert_eq!(disguised("Tools/call", &g), Some("tools/call"));
        assert_eq!(disguised("tools/call ", &g), Some("tools/call"));
        assert_eq!(disguised(" TOOLS/LIST\t", &g), Some("tools/list"));
        assert_eq!(disguised("tools/\u{200b}call", &g), Some("tools/call"));
        assert_eq!(disguised("tools/callx", &g), None);
        assert_eq!(disguised("resources/read", &g), None);
    }

    #[test]
    fn sniffs_the_top_level_id() {
        assert_eq!(
            sniff_id(br#"{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"#),
            Some(json!(42))
        );
        assert_eq!(
            sniff_id(br#"{"params":{"id":1,"x":"\"id\":3"},"id":"abc","#),
            Some(json!("abc"))
        );
        assert_eq!(sniff_id(br#"{"params":{"id":1,"#), None);
        assert_eq!(sniff_id(b"garbage"), None);
    }
}
