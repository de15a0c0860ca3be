//! The relay's tool catalog: what warden knows of the upstream's tools
//! (their annotations, from tools/list), whether that is the whole current
//! list ([`ToolCache`], reached only through its methods), the pages of
//! tools/list warden reads itself when a call names a tool it has not seen
//! listed, and the view of a tools/list answer the client gets: tools no
//! rule lets the caller use are hidden, the rest annotated.

use super::context::ReqCtx;
use super::{Relay, lock};
use crate::bearer::Caller;
use crate::govern::{self, ToolInfo, ToolView};
use serde_json::{Map, Value};
use std::collections::HashMap;

/// Most pages of tools/list warden reads to learn annotations.
const MAX_TOOL_PAGES: usize = 100;

#[derive(Default)]
pub(super) struct ToolCache {
    tools: HashMap<String, ToolInfo>,
    /// The whole list was read since the last `list_changed`.
    fresh: bool,
}

impl ToolCache {
    /// What the cache says of `name` when it holds the whole current list
    /// (a tool it does not hold then has no annotations); `None` when the
    /// list must be read first.
    pub(super) fn fresh_info(&self, name: &str) -> Option<ToolInfo> {
        self.fresh.then(|| self.get(name))
    }

    /// Whether the upstream's catalog lists `name` (what a metric may
    /// name: the catalog bounds the label's values).
    pub(super) fn lists(&self, name: &str) -> bool {
        self.tools.contains_key(name)
    }

    /// What the cache holds of `name`, fresh or not.
    pub(super) fn get(&self, name: &str) -> ToolInfo {
        self.tools.get(name).copied().unwrap_or_default()
    }

    /// The list may have changed (the upstream said so, or restarted).
    pub(super) fn stale(&mut self) {
        self.fresh = false;
    }

    /// One page of a tools/list answer the client asked for; `whole`: it
    /// is the whole list (no cursor asked, no next one), which replaces
    /// what the cache held.
    pub(super) fn learn_page(&mut self, infos: Vec<(String, ToolInfo)>, whole: bool) {
        if whole {
            self.tools.clear();
            self.fresh = true;
        }
        self.tools.extend(infos);
    }

    /// The whole list, as warden read it itself.
    fn replace(&mut self, all: HashMap<String, ToolInfo>) {
        self.tools = all;
        self.fresh = true;
    }
}

