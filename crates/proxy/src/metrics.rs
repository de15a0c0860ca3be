//! Prometheus metrics: what warden decided and how long it took, the
//! confirmations it asked, its sessions, its policy reloads and its
//! stores, served at `/metrics` on an admin listener of its own
//! (`--metrics-listen`, `[metrics] listen`), apart from the MCP port.
//!
//! Label values stay bounded: `rule` comes from the loaded policies,
//! `server` from the configuration, and `tool` only from the upstream's
//! catalog: a call naming a tool the catalog does not list is counted as
//! [`UNLISTED_TOOL`], so an agent inventing names cannot grow the series.
//! Every metric and label is listed in docs/observability.md.

use prometheus::{
    Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use warden_engine::{CallContext, Decided, Engine, Outcome, UpstreamOutcome};

/// The `tool` label of a call whose tool the upstream's catalog does not
/// list.
pub const UNLISTED_TOOL: &str = "(not in catalog)";

/// The `rule` label of a decision no rule made (the set's default).
pub const NO_RULE: &str = "#default";

/// How a confirmation went (`warden_confirmations_total{outcome}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfirmationOutcome {
    /// The person was asked (elicitation, or a 2026-07-28 `input_required`).
    Asked,
    Accepted,
    Declined,
    Dismissed,
    TimedOut,
    /// The question could not be put (the client failed to ask).
    Failed,
    /// The client cancelled the call while the person was asked.
    Cancelled,
    /// The client cannot ask (no elicitation), or the approval must come
    /// from another person: the call was refused.
    Unsupported,
    /// A grant of an earlier yes covered the call: nobody was asked.
    Granted,
}

impl ConfirmationOutcome {
    /// The `outcome` label (and the `warden.confirmation` span attribute).
    pub fn label(self) -> &'static str {
        match self {
            ConfirmationOutcome::Asked => "asked",
            ConfirmationOutcome::Accepted => "accepted",
            ConfirmationOutcome::Declined => "declined",
            ConfirmationOutcome::Dismissed => "dismissed",
            ConfirmationOutcome::TimedOut => "timed_out",
            ConfirmationOutcome::Failed => "failed",
            ConfirmationOutcome::Cancelled => "cancelled",
            ConfirmationOutcome::Unsupported => "unsupported",
            ConfirmationOutcome::Granted => "granted",
        }
    }
}

