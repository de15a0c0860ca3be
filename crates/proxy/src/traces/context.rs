//! W3C trace context where MCP carries it: the `traceparent` and
//! `tracestate` keys of a request's `_meta` (reserved for it by the
//! 2026-07-28 specification) and, on HTTP, the headers of the same names.
//! Values are read and written by the SDK's W3C propagator only, so what
//! warden passes on is always well formed whatever a client sent.

use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use serde_json::{Map, Value};

/// The `_meta` key (and header) of the W3C `traceparent`.
pub(crate) const META_TRACEPARENT: &str = "traceparent";
/// The `_meta` key (and header) of the W3C `tracestate`.
pub(crate) const META_TRACESTATE: &str = "tracestate";

/// Reads a context out of a request's `_meta`.
struct MetaExtractor<'a>(Option<&'a Map<String, Value>>);

impl Extractor for MetaExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0?.get(key)?.as_str()
    }

    fn keys(&self) -> Vec<&str> {
        self.0
            .map(|m| m.keys().map(String::as_str).collect())
            .unwrap_or_default()
    }
}

/// Reads a context out of HTTP headers.
struct HeaderExtractor<'a>(&'a axum::http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key)?.to_str().ok()
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// Collects what the propagator writes.
#[derive(Default)]
struct Pairs(Vec<(&'static str, String)>);

impl Injector for Pairs {
    fn set(&mut self, key: &str, value: String) {
        let key = match key {
            META_TRACEPARENT => META_TRACEPARENT,
            META_TRACESTATE => META_TRACESTATE,
            _ => return,
        };
        if !value.is_empty() {
            self.0.push((key, value));
        }
    }
}

/// The parent a call's span continues: the client's valid context in
/// `_meta`, else none (a new trace).
pub(super) fn parent_of(meta: Option<&Map<String, Value>>) -> Context {
    TraceContextPropagator::new().extract(&MetaExtractor(meta))
}

/// The `traceparent` (and a non-empty `tracestate`) of `cx`'s span.
pub(super) fn pairs_of(cx: &Context) -> Vec<(&'static str, String)> {
    let mut pairs = Pairs::default();
    if cx.span().span_context().is_valid() {
        TraceContextPropagator::new().inject_context(cx, &mut pairs);
    }
    pairs.0
}

/// The trace context a request's `_meta` carries, as the headers that
/// say the same to an HTTP upstream; nothing when `_meta` has none that
/// is valid.
pub(crate) fn header_pairs(msg: &Value) -> Vec<(&'static str, String)> {
    let meta = crate::jsonrpc::meta(msg);
    pairs_of(&parent_of(meta))
}

/// The trace context of an HTTP request's `traceparent` / `tracestate`
/// headers, normalised; nothing when they carry none that is valid.
fn from_header(headers: &axum::http::HeaderMap) -> Vec<(&'static str, String)> {
    pairs_of(&TraceContextPropagator::new().extract(&HeaderExtractor(headers)))
}

/// A `tools/call` that came over HTTP with trace context in its headers
/// and none in its `_meta` gets the headers' context in `_meta`, where the
/// relay reads it (so it survives the federation's routing). `_meta`
/// wins when it has a `traceparent`, valid or not: it is what every
/// transport carries. Returns whether `msg` changed.
pub(crate) fn fold_header_into_meta(headers: &axum::http::HeaderMap, msg: &mut Value) -> bool {
    if msg.get("method").and_then(Value::as_str) != Some("tools/call")
        || crate::jsonrpc::meta(msg).is_some_and(|m| m.contains_key(META_TRACEPARENT))
        || !msg.get("params").is_some_and(Value::is_object)
    {
        return false;
    }
    let pairs = from_header(headers);
    if pairs.is_empty() {
        return false;
    }
    let Some(meta) = crate::jsonrpc::meta_mut(msg) else {
        return false;
    };
    meta.remove(META_TRACESTATE);
    for (key, value) in pairs {
        meta.insert(key.to_string(), Value::String(value));
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const PARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01";

    fn meta(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn a_valid_traceparent_in_meta_is_the_parent() {
        let m = meta(json!({"traceparent": PARENT, "tracestate": "vendor=abc"}));
        let cx = parent_of(Some(&m));
        let sc = cx.span().span_context().clone();
        assert!(sc.is_valid() && sc.is_remote() && sc.is_sampled());
        assert_eq!(
            sc.trace_id().to_string(),
            "0af7651916cd43dd8448eb211c80319c"
        );
        assert_eq!(
            pairs_of(&cx),
            vec![
                ("traceparent", PARENT.to_string()),
                ("tracestate", "vendor=abc".to_string())
            ]
        );
    }

    #[test]
    fn malformed_trace_context_is_no_parent() {
        for bad in [
            json!({"traceparent": "00-00000000000000000000000000000000-00f067aa0ba902b7-01"}),
            json!({"traceparent": "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01"}),
            json!({"traceparent": "zz-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01"}),
            json!({"traceparent": "00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7"}),
            json!({"traceparent": format!("{PARENT}\r\nx-injected: 1")}),
            json!({"traceparent": 7}),
            json!({"tracestate": "vendor=abc"}),
            json!({}),
        ] {
            let m = meta(bad.clone());
            assert!(
                !parent_of(Some(&m)).span().span_context().is_valid(),
                "{bad}"
            );
            assert!(header_pairs(&json!({"params": {"_meta": bad}})).is_empty());
        }
        assert!(!parent_of(None).span().span_context().is_valid());
    }

    #[test]
    fn headers_are_read_like_meta() {
        let mut h = axum::http::HeaderMap::new();
        h.insert("traceparent", PARENT.parse().unwrap());
        assert_eq!(from_header(&h), vec![("traceparent", PARENT.to_string())]);
        h.insert("traceparent", "garbage".parse().unwrap());
        assert!(from_header(&h).is_empty());
    }

    #[test]
    fn a_header_context_goes_into_meta_only_when_meta_has_none() {
        let mut h = axum::http::HeaderMap::new();
        h.insert("traceparent", PARENT.parse().unwrap());
        let call = |meta: Value| {
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                "params": {"name": "t", "_meta": meta}})
        };
        let mut m = call(json!({"tracestate": "stale=1", "k": "v"}));
        assert!(fold_header_into_meta(&h, &mut m));
        assert_eq!(
            m["params"]["_meta"],
            json!({"traceparent": PARENT, "k": "v"})
        );
        let mut no_meta = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "t"}});
        assert!(fold_header_into_meta(&h, &mut no_meta));
        assert_eq!(no_meta["params"]["_meta"]["traceparent"], PARENT);
        // `_meta` wins, even when what it has is not valid.
        let mut own = call(json!({"traceparent": "mine"}));
        assert!(!fold_header_into_meta(&h, &mut own));
        assert_eq!(own["params"]["_meta"]["traceparent"], "mine");
        // Only governed calls, and only a valid header.
        let mut list = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"});
        assert!(!fold_header_into_meta(&h, &mut list));
        assert!(list.get("params").is_none());
        h.insert("traceparent", "00-bad".parse().unwrap());
        let mut bad = call(json!({}));
        assert!(!fold_header_into_meta(&h, &mut bad));
        assert_eq!(bad["params"]["_meta"], json!({}));
    }
}