impl Relay {
    /// The tool's annotations, reading tools/list first if the tool was
    /// never listed or the list changed since.
    pub(super) async fn tool_info(&self, name: &str, ctx: &ReqCtx) -> ToolInfo {
        if let Some(info) = lock(&self.st).tools.fresh_info(name) {
            return info;
        }
        let _one_at_a_time = self.fetch_lock.lock().await;
        if let Some(info) = lock(&self.st).tools.fresh_info(name) {
            return info;
        }
        // The whole read is bounded, not each page: an upstream that never
        // answers tools/list (or pages forever) must not hold the call
        // longer than the call itself may take. The call is then decided
        // with what is known (an unknown tool has MCP's default hints).
        let bound = match self.cfg.call_timeout {
            d if d.is_zero() => self.cfg.internal_timeout,
            d => d.min(self.cfg.internal_timeout),
        };
        match tokio::time::timeout(bound, self.fetch_tools(ctx)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!("cannot read the upstream's tools/list for annotations: {e}")
            }
            Err(_) => tracing::warn!(
                "the upstream's tools/list did not answer within {} s; deciding without its annotations",
                bound.as_secs_f64()
            ),
        }
        lock(&self.st).tools.get(name)
    }

    /// What the catalog knows of a listed tool, its definition checked
    /// against its pin; a definition that is not the pinned one is logged
    /// (`tool_changed`), counted and warned of once per session. `true`
    /// with it: that report is new.
    fn learn_tool(&self, server: Option<&str>, tool: &Value) -> (ToolInfo, bool) {
        let mut info = ToolInfo::from_tool(tool);
        let Some(server) = server else {
            return (info, false);
        };
        let mut reported = false;
        let (verdict, change) =
            crate::tool_pins::check_tool(&self.cfg.tool_pins, &self.engine, server, tool);
        info.pin = verdict;
        if let (Some(change), Some(name)) = (change, tool.get("name").and_then(Value::as_str)) {
            let first = lock(&self.st)
                .reported_changes
                .insert((name.to_string(), change.seen.clone()));
            if first {
                reported = true;
                let review = match (&self.cfg.tool_pins, verdict) {
                    (crate::tool_pins::ToolPins::Strict(_), _) => {
                        "until its definition is in the pin file (`warden tools pin` writes one)"
                    }
                    (_, crate::govern::PinVerdict::ChangedInMemory) => {
                        "until warden restarts (its pins are in memory; with --state, `warden tools approve` approves a change)"
                    }
                    _ => {
                        "until an operator approves it (`warden tools diff`, `warden tools approve`)"
                    }
                };
                tracing::warn!(
                    "tool `{name}` of `{server}`: {} (listed {}); it is hidden and its calls refused {review}",
                    match &change.pinned {
                        Some(p) => format!("its definition is not the pinned one ({p})"),
                        None => "the pin file has no such tool".to_string(),
                    },
                    change.seen
                );
                let line = warden_engine::ToolChangedLine {
                    server,
                    tool: name,
                    pinned: change.pinned.as_deref(),
                    seen: &change.seen,
                    mode: self.cfg.tool_pins.name(),
                };
                if let Err(e) = self.log.write_tool_changed(&line) {
                    tracing::error!("cannot log the changed definition of `{name}`: {e}");
                }
                if let Some(m) = &self.cfg.metrics {
                    m.record_tool_change(server);
                }
            }
        }
        (info, reported)
    }

    async fn fetch_tools(&self, ctx: &ReqCtx) -> Result<(), String> {
        let server = self.known_server_name();
        let mut all = HashMap::new();
        let mut changed = false;
        let mut cursor: Option<Value> = None;
        for _ in 0..MAX_TOOL_PAGES {
            let mut params = Map::new();
            if let Some(c) = cursor.take() {
                params.insert("cursor".into(), c);
            }
            if !ctx.mcp_meta.is_empty() {
                params.insert("_meta".into(), Value::Object(ctx.mcp_meta.clone()));
            }
            let resp = self
                .own_request("tools/list", Value::Object(params), false)
                .await?;
            let Some(result) = resp.get("result") else {
                return Err(format!(
                    "tools/list failed: {}",
                    resp.get("error").cloned().unwrap_or(Value::Null)
                ));
            };
            for t in result
                .get("tools")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(name) = t.get("name").and_then(Value::as_str) {
                    let (info, reported) = self.learn_tool(server.as_deref(), t);
                    changed |= reported;
                    all.insert(name.to_string(), info);
                }
            }
            match result.get("nextCursor") {
                Some(c @ Value::String(_)) => cursor = Some(c.clone()),
                _ => break,
            }
        }
        let names: Vec<String> = all.keys().cloned().collect();
        lock(&self.st).tools.replace(all);
        if let Some(s) = &server {
            self.warn_unmatched(s, &names);
        }
        // warden's own read found a definition that is not the pinned one:
        // the list the client holds shows a tool it now hides.
        if changed {
            self.send_client(serde_json::json!({
                "jsonrpc": "2.0",
                "method": "notifications/tools/list_changed"
            }))
            .await;
        }
        Ok(())
    }

    /// Warns of every rule (and annotation declaration) that names a
    /// server other than this upstream's, or a tool it does not list: it
    /// never applies, so an intended deny lets calls through.
    fn warn_unmatched(&self, server: &str, tools: &[String]) {
        if !self.cfg.warn_unmatched_rules {
            return;
        }
        let warnings = crate::tool_pins::unmatched_rules(&self.engine.policies(), server, tools);
        let mut st = lock(&self.st);
        if st.unmatched_warned == warnings {
            return;
        }
        st.unmatched_warned = warnings.clone();
        drop(st);
        for w in warnings {
            tracing::warn!("{w}");
        }
    }

    /// The client's view of a tools/list `result` (a page when `complete`
    /// is false: the client asked with a cursor): what it lists goes into
    /// the cache, then the tools `caller` (as `agent`) may not use are
    /// removed and the others annotated.
    pub(super) fn view_tools_list(
        &self,
        result: &mut Value,
        agent: Option<String>,
        complete: bool,
        caller: Option<&Caller>,
    ) {
        let has_next = result.get("nextCursor").is_some_and(|c| !c.is_null());
        let Some(tools) = result.get_mut("tools").and_then(Value::as_array_mut) else {
            return;
        };
        let server_name = self.known_server_name();
        let infos: Vec<(String, ToolInfo)> = tools
            .iter()
            .filter_map(|t| {
                let name = t.get("name")?.as_str()?.to_string();
                Some((name, self.learn_tool(server_name.as_deref(), t).0))
            })
            .collect();
        let pinned: HashMap<String, crate::govern::PinVerdict> =
            infos.iter().map(|(n, i)| (n.clone(), i.pin)).collect();
        let whole = complete && !has_next;
        let names: Vec<String> = infos.iter().map(|(n, _)| n.clone()).collect();
        lock(&self.st).tools.learn_page(infos, whole);
        if whole && let Some(s) = &server_name {
            self.warn_unmatched(s, &names);
        }
        // No call to an unnamed server is decided (finding 3), so
        // none of its tools can be used.
        let Some(server) = self.known_server_name() else {
            tracing::warn!(
                "tools/list answered before the upstream named itself and without --name; every tool hidden"
            );
            tools.clear();
            return;
        };
        let base = self.call_template(&server, agent, caller);
        tools.retain_mut(|tool| {
            let Some(name) = tool.get("name").and_then(Value::as_str) else {
                return true;
            };
            // A definition that is not the pinned one is not shown: the
            // agent must not read a changed description (shadow mode
            // shows it, as it hides nothing).
            if pinned.get(name).is_some_and(|p| p.blocks()) && !self.cfg.shadow_all {
                tracing::debug!("tool `{name}` hidden from the agent (definition not pinned)");
                return false;
            }
            let mut probe = base.clone();
            probe.tool = name.to_string();
            probe.annotations = ToolInfo::from_tool(tool).annotations;
            match govern::tool_view(&self.engine, &probe) {
                // Global shadow mode hides nothing: nothing is enforced.
                ToolView::Hidden { rule } if self.cfg.shadow_all => {
                    tracing::debug!(
                        "tool `{name}` would be hidden from the agent ({}); shown in shadow mode",
                        rule.as_deref().unwrap_or("no rule allows it")
                    );
                    true
                }
                ToolView::Hidden { rule } => {
                    tracing::debug!(
                        "tool `{name}` hidden from the agent ({})",
                        rule.as_deref().unwrap_or("no rule allows it")
                    );
                    false
                }
                ToolView::Shown { notes } => {
                    govern::annotate_description(tool, &notes);
                    true
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::ToolCache;
    use crate::govern::ToolInfo;
    use serde_json::json;

    fn info(read_only: bool) -> ToolInfo {
        ToolInfo::from_tool(&json!({"name": "t", "annotations": {"readOnlyHint": read_only}}))
    }

    #[test]
    fn a_page_is_not_the_whole_list() {
        let mut cache = ToolCache::default();
        assert_eq!(cache.fresh_info("a"), None, "an empty cache must be read");
        cache.learn_page(vec![("a".into(), info(true))], false);
        assert_eq!(
            cache.fresh_info("a"),
            None,
            "one page does not make it fresh"
        );
        assert_eq!(cache.get("a"), info(true), "but what it listed is kept");
    }

    #[test]
    fn the_whole_list_replaces_what_was_held_until_it_changes() {
        let mut cache = ToolCache::default();
        cache.learn_page(vec![("old".into(), info(true))], false);
        cache.learn_page(vec![("a".into(), info(true))], true);
        assert_eq!(cache.fresh_info("a"), Some(info(true)));
        assert_eq!(
            cache.fresh_info("old"),
            Some(ToolInfo::default()),
            "a tool the whole list lacks has no annotations, and needs no read"
        );
        assert_ne!(info(true), ToolInfo::default(), "the test tells them apart");
        cache.stale();
        assert_eq!(cache.fresh_info("a"), None, "list_changed: read again");
        assert_eq!(cache.get("a"), info(true));
    }

    #[test]
    fn warden_s_own_read_replaces_the_list() {
        let mut cache = ToolCache::default();
        cache.learn_page(vec![("old".into(), info(true))], false);
        cache.replace([("new".to_string(), info(false))].into_iter().collect());
        assert_eq!(cache.fresh_info("new"), Some(info(false)));
        assert_eq!(cache.get("old"), ToolInfo::default());
    }
}
