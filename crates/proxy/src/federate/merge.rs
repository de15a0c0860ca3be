//! What the federated endpoint makes of several servers' answers: one
//! initialize result, one page of a list, and the resource URIs inside
//! results and notifications, shown in their federated form.
//!
//! Pure functions over JSON values; `federate` decides what to ask whom.

use super::names::{Cursors, Namer};
use serde_json::{Map, Value, json};

/// The lists `/mcp` merges, with the member that names an item and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ListKind {
    Tools,
    Prompts,
    Resources,
    ResourceTemplates,
}

impl ListKind {
    pub(crate) fn of_method(method: &str) -> Option<ListKind> {
        Some(match method {
            "tools/list" => ListKind::Tools,
            "prompts/list" => ListKind::Prompts,
            "resources/list" => ListKind::Resources,
            "resources/templates/list" => ListKind::ResourceTemplates,
            _ => return None,
        })
    }

    /// The member of the result holding the items.
    pub(crate) fn items_key(self) -> &'static str {
        match self {
            ListKind::Tools => "tools",
            ListKind::Prompts => "prompts",
            ListKind::Resources => "resources",
            ListKind::ResourceTemplates => "resourceTemplates",
        }
    }

    /// The capability a server must have for the list to be asked of it.
    pub(crate) fn capability(self) -> &'static str {
        match self {
            ListKind::Tools => "tools",
            ListKind::Prompts => "prompts",
            ListKind::Resources | ListKind::ResourceTemplates => "resources",
        }
    }
}

/// One server's answer to a fanned-out list: its result, or why it is left
/// out.
#[derive(Debug, Clone)]
pub(crate) struct ServerPage {
    pub(crate) server: String,
    pub(crate) result: Result<Value, String>,
}

/// Merges one page of every server asked into one page: names and URIs in
/// federated form, in server order, and the cursor for the servers that
/// have more. A server whose answer failed is left out (the caller logs
/// it); `left_out` lists them.
pub(crate) fn merge_list(kind: ListKind, namer: &Namer, pages: Vec<ServerPage>) -> MergedList {
    let mut items = Vec::new();
    let mut next = Cursors::default();
    let mut left_out = Vec::new();
    for page in pages {
        let result = match page.result {
            Ok(r) => r,
            Err(why) => {
                left_out.push((page.server, why));
                continue;
            }
        };
        if let Some(list) = result.get(kind.items_key()).and_then(Value::as_array) {
            for item in list {
                let mut item = item.clone();
                rename_item(kind, namer, &page.server, &mut item);
                items.push(item);
            }
        }
        if let Some(c) = result.get("nextCursor").and_then(Value::as_str) {
            next.0.insert(page.server.clone(), c.to_string());
        }
    }
    let mut result = Map::new();
    result.insert(kind.items_key().to_string(), Value::Array(items));
    if let Some(c) = next.encode() {
        result.insert("nextCursor".into(), Value::String(c));
    }
    MergedList {
        result: Value::Object(result),
        left_out,
    }
}

/// A merged page and the servers left out of it, with why.
#[derive(Debug)]
pub(crate) struct MergedList {
    pub(crate) result: Value,
    pub(crate) left_out: Vec<(String, String)>,
}

fn rename_item(kind: ListKind, namer: &Namer, server: &str, item: &mut Value) {
    let Some(obj) = item.as_object_mut() else {
        return;
    };
    let key = match kind {
        ListKind::Tools | ListKind::Prompts => "name",
        ListKind::Resources => "uri",
        ListKind::ResourceTemplates => "uriTemplate",
    };
    if let Some(Value::String(v)) = obj.get_mut(key) {
        *v = match kind {
            ListKind::Tools | ListKind::Prompts => namer.join_name(server, v),
            ListKind::Resources | ListKind::ResourceTemplates => namer.join_uri(server, v),
        };
    }
}

/// The resource URIs inside a result or notification of `server`, in
/// federated form, so that the client can read or subscribe to what it
/// was shown: `contents[].uri` (resources/read), `uri` (resources/updated),
/// resource links and embedded resources in `content[]` (tools/call) and
/// in `messages[].content` (prompts/get).
pub(crate) fn federate_uris(namer: &Namer, server: &str, value: &mut Value) {
    let join = |v: &mut Value| {
        if let Some(Value::String(u)) = v.get_mut("uri") {
            *u = namer.join_uri(server, u);
        }
    };
    if let Some(Value::Array(contents)) = value.get_mut("contents") {
        contents.iter_mut().for_each(join);
    }
    if value.get("uri").is_some_and(Value::is_string) && value.get("contents").is_none() {
        join(value);
    }
    let content_items = |content: &mut Value| {
        let items: Vec<&mut Value> = match content {
            Value::Array(a) => a.iter_mut().collect(),
            v @ Value::Object(_) => vec![v],
            _ => Vec::new(),
        };
        for item in items {
            match item.get("type").and_then(Value::as_str) {
                Some("resource_link") => join(item),
                Some("resource") => {
                    if let Some(r) = item.get_mut("resource") {
                        join(r);
                    }
                }
                _ => {}
            }
        }
    };
    if let Some(content) = value.get_mut("content") {
        content_items(content);
    }
    if let Some(Value::Array(messages)) = value.get_mut("messages") {
        for m in messages {
            if let Some(content) = m.get_mut("content") {
                content_items(content);
            }
        }
    }
}

