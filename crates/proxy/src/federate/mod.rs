//! The federated `/mcp` endpoint of `warden serve`: one client session in
//! front of several servers, a router between the client and one governed
//! relay per server.
//!
//! A [`Federation`] is a [`ClientEndpoint`] made of other endpoints, its
//! *members*: one per configured server, each opened by that server's own
//! factory (the same [`crate::endpoint::RelayFactory`] that serves
//! `/servers/<name>/mcp`), under the same session label, so that `per
//! session` limits count the whole session. The federation decides
//! nothing: each member relay governs its own server's calls under the
//! server's real name and with the upstream's own tool name, as `warden
//! proxy` does. What the federation owns is routing and naming:
//!
//! - **Names** ([`names`]): tools and prompts are `<server><sep><name>`,
//!   resource URIs `<server>+<uri>`; a request naming a tool, prompt or
//!   resource goes to its server with the upstream's own name, and what
//!   comes back shows URIs in federated form ([`merge::federate_uris`]).
//! - **Fan-out** (`fanout`): `initialize`, the four lists and
//!   `logging/setLevel` go to every member; the answers merge into one
//!   ([`merge`]): a member that fails or does not answer in time is left
//!   out with a log line, never failing the list. List cursors page across
//!   servers.
//! - **Ids** (`routes`): every request the federation sends a member has an
//!   id of its own (random), so members never see colliding ids and an
//!   answer finds its client request without a search; requests from a
//!   member (elicitation, sampling, roots) get a random id toward the
//!   client, and the client's answer goes back to that member only.
//! - **Membership**: a config reload adds and removes members in every
//!   open federated session ([`FederationFactory::set_members`]); the
//!   client is told its lists changed.
//!
//! Methods that name no server (`tasks/*`, `subscriptions/listen`, unknown
//! ones) cannot be routed and are answered -32601 with the per-server route
//! to use instead.

mod fanout;
pub(crate) mod merge;
pub(crate) mod names;
mod routes;
#[cfg(test)]
mod tests;

use crate::bearer::Caller;
use crate::config::ProxyError;
use crate::endpoint::{BoxFuture, ClientEndpoint, EndpointFactory, OpenedEndpoint};
use crate::framing::Frame;
use crate::jsonrpc;
use crate::relay::{ClientOut, Hints, Outgoing};
use names::Namer;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// How long a fanned-out request waits for the slowest member before the
/// answer is given without it.
pub(crate) const DEFAULT_FAN_TIMEOUT: Duration = Duration::from_secs(10);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One configured server as the federation opens it.
#[derive(Clone)]
pub(crate) struct MemberDef {
    pub(crate) name: String,
    pub(crate) factory: Arc<dyn EndpointFactory>,
    /// Changes when the server's configuration does: a member whose
    /// generation changed is restarted by [`FederationFactory::set_members`].
    pub(crate) generation: u64,
}

/// Opens federated sessions and keeps the set of servers they span.
pub(crate) struct FederationFactory {
    namer: Namer,
    fan_timeout: Duration,
    members: Mutex<Vec<MemberDef>>,
    live: Mutex<Vec<Weak<Federation>>>,
}

impl FederationFactory {
    pub(crate) fn new(separator: &str, members: Vec<MemberDef>, fan_timeout: Duration) -> Self {
        FederationFactory {
            namer: Namer::new(separator),
            fan_timeout,
            members: Mutex::new(members),
            live: Mutex::new(Vec::new()),
        }
    }

    /// The federated sessions still open.
    fn live(&self) -> Vec<Arc<Federation>> {
        let mut live = lock(&self.live);
        live.retain(|w| w.strong_count() > 0);
        live.iter().filter_map(Weak::upgrade).collect()
    }

    /// Changes the set of servers: new sessions span `members`, and every
    /// open session gains the added ones, loses the removed ones and
    /// restarts those whose generation changed; members that did not change
    /// are left alone (their calls in flight go on).
    pub(crate) async fn set_members(&self, members: Vec<MemberDef>) {
        let old = std::mem::replace(&mut *lock(&self.members), members.clone());
        let changed: Vec<&MemberDef> = members
            .iter()
            .filter(|m| {
                !old.iter()
                    .any(|o| o.name == m.name && o.generation == m.generation)
            })
            .collect();
        let removed: Vec<String> = old
            .iter()
            .filter(|o| !members.iter().any(|m| m.name == o.name))
            .map(|o| o.name.clone())
            .collect();
        if changed.is_empty() && removed.is_empty() {
            let order: Vec<String> = members.iter().map(|m| m.name.clone()).collect();
            for fed in self.live() {
                lock(&fed.st).order = order.clone();
            }
            return;
        }
        let order: Vec<String> = members.iter().map(|m| m.name.clone()).collect();
        for fed in self.live() {
            lock(&fed.st).order = order.clone();
            for name in &removed {
                fed.remove_member(name, "it was removed from the configuration")
                    .await;
            }
            for def in &changed {
                fed.remove_member(&def.name, "its configuration changed")
                    .await;
                match open_member(def.factory.as_ref(), fed.label.clone()).await {
                    Ok((opened, says)) => fed.add_member(&def.name, opened, says).await,
                    Err(e) => tracing::warn!(
                        "federated session {}: server `{}` could not be started: {e}",
                        fed.label,
                        def.name
                    ),
                }
            }
            fed.lists_changed().await;
        }
    }
}