/// Every metric warden keeps, in one registry of its own.
pub struct Metrics {
    registry: Registry,
    decisions: IntCounterVec,
    decision_seconds: Histogram,
    upstream_seconds: HistogramVec,
    call_seconds: Histogram,
    confirmations: IntCounterVec,
    sessions: IntGauge,
    reloads: IntCounterVec,
    last_reload: Gauge,
    policy_info: IntGaugeVec,
    /// The version `policy_info` shows, so a new one replaces it.
    policy_version: Mutex<String>,
    store_up: IntGaugeVec,
    log_errors: IntCounter,
    tool_changes: IntCounterVec,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

/// Seconds buckets for a decision: microseconds to tens of milliseconds.
const DECISION_BUCKETS: &[f64] = &[
    0.000_005, 0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.01,
    0.05,
];
/// Seconds buckets for an upstream call or a whole call: a millisecond to
/// ten minutes (a pipeline start, a person answering a confirmation).
const CALL_BUCKETS: &[f64] = &[
    0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0, 120.0, 600.0,
];

impl Metrics {
    /// A registry with every metric at zero.
    pub fn new() -> Arc<Metrics> {
        let registry = Registry::new();
        let decisions = IntCounterVec::new(
            Opts::new(
                "warden_decisions_total",
                "Tool calls decided, one per decision line in the decision log, by outcome (allow, deny, confirm), the rule that decided, server, tool (from the upstream's catalog) and mode (enforce, shadow).",
            ),
            &["outcome", "rule", "server", "tool", "mode"],
        )
        .expect("a valid metric");
        let decision_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "warden_decision_duration_seconds",
                "Time the engine took to decide a tool call.",
            )
            .buckets(DECISION_BUCKETS.to_vec()),
        )
        .expect("a valid metric");
        let upstream_seconds = HistogramVec::new(
            HistogramOpts::new(
                "warden_upstream_duration_seconds",
                "Time from forwarding a tool call to the upstream's answer (or its failure), by server and whether it succeeded; millisecond resolution.",
            )
            .buckets(CALL_BUCKETS.to_vec()),
            &["server", "ok"],
        )
        .expect("a valid metric");
        let call_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "warden_call_duration_seconds",
                "Time from a governed tools/call reaching warden to its answer leaving it: the decision, any confirmation and the upstream call.",
            )
            .buckets(CALL_BUCKETS.to_vec()),
        )
        .expect("a valid metric");
        let confirmations = IntCounterVec::new(
            Opts::new(
                "warden_confirmations_total",
                "Confirmations asked of the person and how they ended (asked, accepted, declined, dismissed, timed_out, failed, cancelled, unsupported; granted: a grant of an earlier yes covered the call).",
            ),
            &["outcome"],
        )
        .expect("a valid metric");
        let sessions = IntGauge::new(
            "warden_sessions_active",
            "MCP sessions warden is relaying now.",
        )
        .expect("a valid metric");
        let reloads = IntCounterVec::new(
            Opts::new(
                "warden_policy_reloads_total",
                "Policy reloads by result (ok: in force; failed: the last good set kept).",
            ),
            &["result"],
        )
        .expect("a valid metric");
        let last_reload = Gauge::new(
            "warden_policy_last_reload_success_timestamp_seconds",
            "When the policies in force were loaded (Unix time).",
        )
        .expect("a valid metric");
        let policy_info = IntGaugeVec::new(
            Opts::new(
                "warden_policy_info",
                "The policy set in force: its version, as in each decision log line; always 1.",
            ),
            &["version"],
        )
        .expect("a valid metric");
        let store_up = IntGaugeVec::new(
            Opts::new(
                "warden_store_up",
                "Whether a store answers (1) or not (0), checked at each scrape: state (caps, rates) and records.",
            ),
            &["store"],
        )
        .expect("a valid metric");
        let log_errors = IntCounter::new(
            "warden_decision_log_errors_total",
            "Decision log writes that failed (the call was refused or its outcome not recorded).",
        )
        .expect("a valid metric");
        let tool_changes = IntCounterVec::new(
            Opts::new(
                "warden_tool_definition_changes_total",
                "Tool definitions an upstream listed that are not the pinned ones (each tool and definition counted once per session): the tool is hidden and its calls refused until approved.",
            ),
            &["server"],
        )
        .expect("a valid metric");
        for m in [
            Box::new(decisions.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(tool_changes.clone()),
            Box::new(decision_seconds.clone()),
            Box::new(upstream_seconds.clone()),
            Box::new(call_seconds.clone()),
            Box::new(confirmations.clone()),
            Box::new(sessions.clone()),
            Box::new(reloads.clone()),
            Box::new(last_reload.clone()),
            Box::new(policy_info.clone()),
            Box::new(store_up.clone()),
            Box::new(log_errors.clone()),
        ] {
            registry.register(m).expect("names are unique");
        }
        // Series with a known, fixed set of label values start at 0, so a
        // dashboard shows 0 rather than nothing and `increase()` sees the
        // first one.
        for outcome in [
            ConfirmationOutcome::Asked,
            ConfirmationOutcome::Accepted,
            ConfirmationOutcome::Declined,
            ConfirmationOutcome::Dismissed,
            ConfirmationOutcome::TimedOut,
            ConfirmationOutcome::Failed,
            ConfirmationOutcome::Cancelled,
            ConfirmationOutcome::Unsupported,
        ] {
            confirmations.with_label_values(&[outcome.label()]);
        }
        for result in ["ok", "failed"] {
            reloads.with_label_values(&[result]);
        }
        Arc::new(Metrics {
            registry,
            decisions,
            decision_seconds,
            upstream_seconds,
            call_seconds,
            confirmations,
            sessions,
            reloads,
            last_reload,
            policy_info,
            policy_version: Mutex::new(String::new()),
            store_up,
            log_errors,
            tool_changes,
        })
    }

    /// One decision line; `listed`: the catalog lists the call's tool.
    pub fn record_decision(
        &self,
        call: &CallContext,
        decided: &Decided,
        listed: bool,
        shadow: bool,
    ) {
        let (outcome, rule) = match &decided.outcome {
            Outcome::Allow { rules } => ("allow", rules.first().map(String::as_str)),
            Outcome::Deny(d) => ("deny", d.rules.first().map(|h| h.rule.as_str())),
            Outcome::Confirm(c) => ("confirm", c.rules.first().map(|h| h.rule.as_str())),
        };
        let tool = if listed {
            call.tool.as_str()
        } else {
            UNLISTED_TOOL
        };
        let mode = if shadow { "shadow" } else { "enforce" };
        self.decisions
            .with_label_values(&[outcome, rule.unwrap_or(NO_RULE), &call.server, tool, mode])
            .inc();
        self.decision_seconds.observe(decided.latency.as_secs_f64());
    }

    /// How a forwarded call went upstream.
    pub fn record_upstream(&self, server: &str, outcome: &UpstreamOutcome) {
        let ok = if outcome.ok { "true" } else { "false" };
        self.upstream_seconds
            .with_label_values(&[server, ok])
            .observe(Duration::from_millis(outcome.duration_ms).as_secs_f64());
    }

    /// A governed call from its arrival to its answer.
    pub fn record_call(&self, took: Duration) {
        self.call_seconds.observe(took.as_secs_f64());
    }

    pub fn record_confirmation(&self, outcome: ConfirmationOutcome) {
        self.confirmations
            .with_label_values(&[outcome.label()])
            .inc();
    }

    /// A decision log write failed.
    pub fn record_log_error(&self) {
        self.log_errors.inc();
    }

    /// `server` listed a tool whose definition is not the pinned one.
    pub fn record_tool_change(&self, server: &str) {
        self.tool_changes.with_label_values(&[server]).inc();
    }

    /// A session starts; it is counted until the guard is dropped.
    pub fn session(self: &Arc<Self>) -> SessionGuard {
        self.sessions.inc();
        SessionGuard(Arc::clone(self))
    }

    /// The policies in force are `version`, loaded now (at start, or by a
    /// reload that worked).
    pub fn policies_loaded(&self, version: &str) {
        let mut shown = self
            .policy_version
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if *shown != version {
            if !shown.is_empty() {
                let _ = self.policy_info.remove_label_values(&[shown.as_str()]);
            }
            self.policy_info.with_label_values(&[version]).set(1);
            *shown = version.to_string();
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        self.last_reload.set(now.as_secs_f64());
    }

    /// A reload: in force (`Some(version)`), or refused (`None`).
    pub fn record_reload(&self, version: Option<&str>) {
        let result = if version.is_some() { "ok" } else { "failed" };
        self.reloads.with_label_values(&[result]).inc();
        if let Some(v) = version {
            self.policies_loaded(v);
        }
    }

    /// Asks `engine`'s stores whether they answer (a network round trip
    /// for Redis and PostgreSQL: call it off the async threads).
    pub fn refresh_stores(&self, engine: &Engine) {
        for (store, health) in [
            ("state", engine.state_health()),
            ("records", engine.records_health()),
        ] {
            match health {
                Some(h) => self
                    .store_up
                    .with_label_values(&[store])
                    .set(i64::from(h.problem.is_none())),
                None => {
                    let _ = self.store_up.remove_label_values(&[store]);
                }
            }
        }
    }

    /// The text exposition (`text/plain; version=0.0.4`).
    pub fn render(&self) -> String {
        TextEncoder::new()
            .encode_to_string(&self.registry.gather())
            .unwrap_or_else(|e| format!("# warden could not encode its metrics: {e}\n"))
    }
}