/// One server's initialize answer.
#[derive(Debug, Clone)]
pub(crate) struct ServerInit {
    pub(crate) server: String,
    pub(crate) result: Value,
}

/// The one initialize result `/mcp` gives: the protocol version the
/// servers agreed on with the client (the oldest they answered when they
/// differ; `disagree` names the others), the union of their capabilities (list changes are
/// always announced: warden sends them when policies or the set of servers
/// change), warden as the server, and each server's instructions under its
/// name.
pub(crate) fn merge_initialize(inits: &[ServerInit]) -> MergedInit {
    // One version for every server: the oldest any of them answered.
    // Versions are dates, so they order as strings; a server that answered
    // a newer one speaks the older one too (servers accept the versions
    // before theirs), while one that answered an older one may know
    // nothing newer.
    let version = inits
        .iter()
        .filter_map(|i| i.result.get("protocolVersion").and_then(Value::as_str))
        .min()
        .map(|v| Value::String(v.to_string()))
        .unwrap_or(Value::Null);
    let disagree: Vec<String> = inits
        .iter()
        .filter(|i| {
            i.result
                .get("protocolVersion")
                .is_some_and(|v| *v != version)
        })
        .map(|i| i.server.clone())
        .collect();
    let caps = |key: &'static str| {
        inits
            .iter()
            .filter_map(move |i| i.result.get("capabilities").and_then(|c| c.get(key)))
    };
    let mut capabilities = Map::new();
    // Tools are always there: warden governs them and announces changes.
    capabilities.insert("tools".into(), json!({ "listChanged": true }));
    if caps("prompts").next().is_some() {
        capabilities.insert("prompts".into(), json!({ "listChanged": true }));
    }
    if caps("resources").next().is_some() {
        let subscribe = caps("resources").any(|c| c.get("subscribe") == Some(&Value::Bool(true)));
        let mut r = json!({ "listChanged": true });
        if subscribe {
            r["subscribe"] = Value::Bool(true);
        }
        capabilities.insert("resources".into(), r);
    }
    for plain in ["logging", "completions"] {
        if caps(plain).next().is_some() {
            capabilities.insert(plain.into(), json!({}));
        }
    }
    let instructions: Vec<String> = inits
        .iter()
        .filter_map(|i| {
            i.result
                .get("instructions")
                .and_then(Value::as_str)
                .filter(|s| !s.trim().is_empty())
                .map(|s| format!("{}: {}", i.server, s.trim()))
        })
        .collect();
    let mut result = json!({
        "protocolVersion": version,
        "capabilities": capabilities,
        "serverInfo": {
            "name": "warden",
            "title": "warden gateway",
            "version": env!("CARGO_PKG_VERSION"),
        },
    });
    if !instructions.is_empty() {
        result["instructions"] = Value::String(instructions.join("\n\n"));
    }
    MergedInit { result, disagree }
}

/// The merged initialize result and the servers whose protocol version
/// differs from it.
#[derive(Debug)]
pub(crate) struct MergedInit {
    pub(crate) result: Value,
    pub(crate) disagree: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(server: &str, result: Value) -> ServerPage {
        ServerPage {
            server: server.into(),
            result: Ok(result),
        }
    }