impl EndpointFactory for FederationFactory {
    fn open(
        &self,
        label: String,
        to_client: ClientOut,
    ) -> BoxFuture<'_, Result<OpenedEndpoint, ProxyError>> {
        Box::pin(async move {
            let defs = lock(&self.members).clone();
            let shutdown = CancellationToken::new();
            let fed = Arc::new(Federation {
                label: label.clone(),
                shutdown: shutdown.clone(),
                namer: self.namer.clone(),
                fan_timeout: self.fan_timeout,
                to_client,
                hints: Hints::default(),
                st: Mutex::new(State {
                    order: defs.iter().map(|d| d.name.clone()).collect(),
                    ..State::default()
                }),
            });
            let opened = futures::future::join_all(
                defs.iter()
                    .map(|d| open_member(d.factory.as_ref(), label.clone())),
            )
            .await;
            for (def, result) in defs.iter().zip(opened) {
                match result {
                    Ok((o, says)) => fed.attach(&def.name, o, says),
                    Err(e) => {
                        // Left out of lists; a call to it is answered with
                        // why (routes::unavailable).
                        tracing::warn!(
                            "federated session {label}: server `{}` could not be started: {e}",
                            def.name
                        );
                        lock(&fed.st).failed.insert(def.name.clone(), e.to_string());
                    }
                }
            }
            lock(&self.live).push(Arc::downgrade(&fed));
            Ok(OpenedEndpoint {
                endpoint: fed,
                shutdown,
            })
        })
    }
}

/// Opens one member's session: what it sends comes to the federation on
/// the channel returned, to be rewritten for the client.
async fn open_member(
    factory: &dyn EndpointFactory,
    label: String,
) -> Result<(OpenedEndpoint, mpsc::Receiver<Outgoing>), ProxyError> {
    let (tx, says) = mpsc::channel::<Outgoing>(1024);
    Ok((factory.open(label, tx.into()).await?, says))
}

/// A member of one federated session.
struct Member {
    endpoint: Arc<dyn ClientEndpoint>,
    shutdown: CancellationToken,
    /// Its initialize result's `capabilities`, once known: lists are asked
    /// only of members that have the capability.
    capabilities: Option<Value>,
}

/// One federated client session.
pub(crate) struct Federation {
    label: String,
    /// Cancelled when the session ends: every member's link stops with it
    /// (each member's own token is tied to it in `attach`).
    shutdown: CancellationToken,
    namer: Namer,
    fan_timeout: Duration,
    to_client: ClientOut,
    hints: Hints,
    st: Mutex<State>,
}

#[derive(Default)]
struct State {
    members: BTreeMap<String, Member>,
    /// The servers in config order: lists and initialize merge in it.
    order: Vec<String>,
    /// Servers whose member could not be started, with why.
    failed: HashMap<String, String>,
    /// Requests sent to members, by the federation's own id.
    pending: HashMap<String, routes::Pending>,
    /// The client's requests in flight: client id → (member, own id), for
    /// the client's cancellations.
    client_reqs: HashMap<String, (String, Value)>,
    /// Requests of members to the client, by the id the client got:
    /// (member, the member's id).
    to_client_reqs: HashMap<String, (String, Value)>,
    /// The client's initialize request, replayed to members added later.
    initialize: Option<Value>,
    initialized: bool,
    /// When each `notifications/*/list_changed` last went to the client:
    /// after a policy reload every member announces its change, and one
    /// announcement makes the client list every server again.
    announced: HashMap<String, std::time::Instant>,
}

impl State {
    /// The members' names in config order (a member the order does not
    /// know yet comes last).
    fn ordered_members(&self) -> Vec<String> {
        let mut names: Vec<String> = self.members.keys().cloned().collect();
        names.sort_by_key(|n| self.order.iter().position(|o| o == n).unwrap_or(usize::MAX));
        names
    }
}