/// Counts one session in `warden_sessions_active` while it lives.
pub struct SessionGuard(Arc<Metrics>);

impl Drop for SessionGuard {
    fn drop(&mut self) {
        self.0.sessions.dec();
    }
}

impl std::fmt::Debug for SessionGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionGuard")
    }
}

/// Serves `GET /metrics` on `listener` until the task is dropped. Each
/// scrape asks the engine's stores first (off the async threads).
pub async fn serve_metrics(
    metrics: Arc<Metrics>,
    engine: Arc<Engine>,
    listener: tokio::net::TcpListener,
) -> std::io::Result<()> {
    use axum::routing::get;
    let app = axum::Router::new().route(
        "/metrics",
        get(move || {
            let (metrics, engine) = (Arc::clone(&metrics), Arc::clone(&engine));
            async move {
                let body = tokio::task::spawn_blocking(move || {
                    metrics.refresh_stores(&engine);
                    metrics.render()
                })
                .await
                .unwrap_or_else(|e| format!("# warden could not gather its metrics: {e}\n"));
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    body,
                )
            }
        }),
    );
    axum::serve(listener, app).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use warden_engine::{EngineOptions, PolicyBundle};

    fn engine(policy: &str) -> Engine {
        let mut s = warden_lang::Sources::new();
        s.add("t.policy", policy);
        let set = warden_lang::compile_policy_set(&s).unwrap().policy_set;
        Engine::new(
            PolicyBundle::new(set, "v1".into()),
            EngineOptions::default(),
        )
    }

    #[test]
    fn decisions_are_counted_by_outcome_rule_server_and_listed_tool_only() {
        let e = engine("default allow\n\ndeny no-deletes {\n  tool \"delete_*\"\n}\n");
        let m = Metrics::new();
        let call = |tool: &str| CallContext {
            server: "genomics".into(),
            tool: tool.into(),
            arguments: serde_json::json!({}),
            ..CallContext::default()
        };
        let (read, delete) = (call("get_sample"), call("delete_sample"));
        m.record_decision(&read, &e.decide(&read), true, false);
        m.record_decision(&delete, &e.decide(&delete), true, false);
        let invented = call("delete_everything_now");
        m.record_decision(&invented, &e.decide(&invented), false, true);
        let text = m.render();
        assert!(text.contains(r##"warden_decisions_total{mode="enforce",outcome="allow",rule="#default",server="genomics",tool="get_sample"} 1"##), "{text}");
        assert!(text.contains(r#"warden_decisions_total{mode="enforce",outcome="deny",rule="no-deletes",server="genomics",tool="delete_sample"} 1"#), "{text}");
        assert!(text.contains(r#"warden_decisions_total{mode="shadow",outcome="deny",rule="no-deletes",server="genomics",tool="(not in catalog)"} 1"#), "{text}");
        assert!(!text.contains("delete_everything_now"));
        assert!(
            text.contains("warden_decision_duration_seconds_count 3"),
            "{text}"
        );
    }

    #[test]
    fn sessions_reloads_and_the_policy_version_show() {
        let m = Metrics::new();
        let a = m.session();
        let b = m.session();
        drop(a);
        m.policies_loaded("v1");
        m.record_reload(None);
        m.record_reload(Some("v2"));
        let text = m.render();
        assert!(text.contains("warden_sessions_active 1"), "{text}");
        assert!(text.contains(r#"warden_policy_reloads_total{result="failed"} 1"#));
        assert!(text.contains(r#"warden_policy_reloads_total{result="ok"} 1"#));
        assert!(
            text.contains(r#"warden_policy_info{version="v2"} 1"#),
            "{text}"
        );
        assert!(
            !text.contains(r#"version="v1""#),
            "the old version is gone: {text}"
        );
        drop(b);
        assert!(m.render().contains("warden_sessions_active 0"));
    }
}