    #[test]
    fn tools_are_namespaced_in_server_order_and_cursors_kept_per_server() {
        let n = Namer::new("__");
        let merged = merge_list(
            ListKind::Tools,
            &n,
            vec![
                page(
                    "genomics",
                    json!({"tools": [{"name": "list_samples", "inputSchema": {}}], "nextCursor": "g2"}),
                ),
                ServerPage {
                    server: "down".into(),
                    result: Err("unavailable".into()),
                },
                page(
                    "lims",
                    json!({"tools": [{"name": "list_samples", "x-extra": 1}]}),
                ),
            ],
        );
        let tools = merged.result["tools"].as_array().unwrap();
        let names: Vec<&str> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["genomics__list_samples", "lims__list_samples"]);
        assert_eq!(tools[1]["x-extra"], 1, "unknown fields are kept");
        assert_eq!(
            merged.left_out,
            vec![("down".to_string(), "unavailable".to_string())]
        );
        let next = Cursors::decode(merged.result["nextCursor"].as_str().unwrap()).unwrap();
        assert_eq!(next.0.len(), 1);
        assert_eq!(next.0["genomics"], "g2");
    }

    #[test]
    fn the_last_page_has_no_cursor() {
        let n = Namer::new("__");
        let merged = merge_list(
            ListKind::Prompts,
            &n,
            vec![page("a", json!({"prompts": [{"name": "p"}]}))],
        );
        assert_eq!(merged.result, json!({"prompts": [{"name": "a__p"}]}));
    }

    #[test]
    fn resources_and_templates_get_federated_uris() {
        let n = Namer::new("__");
        let r = merge_list(
            ListKind::Resources,
            &n,
            vec![page(
                "res",
                json!({"resources": [{"uri": "file:///a", "name": "a"}]}),
            )],
        );
        assert_eq!(r.result["resources"][0]["uri"], "res+file:///a");
        assert_eq!(r.result["resources"][0]["name"], "a");
        let t = merge_list(
            ListKind::ResourceTemplates,
            &n,
            vec![page(
                "res",
                json!({"resourceTemplates": [{"uriTemplate": "test://x/{id}"}]}),
            )],
        );
        assert_eq!(
            t.result["resourceTemplates"][0]["uriTemplate"],
            "res+test://x/{id}"
        );
    }

    #[test]
    fn uris_in_results_and_notifications_are_federated() {
        let n = Namer::new("__");
        let mut read = json!({"contents": [{"uri": "file:///a", "text": "x"}]});
        federate_uris(&n, "s", &mut read);
        assert_eq!(read["contents"][0]["uri"], "s+file:///a");
        let mut updated = json!({"uri": "file:///a"});
        federate_uris(&n, "s", &mut updated);
        assert_eq!(updated["uri"], "s+file:///a");
        let mut call = json!({"content": [
            {"type": "text", "text": "hi", "uri": "not-a-link"},
            {"type": "resource_link", "uri": "file:///b", "name": "b"},
            {"type": "resource", "resource": {"uri": "file:///c", "text": "c"}}
        ]});
        federate_uris(&n, "s", &mut call);
        assert_eq!(call["content"][0]["uri"], "not-a-link");
        assert_eq!(call["content"][1]["uri"], "s+file:///b");
        assert_eq!(call["content"][2]["resource"]["uri"], "s+file:///c");
        let mut prompt = json!({"messages": [{"role": "user", "content": {"type": "resource", "resource": {"uri": "file:///d"}}}]});
        federate_uris(&n, "s", &mut prompt);
        assert_eq!(
            prompt["messages"][0]["content"]["resource"]["uri"],
            "s+file:///d"
        );
    }

    #[test]
    fn initialize_results_merge_capabilities_and_instructions() {
        let merged = merge_initialize(&[
            ServerInit {
                server: "a".into(),
                result: json!({"protocolVersion": "2025-06-18", "capabilities": {"tools": {}, "logging": {}}, "instructions": "use a"}),
            },
            ServerInit {
                server: "b".into(),
                result: json!({"protocolVersion": "2025-11-25", "capabilities": {"resources": {"subscribe": true}, "prompts": {}}}),
            },
        ]);
        let r = &merged.result;
        assert_eq!(r["protocolVersion"], "2025-06-18", "the oldest");
        assert_eq!(merged.disagree, vec!["b".to_string()]);
        let newest_first = merge_initialize(&[
            ServerInit {
                server: "n".into(),
                result: json!({"protocolVersion": "2026-07-28"}),
            },
            ServerInit {
                server: "o".into(),
                result: json!({"protocolVersion": "2025-11-25"}),
            },
        ]);
        assert_eq!(newest_first.result["protocolVersion"], "2025-11-25");
        assert_eq!(newest_first.disagree, vec!["n".to_string()]);
        assert_eq!(r["capabilities"]["tools"]["listChanged"], true);
        assert_eq!(r["capabilities"]["resources"]["subscribe"], true);
        assert_eq!(r["capabilities"]["prompts"]["listChanged"], true);
        assert_eq!(r["capabilities"]["logging"], json!({}));
        assert!(r["capabilities"].get("completions").is_none());
        assert_eq!(r["serverInfo"]["name"], "warden");
        assert_eq!(r["instructions"], "a: use a");
    }
}
