//! The federated endpoint's names: how a server's tool, prompt and
//! resource names are shown on `/mcp` and read back, and the list cursor
//! that pages across servers.
//!
//! Names must be reversible without a table, so that a name a client kept
//! from an earlier session still reaches the same server:
//! - a tool or prompt `t` of server `s` is `s<sep>t` (`<sep>` is `__` by
//!   default); a server name never contains the separator (the config
//!   checks it), so the first separator ends the server name, and a tool
//!   name may contain the separator itself;
//! - a resource URI (or URI template) `u` of server `s` is `s+u`: a server
//!   name is a valid URI scheme prefix (letters, digits, `_`, `.`, `-`) and
//!   never contains `+`, so the first `+` ends it and `u` keeps its own
//!   scheme (`svn+ssh://...` included) and template variables.

use base64::Engine as _;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Joins and splits federated names for one set of servers.
#[derive(Debug, Clone)]
pub(crate) struct Namer {
    separator: String,
}

/// The character between a server name and a resource URI.
const URI_JOIN: char = '+';

impl Namer {
    pub(crate) fn new(separator: impl Into<String>) -> Self {
        Namer {
            separator: separator.into(),
        }
    }

    pub(crate) fn separator(&self) -> &str {
        &self.separator
    }

    /// The federated name of a tool or prompt.
    pub(crate) fn join_name(&self, server: &str, name: &str) -> String {
        format!("{server}{}{name}", self.separator)
    }

    /// The server and the upstream's own name behind a federated tool or
    /// prompt name; `None` when the name has no separator or an empty part.
    pub(crate) fn split_name<'a>(&self, name: &'a str) -> Option<(&'a str, &'a str)> {
        let (server, rest) = name.split_once(self.separator.as_str())?;
        (!server.is_empty() && !rest.is_empty()).then_some((server, rest))
    }

    /// The federated form of a resource URI or URI template.
    pub(crate) fn join_uri(&self, server: &str, uri: &str) -> String {
        format!("{server}{URI_JOIN}{uri}")
    }

    /// The server and the upstream's own URI behind a federated one.
    pub(crate) fn split_uri<'a>(&self, uri: &'a str) -> Option<(&'a str, &'a str)> {
        let (server, rest) = uri.split_once(URI_JOIN)?;
        (!server.is_empty() && !rest.is_empty()).then_some((server, rest))
    }
}

/// Where a federated list goes on: each server that has more, with the
/// upstream's own cursor. An empty cursor set means the list is complete.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Cursors(pub(crate) BTreeMap<String, String>);

impl Cursors {
    /// The opaque cursor the client gets: base64url of a JSON object
    /// `{server: upstream cursor}`. Opaque so that clients do not build
    /// their own; it carries nothing a client could not have been given by
    /// the servers themselves.
    pub(crate) fn encode(&self) -> Option<String> {
        if self.0.is_empty() {
            return None;
        }
        let map: Map<String, Value> = self
            .0
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        let text = Value::Object(map).to_string();
        Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text))
    }

    /// Reads a cursor this endpoint gave out; `None` for anything else.
    pub(crate) fn decode(cursor: &str) -> Option<Cursors> {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(cursor)
            .ok()?;
        let Value::Object(map) = serde_json::from_slice::<Value>(&bytes).ok()? else {
            return None;
        };
        let mut out = BTreeMap::new();
        for (k, v) in map {
            out.insert(k, v.as_str()?.to_string());
        }
        (!out.is_empty()).then_some(Cursors(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_names_round_trip_and_split_at_the_first_separator() {
        let n = Namer::new("__");
        assert_eq!(n.join_name("lims", "get_sample"), "lims__get_sample");
        assert_eq!(
            n.split_name("lims__get_sample"),
            Some(("lims", "get_sample"))
        );
        // A tool name may hold the separator; the server name may not.
        assert_eq!(n.split_name("lims__a__b"), Some(("lims", "a__b")));
        assert_eq!(n.split_name("get_sample"), None);
        assert_eq!(n.split_name("__get"), None);
        assert_eq!(n.split_name("lims__"), None);
        let dot = Namer::new(".");
        assert_eq!(dot.split_name("lims.get.x"), Some(("lims", "get.x")));
    }

    #[test]
    fn uris_keep_their_own_scheme_and_template() {
        let n = Namer::new("__");
        let u = n.join_uri("results", "svn+ssh://host/{path}");
        assert_eq!(u, "results+svn+ssh://host/{path}");
        assert_eq!(n.split_uri(&u), Some(("results", "svn+ssh://host/{path}")));
        assert_eq!(n.split_uri("file:///etc/passwd"), None);
        assert_eq!(n.split_uri("+file:///x"), None);
    }

    #[test]
    fn cursors_round_trip_and_refuse_what_warden_did_not_give() {
        let mut c = Cursors::default();
        assert_eq!(c.encode(), None);
        c.0.insert("lims".into(), "page-2".into());
        c.0.insert("genomics".into(), "".into());
        let text = c.encode().unwrap();
        assert_eq!(Cursors::decode(&text), Some(c));
        assert_eq!(Cursors::decode("not base64 !"), None);
        let not_object = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("[1]");
        assert_eq!(Cursors::decode(&not_object), None);
        let not_string = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(r#"{"a":1}"#);
        assert_eq!(Cursors::decode(&not_string), None);
    }
}
