//! `warden serve`'s HTTP side: one listener with a route per server
//! (`/servers/<name>/mcp`, each exactly what `warden proxy --listen`
//! serves), the federated `/mcp`, `/healthz` and `/readyz`; applying a
//! reloaded config; draining on stop.
//!
//! Each server has one [`RelayFactory`] (its upstream, its name in
//! policies, its timeouts), shared by its own route and by the federation,
//! so a call is governed the same way whichever route it came by. Routes
//! are looked up per request in a map a reload changes, so adding or
//! removing a server touches no session of another.

use super::config::{GatewayConfig, Instances, ServerConfig};
use super::readiness;
use super::watch::{self, Trigger};
use crate::bearer::Verifier;
use crate::config::ProxyError;
use crate::config::Upstream;
use crate::endpoint::{EndpointFactory, RelayFactory};
use crate::federate::{DEFAULT_FAN_TIMEOUT, FederationFactory, MemberDef};
use crate::http_server::McpService;
use crate::provenance_token::Signer;
use crate::shared_instance::{SharedInstance, SharedRelayFactory};
use axum::extract::{Path as UrlPath, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use warden_engine::{DecisionLog, Engine};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What `warden serve` loaded before serving, shared by every server.
pub struct GatewayRuntime {
    pub engine: Arc<Engine>,
    pub log: Arc<DecisionLog>,
    pub signer: Option<Arc<Signer>>,
    pub bearer: Option<Arc<Verifier>>,
    /// Whom calls act for without a bearer token.
    pub user: String,
    /// Seals 2026-07-28 confirmations (`confirm_key`).
    pub confirm_key: Arc<crate::seal::SealKey>,
    /// Prometheus metrics (`[metrics]`), kept by every route.
    pub metrics: Option<Arc<crate::metrics::Metrics>>,
    /// OpenTelemetry traces (`[traces]`), kept by every route.
    pub traces: Option<Arc<crate::traces::Traces>>,
}

/// What the gateway reports while it runs (the CLI prints these).
#[derive(Debug)]
pub enum GatewayEvent {
    /// Serving at this address.
    Listening { addr: SocketAddr, tls: bool },
    /// A changed config was applied.
    ConfigApplied {
        added: Vec<String>,
        removed: Vec<String>,
        restarted: Vec<String>,
    },
    /// The config file was read again and nothing about its servers changed.
    ConfigUnchanged,
    /// A reloaded config is broken (or asks for what this warden cannot
    /// run); the running one stays.
    ConfigRejected(Arc<dyn miette::Diagnostic + Send + Sync>),
    /// Settings that only a restart applies changed; the running values stay.
    RestartNeeded { keys: Vec<&'static str> },
    /// The config's directory cannot be watched: only SIGHUP reloads it.
    WatchFailed { message: String },
    /// Stopping: no new connections or sessions; `in_flight` requests are
    /// being answered.
    Draining {
        in_flight: usize,
        deadline: Duration,
    },
    /// Stopped waiting: `unfinished` requests were still in flight (their
    /// sessions are closed, their calls cancelled upstream and logged).
    Drained { unfinished: usize },
}

/// Where [`GatewayEvent`]s go.
pub type OnGatewayEvent = Arc<dyn Fn(GatewayEvent) + Send + Sync>;

/// One server's route.
struct Route {
    server: ServerConfig,
    factory: Arc<dyn EndpointFactory>,
    /// The one process of an `instances = "shared"` server, stopped when
    /// the route is retired.
    shared: Option<Arc<SharedInstance>>,
    service: Arc<McpService>,
    reaper: tokio::task::JoinHandle<()>,
    generation: u64,
}

struct Gateway {
    rt: GatewayRuntime,
    /// The approval page's pending approvals, shared by every route.
    approvals: Arc<crate::approvals::Approvals>,
    loopback_bind: bool,
    /// The running config: its shared settings are those at start (a
    /// reload changes only `servers`).
    config: Mutex<GatewayConfig>,
    routes: RwLock<BTreeMap<String, Arc<Route>>>,
    federation: Arc<FederationFactory>,
    federated: Arc<McpService>,
    federated_reaper: tokio::task::JoinHandle<()>,
    draining: AtomicBool,
    generations: AtomicU64,
    on_event: OnGatewayEvent,
}

impl Gateway {
    fn route_for(&self, server: &ServerConfig, generation: u64) -> Arc<Route> {
        let mut cfg = lock(&self.config).proxy_config(server, self.rt.user.clone());
        cfg.provenance_signer = self.rt.signer.clone();
        cfg.confirm_key = Arc::clone(&self.rt.confirm_key);
        cfg.metrics = self.rt.metrics.clone();
        cfg.traces = self.rt.traces.clone();
        cfg.approvals = Some(Arc::clone(&self.approvals));
        cfg.bearer = self.rt.bearer.clone();
        let (factory, shared): (Arc<dyn EndpointFactory>, _) =
            match (&server.instances, &server.upstream) {
                (Instances::Shared, Upstream::Command(cmd)) => {
                    let instance = SharedInstance::start(&cfg, cmd.clone());
                    let factory = SharedRelayFactory::new(
                        Arc::clone(&instance),
                        cfg.clone(),
                        Arc::clone(&self.rt.engine),
                        Arc::clone(&self.rt.log),
                    );
                    (Arc::new(factory), Some(instance))
                }
                _ => {
                    let factory = RelayFactory::new(
                        cfg.clone(),
                        Arc::clone(&self.rt.engine),
                        Arc::clone(&self.rt.log),
                    );
                    (Arc::new(factory), None)
                }
            };
        let service = McpService::new(
            cfg,
            Arc::clone(&factory),
            self.loopback_bind,
            format!("/servers/{}/mcp", server.name),
        );
        let reaper = service.spawn_reaper();
        Arc::new(Route {
            server: server.clone(),
            factory,
            shared,
            service,
            reaper,
            generation,
        })
    }

    /// The federation's members, in config order.
    fn members(&self) -> Vec<MemberDef> {
        let order: Vec<String> = lock(&self.config)
            .servers
            .iter()
            .map(|s| s.name.clone())
            .collect();
        let routes = self.routes.read().unwrap_or_else(|p| p.into_inner());
        order
            .iter()
            .filter_map(|name| routes.get(name))
            .map(|r| MemberDef {
                name: r.server.name.clone(),
                factory: Arc::clone(&r.factory),
                generation: r.generation,
            })
            .collect()
    }

    fn services(&self) -> Vec<Arc<McpService>> {
        let mut all: Vec<Arc<McpService>> = self
            .routes
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .map(|r| Arc::clone(&r.service))
            .collect();
        all.push(Arc::clone(&self.federated));
        all
    }

    fn in_flight(&self) -> usize {
        self.services().iter().map(|s| s.requests_in_flight()).sum()
    }

    /// Reads the config file again and applies what changed about its
    /// servers.
    async fn reload(&self, trigger: Trigger) {
        let path = lock(&self.config).file.clone();
        let new = match GatewayConfig::load(&path) {
            Ok(c) => c,
            Err(e) => return (self.on_event)(GatewayEvent::ConfigRejected(Arc::new(e))),
        };
        let restart = restart_needed(&lock(&self.config), &new);
        if !restart.is_empty() {
            (self.on_event)(GatewayEvent::RestartNeeded {
                keys: restart.clone(),
            });
        }
        let (mut added, mut removed, mut restarted) = (Vec::new(), Vec::new(), Vec::new());
        let mut retired = Vec::new();
        {
            let old: BTreeMap<String, Arc<Route>> = self
                .routes
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            let mut next = BTreeMap::new();
            for server in &new.servers {
                match old.get(&server.name) {
                    Some(r) if r.server.same_settings(server) => {
                        next.insert(server.name.clone(), Arc::clone(r));
                    }
                    Some(r) => {
                        restarted.push(server.name.clone());
                        retired.push(Arc::clone(r));
                        let g = self.generations.fetch_add(1, Ordering::Relaxed);
                        next.insert(server.name.clone(), self.route_for(server, g));
                    }
                    None => {
                        added.push(server.name.clone());
                        let g = self.generations.fetch_add(1, Ordering::Relaxed);
                        next.insert(server.name.clone(), self.route_for(server, g));
                    }
                }
            }
            for (name, r) in &old {
                if !next.contains_key(name) {
                    removed.push(name.clone());
                    retired.push(Arc::clone(r));
                }
            }
            *self.routes.write().unwrap_or_else(|p| p.into_inner()) = next;
            lock(&self.config).servers = new.servers.clone();
        }
        if added.is_empty() && removed.is_empty() && restarted.is_empty() {
            if trigger == Trigger::Hangup || restart.is_empty() {
                (self.on_event)(GatewayEvent::ConfigUnchanged);
            }
            return;
        }
        self.federation.set_members(self.members()).await;
        for r in retired {
            r.reaper.abort();
            r.service.close_all().await;
            if let Some(shared) = &r.shared {
                shared.stop();
            }
        }
        (self.on_event)(GatewayEvent::ConfigApplied {
            added,
            removed,
            restarted,
        });
    }

    /// `/readyz`: the policies are loaded (they are, or warden would not
    /// have started; a failed reload keeps the last good set) and every
    /// `required` server is reachable. Also what the state server (Redis)
    /// and the record server (PostgreSQL) answer: shown, but never a
    /// reason to be unready, since every replica shares them, and calls that need no counter still pass while
    /// it is down (a load balancer taking all replicas out would stop
    /// those too).
    async fn readiness(&self) -> (Result<(), Vec<String>>, Option<String>) {
        let required: Vec<ServerConfig> = self
            .routes
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .filter(|r| r.server.required)
            .map(|r| r.server.clone())
            .collect();
        let probes = required.iter().map(|s| async move {
            readiness::probe(&s.upstream)
                .await
                .map_err(|why| format!("server `{}`: {why}", s.name))
        });
        let engine = Arc::clone(&self.rt.engine);
        let stores = tokio::task::spawn_blocking(move || {
            [
                (
                    "state store",
                    "calls that need a counter are denied",
                    engine.state_health(),
                ),
                (
                    "record store",
                    "calls that ask `created by agent` are denied",
                    engine.records_health(),
                ),
            ]
        });
        let failures: Vec<String> = futures::future::join_all(probes)
            .await
            .into_iter()
            .filter_map(Result::err)
            .collect();
        let lines: Vec<String> = stores
            .await
            .map(|all| {
                all.into_iter()
                    .filter_map(|(what, meanwhile, h)| {
                        let h = h?;
                        Some(match h.problem {
                            None => format!("{what} `{}`: ok", h.store),
                            Some(why) => {
                                format!("{what} `{}`: unavailable, {meanwhile}: {why}", h.store)
                            }
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        let store = (!lines.is_empty()).then(|| lines.join("\n"));
        if self.draining.load(Ordering::Relaxed) {
            return (Err(vec!["warden is shutting down".into()]), store);
        }
        if failures.is_empty() {
            (Ok(()), store)
        } else {
            (Err(failures), store)
        }
    }
}

/// The settings a reload cannot apply to a running gateway.
fn restart_needed(old: &GatewayConfig, new: &GatewayConfig) -> Vec<&'static str> {
    let mut keys = Vec::new();
    let mut check = |key: &'static str, same: bool| {
        if !same {
            keys.push(key);
        }
    };
    check("listen", old.listen == new.listen);
    check("policies", old.policies == new.policies);
    check("decision_log", old.decision_log == new.decision_log);
    check(
        "decision_log_fsync",
        old.decision_log_fsync == new.decision_log_fsync,
    );
    check("redact", old.redact == new.redact);
    check(
        "decision_log_max_value",
        old.decision_log_max_value == new.decision_log_max_value,
    );
    check(
        "decision_log_rotate_bytes",
        old.decision_log_rotate_bytes == new.decision_log_rotate_bytes,
    );
    check(
        "decision_log_checkpoint_every",
        old.decision_log_checkpoint_every == new.decision_log_checkpoint_every,
    );
    check("state", old.state == new.state);
    check("records", old.records == new.records);
    check("mode", old.shadow_all == new.shadow_all);
    check("signing_key", old.signing_key == new.signing_key);
    check("confirm_key", old.confirm_key == new.confirm_key);
    check("allow_origins", old.allow_origins == new.allow_origins);
    check(
        "identity",
        format!("{:?}", old.identity) == format!("{:?}", new.identity),
    );
    check("tls", format!("{:?}", old.tls) == format!("{:?}", new.tls));
    check(
        "auth",
        format!("{:?}", old.auth) == format!("{:?}", new.auth),
    );
    check(
        "limits",
        format!("{:?}", old.limits) == format!("{:?}", new.limits),
    );
    check("federation.separator", old.separator == new.separator);
    check("metrics.listen", old.metrics_listen == new.metrics_listen);
    check("traces", old.traces == new.traces);
    check("approvals", old.approvals_webhook == new.approvals_webhook);
    check(
        "tools",
        old.tool_pins.name() == new.tool_pins.name() && old.pin_file == new.pin_file,
    );
    check("public_url", old.public_url == new.public_url);
    keys
}

/// Serves the gateway on `listener` until `stop` completes, then drains:
/// no new connections or sessions, requests in flight get up to
/// `[limits].drain_timeout` to finish, then every session is closed (calls
/// still in flight are cancelled upstream and their end logged).
pub async fn serve_gateway(
    config: GatewayConfig,
    rt: GatewayRuntime,
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    mut policy_reloads: mpsc::UnboundedReceiver<()>,
    on_event: OnGatewayEvent,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ProxyError> {
    let addr = listener.local_addr().map_err(|e| ProxyError::Listen {
        addr: config.listen.clone(),
        message: e.to_string(),
    })?;
    let loopback_bind = addr.ip().is_loopback();
    let limits = config.limits.listen;
    let drain_timeout = config.limits.drain_timeout;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let approvals = crate::approvals::Approvals::new(
        config
            .public_url
            .clone()
            .unwrap_or_else(|| format!("{scheme}://{addr}")),
        Arc::clone(&rt.engine),
        Arc::clone(&rt.log),
        rt.bearer.clone(),
        config.approvals_webhook.as_ref(),
    )
    .map_err(ProxyError::Webhook)?;
    let mut http_cfg = config.http_config(rt.user.clone());
    http_cfg.approvals = Some(Arc::clone(&approvals));
    http_cfg.bearer = rt.bearer.clone();
    http_cfg.metrics = rt.metrics.clone();
    http_cfg.traces = rt.traces.clone();
    let federation = Arc::new(FederationFactory::new(
        &config.separator,
        Vec::new(),
        DEFAULT_FAN_TIMEOUT,
    ));
    let federated = McpService::new(
        http_cfg,
        Arc::clone(&federation) as Arc<dyn EndpointFactory>,
        loopback_bind,
        "/mcp".to_string(),
    );
    let federated_reaper = federated.spawn_reaper();
    let servers = config.servers.clone();
    let gw = Arc::new(Gateway {
        rt,
        approvals,
        loopback_bind,
        config: Mutex::new(config),
        routes: RwLock::new(BTreeMap::new()),
        federation,
        federated,
        federated_reaper,
        draining: AtomicBool::new(false),
        generations: AtomicU64::new(1),
        on_event,
    });
    {
        let mut routes = BTreeMap::new();
        for s in &servers {
            let g = gw.generations.fetch_add(1, Ordering::Relaxed);
            routes.insert(s.name.clone(), gw.route_for(s, g));
        }
        *gw.routes.write().unwrap_or_else(|p| p.into_inner()) = routes;
    }
    gw.federation.set_members(gw.members()).await;

    let reload_gw = Arc::clone(&gw);
    let reloads = tokio::spawn(async move {
        while policy_reloads.recv().await.is_some() {
            for s in reload_gw.services() {
                s.policies_changed().await;
            }
        }
    });
    let (trigger_tx, mut triggers) = mpsc::unbounded_channel::<Trigger>();
    let file = lock(&gw.config).file.clone();
    let debounce = lock(&gw.config).reload_debounce;
    let _watch = match watch::watch_config(&file, debounce, trigger_tx.clone()) {
        Ok(w) => Some(w),
        Err(message) => {
            (gw.on_event)(GatewayEvent::WatchFailed { message });
            None
        }
    };
    if let Err(message) = watch::on_sighup(trigger_tx) {
        (gw.on_event)(GatewayEvent::WatchFailed {
            message: format!("SIGHUP cannot be caught: {message}"),
        });
    }
    let config_gw = Arc::clone(&gw);
    let config_reloads = tokio::spawn(async move {
        let mut last_text = lock(&config_gw.config).text.clone();
        while let Some(trigger) = triggers.recv().await {
            // A burst of events (or a save that did not change the text)
            // applies once, or not at all.
            let path = lock(&config_gw.config).file.clone();
            let text: Option<Arc<str>> = std::fs::read_to_string(&path).ok().map(Arc::from);
            if trigger == Trigger::Changed && text.as_ref().is_some_and(|t| *t == last_text) {
                continue;
            }
            config_gw.reload(trigger).await;
            if let Some(t) = text {
                last_text = t;
            }
        }
    });

    let app = router(Arc::clone(&gw)).merge(crate::approvals::router(Arc::clone(&gw.approvals)));
    (gw.on_event)(GatewayEvent::Listening {
        addr,
        tls: tls.is_some(),
    });
    let stopping = CancellationToken::new();
    let trigger = stopping.clone();
    let stop_gw = Arc::clone(&gw);
    let stopper = tokio::spawn(async move {
        stop.await;
        // New sessions are refused from here on; the listener stops
        // accepting right after.
        stop_gw.draining.store(true, Ordering::SeqCst);
        trigger.cancel();
    });
    let mut conns =
        crate::listener::serve_with_tls(listener, app, limits, tls, stopping.clone()).await;
    stopper.abort();
    (gw.on_event)(GatewayEvent::Draining {
        in_flight: gw.in_flight(),
        deadline: drain_timeout,
    });
    let deadline = Instant::now() + drain_timeout;
    while gw.in_flight() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    (gw.on_event)(GatewayEvent::Drained {
        unfinished: gw.in_flight(),
    });
    config_reloads.abort();
    reloads.abort();
    gw.federated_reaper.abort();
    for s in gw.services() {
        s.close_all().await;
    }
    for r in gw.routes.read().unwrap_or_else(|p| p.into_inner()).values() {
        r.reaper.abort();
        if let Some(shared) = &r.shared {
            shared.stop();
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    // Let the upstream links end their sessions (DELETE) or children exit.
    tokio::time::sleep(Duration::from_millis(200)).await;
    Ok(())
}

fn router(gw: Arc<Gateway>) -> axum::Router {
    use axum::routing::{any, get};
    const METADATA: &str = "/.well-known/oauth-protected-resource";
    axum::Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/mcp", any(federated))
        .route("/servers/{name}/mcp", any(one_server))
        .route(METADATA, get(federated_metadata))
        .route(&format!("{METADATA}/mcp"), get(federated_metadata))
        .route(
            &format!("{METADATA}/servers/{{name}}/mcp"),
            get(server_metadata),
        )
        .with_state(gw)
}

async fn healthz() -> Response {
    (StatusCode::OK, "ok\n").into_response()
}

async fn readyz(State(gw): State<Arc<Gateway>>) -> Response {
    let (ready, store) = gw.readiness().await;
    let store = store.map(|s| format!("{s}\n")).unwrap_or_default();
    match ready {
        Ok(()) => (StatusCode::OK, format!("ready\n{store}")).into_response(),
        Err(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {}\n{store}", why.join("; ")),
        )
            .into_response(),
    }
}

/// While draining, a request that would open a session (no
/// `Mcp-Session-Id`, or a 2026-07-28 call, which has none) is refused; the
/// sessions already open may finish what they are doing.
fn refused_while_draining(gw: &Gateway, req: &Request) -> Option<Response> {
    if !gw.draining.load(Ordering::SeqCst) || req.headers().contains_key("mcp-session-id") {
        return None;
    }
    let body = json!({
        "jsonrpc": "2.0",
        "id": null,
        "error": {"code": crate::jsonrpc::UPSTREAM_UNAVAILABLE, "message": "warden is shutting down; retry on another replica"},
    });
    Some(
        (
            StatusCode::SERVICE_UNAVAILABLE,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response(),
    )
}

async fn federated(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    if let Some(refused) = refused_while_draining(&gw, &req) {
        return refused;
    }
    Arc::clone(&gw.federated).handle(req).await
}

fn route_of(gw: &Gateway, name: &str) -> Option<Arc<Route>> {
    gw.routes
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .get(name)
        .cloned()
}

fn no_such_server(gw: &Gateway, name: &str) -> Response {
    let known: Vec<String> = gw
        .routes
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .keys()
        .cloned()
        .collect();
    let body = json!({
        "jsonrpc": "2.0",
        "id": null,
        "error": {
            "code": crate::jsonrpc::INVALID_REQUEST,
            "message": format!("no server `{name}` behind this warden; servers: {}", known.join(", ")),
        },
    });
    (
        StatusCode::NOT_FOUND,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn one_server(
    State(gw): State<Arc<Gateway>>,
    UrlPath(name): UrlPath<String>,
    req: Request,
) -> Response {
    let Some(route) = route_of(&gw, &name) else {
        return no_such_server(&gw, &name);
    };
    if let Some(refused) = refused_while_draining(&gw, &req) {
        return refused;
    }
    Arc::clone(&route.service).handle(req).await
}

async fn federated_metadata(State(gw): State<Arc<Gateway>>) -> Response {
    gw.federated.resource_metadata()
}

async fn server_metadata(
    State(gw): State<Arc<Gateway>>,
    UrlPath(name): UrlPath<String>,
) -> Response {
    match route_of(&gw, &name) {
        Some(route) => route.service.resource_metadata(),
        None => no_such_server(&gw, &name),
    }
}