impl Federation {
    /// Makes `opened` a member and starts relaying what it sends.
    fn attach(
        self: &Arc<Self>,
        name: &str,
        opened: OpenedEndpoint,
        mut outgoing: mpsc::Receiver<Outgoing>,
    ) {
        let OpenedEndpoint { endpoint, shutdown } = opened;
        // The member's link ends with the session, even once the
        // federation itself is gone (the session drops it when it closes).
        let session_ended = self.shutdown.clone();
        let member_ended = shutdown.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = session_ended.cancelled() => member_ended.cancel(),
                () = member_ended.cancelled() => {}
            }
        });
        {
            let mut st = lock(&self.st);
            st.failed.remove(name);
            st.members.insert(
                name.to_string(),
                Member {
                    endpoint: Arc::clone(&endpoint),
                    shutdown,
                    capabilities: None,
                },
            );
        }
        let weak = Arc::downgrade(self);
        let member = name.to_string();
        tokio::spawn(async move {
            while let Some(out) = outgoing.recv().await {
                let Some(fed) = weak.upgrade() else { break };
                // Another endpoint under this name means this one was
                // replaced: what it still sends belongs to no one.
                let current = lock(&fed.st)
                    .members
                    .get(&member)
                    .is_some_and(|m| Arc::ptr_eq(&m.endpoint, &endpoint));
                if current {
                    fed.from_member(&member, out).await;
                }
            }
        });
    }

    /// Adds a member to a session already open: it gets the client's
    /// initialize (and `initialized`) first.
    async fn add_member(
        self: &Arc<Self>,
        name: &str,
        opened: OpenedEndpoint,
        says: mpsc::Receiver<Outgoing>,
    ) {
        self.attach(name, opened, says);
        let init = lock(&self.st).initialize.clone();
        if let Some(init) = init {
            self.replay_initialize(name, init).await;
        }
    }

    /// Ends a member: its requests in flight are answered with an error,
    /// its upstream link stopped.
    async fn remove_member(self: &Arc<Self>, name: &str, why: &str) {
        let member = lock(&self.st).members.remove(name);
        let Some(member) = member else { return };
        self.fail_pending_of(name, why).await;
        Arc::clone(&member.endpoint).client_gone().await;
        member.shutdown.cancel();
    }

    /// Tells the client that every list may have changed.
    async fn lists_changed(&self) {
        for method in [
            "notifications/tools/list_changed",
            "notifications/prompts/list_changed",
            "notifications/resources/list_changed",
        ] {
            self.send_client(jsonrpc::notification(method, None), None, false)
                .await;
        }
    }

    async fn send_client(&self, msg: Value, related: Option<Value>, response: bool) {
        self.send_client_text(msg.to_string(), related, response)
            .await;
    }

    async fn send_client_text(&self, text: String, related: Option<Value>, response: bool) {
        let _ = self
            .to_client
            .send(Outgoing {
                text,
                related,
                response,
                detach: false,
            })
            .await;
    }

    /// The member endpoint for `name`, or why there is none.
    fn member(&self, name: &str) -> Result<Arc<dyn ClientEndpoint>, Option<String>> {
        let st = lock(&self.st);
        match st.members.get(name) {
            Some(m) => Ok(Arc::clone(&m.endpoint)),
            None => Err(st.failed.get(name).cloned()),
        }
    }

    /// The members' names, in config order.
    fn member_names(&self) -> Vec<String> {
        lock(&self.st).ordered_members()
    }
}

impl Drop for Federation {
    fn drop(&mut self) {
        // Nothing can reach the members any more: stop their links.
        self.shutdown.cancel();
    }
}

impl ClientEndpoint for Federation {
    fn client_frame(
        self: Arc<Self>,
        frame: Frame,
        caller: Option<Arc<Caller>>,
    ) -> BoxFuture<'static, ()> {
        Box::pin(async move { self.on_client_frame(frame, caller).await })
    }

    fn client_gone(self: Arc<Self>) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            let members: Vec<Arc<dyn ClientEndpoint>> = lock(&self.st)
                .members
                .values()
                .map(|m| Arc::clone(&m.endpoint))
                .collect();
            futures::future::join_all(members.into_iter().map(|m| m.client_gone())).await;
        })
    }

    fn policies_changed(self: Arc<Self>) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            // Each member refreshes its own view of its server's tools and
            // tells the client; the client lists again either way.
            let members: Vec<Arc<dyn ClientEndpoint>> = lock(&self.st)
                .members
                .values()
                .map(|m| Arc::clone(&m.endpoint))
                .collect();
            futures::future::join_all(members.into_iter().map(|m| m.policies_changed())).await;
        })
    }

    fn hints(&self) -> Hints {
        Arc::clone(&self.hints)
    }
}
