//! The federation's routing against fake members: what each member is
//! sent, under which id, and what the client gets back, written as a
//! client and a member that try to confuse it would.

use super::*;
use serde_json::json;
use tokio::sync::mpsc::{Receiver, Sender, UnboundedReceiver, UnboundedSender};

/// A member that records what it is sent and says what the test tells it.
struct FakeMember {
    got: UnboundedSender<Value>,
}

impl ClientEndpoint for FakeMember {
    fn client_frame(
        self: Arc<Self>,
        frame: Frame,
        _: Option<Arc<Caller>>,
    ) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            if let Frame::Line(bytes) = frame {
                let _ = self.got.send(serde_json::from_slice(&bytes).unwrap());
            }
        })
    }
    fn client_gone(self: Arc<Self>) -> BoxFuture<'static, ()> {
        Box::pin(async {})
    }
    fn policies_changed(self: Arc<Self>) -> BoxFuture<'static, ()> {
        Box::pin(async {})
    }
    fn hints(&self) -> Hints {
        Hints::default()
    }
}

/// Opens one fake member per session; the test holds its other ends.
/// What a fake member's session is opened with: where it records what it
/// got, what it says, and its link's token.
type FakeEnds = (
    UnboundedSender<Value>,
    Receiver<Outgoing>,
    CancellationToken,
);

struct FakeFactory {
    ends: Mutex<Vec<FakeEnds>>,
}

impl EndpointFactory for FakeFactory {
    fn open(
        &self,
        _label: String,
        to_client: ClientOut,
    ) -> BoxFuture<'_, Result<OpenedEndpoint, ProxyError>> {
        Box::pin(async move {
            let (got, mut says, shutdown) = lock(&self.ends).pop().expect("one session per fake");
            // What the test makes the member say goes where the federation
            // told it to.
            tokio::spawn(async move {
                while let Some(out) = says.recv().await {
                    if to_client.send(out).await.is_err() {
                        break;
                    }
                }
            });
            Ok(OpenedEndpoint {
                endpoint: Arc::new(FakeMember { got }),
                shutdown,
            })
        })
    }
}

/// The test's side of one member: what it was sent, and how it answers.
struct Member {
    got: UnboundedReceiver<Value>,
    says: Sender<Outgoing>,
    /// The token that stops this member's upstream link.
    link: CancellationToken,
}

impl Member {
    async fn next(&mut self) -> Value {
        tokio::time::timeout(Duration::from_secs(5), self.got.recv())
            .await
            .expect("the member got a message")
            .expect("open")
    }

    async fn say(&self, msg: Value, related: Option<Value>) {
        let response = msg.get("method").is_none();
        self.says
            .send(Outgoing {
                text: msg.to_string(),
                related,
                response,
                detach: false,
            })
            .await
            .unwrap();
    }
}

fn fake(name: &str) -> (MemberDef, Member) {
    let (got_tx, got) = mpsc::unbounded_channel();
    let (says, outgoing) = mpsc::channel(64);
    let link = CancellationToken::new();
    let factory = Arc::new(FakeFactory {
        ends: Mutex::new(vec![(got_tx, outgoing, link.clone())]),
    });
    (
        MemberDef {
            name: name.into(),
            factory,
            generation: 1,
        },
        Member { got, says, link },
    )
}

struct Session {
    fed: Arc<dyn ClientEndpoint>,
    to_client: Receiver<Outgoing>,
    factory: FederationFactory,
    shutdown: CancellationToken,
}

impl Session {
    async fn send(&self, msg: Value) {
        Arc::clone(&self.fed)
            .client_frame(Frame::Line(msg.to_string().into_bytes()), None)
            .await;
    }

    async fn next(&mut self) -> (Value, Option<Value>) {
        let out = tokio::time::timeout(Duration::from_secs(5), self.to_client.recv())
            .await
            .expect("the client got a message")
            .expect("open");
        (serde_json::from_str(&out.text).unwrap(), out.related)
    }
}

async fn session(members: Vec<MemberDef>, fan_timeout: Duration) -> Session {
    let factory = FederationFactory::new("__", members, fan_timeout);
    let (tx, to_client) = mpsc::channel(1024);
    let opened = factory.open("test".into(), tx.into()).await.unwrap();
    Session {
        fed: opened.endpoint,
        to_client,
        factory,
        shutdown: opened.shutdown,
    }
}

#[tokio::test]
async fn a_call_reaches_its_server_under_its_own_name_and_a_fresh_id() {
    let (a, mut ma) = fake("lims");
    let (b, mut mb) = fake("genomics");
    let mut s = session(vec![a, b], DEFAULT_FAN_TIMEOUT).await;
    s.send(json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
        "params": {"name": "genomics__get_sample", "arguments": {"id": "S1"}}}))
        .await;
    let got = mb.next().await;
    assert_eq!(got["params"]["name"], "get_sample");
    assert_eq!(got["params"]["arguments"]["id"], "S1");
    let own = got["id"].clone();
    assert_ne!(own, json!(7), "members never see the client's id");
    assert!(own.as_str().unwrap().len() > 32, "a random id: {own}");
    assert!(ma.got.try_recv().is_err(), "the other server got nothing");

    mb.say(
        json!({"jsonrpc": "2.0", "id": own, "result": {"content": []}}),
        Some(own.clone()),
    )
    .await;
    let (answer, related) = s.next().await;
    assert_eq!(
        answer,
        json!({"jsonrpc": "2.0", "id": 7, "result": {"content": []}})
    );
    assert_eq!(related, Some(json!(7)));
    // A second answer under the same id finds nothing and goes nowhere.
    mb.say(
        json!({"jsonrpc": "2.0", "id": own, "result": {"content": ["again"]}}),
        None,
    )
    .await;
    s.send(json!({"jsonrpc": "2.0", "id": 8, "method": "ping"}))
        .await;
    let (pong, _) = s.next().await;
    assert_eq!(pong["id"], 8, "the replayed answer was dropped: {pong}");
}

#[tokio::test]
async fn names_that_reach_no_server_are_answered_by_warden() {
    let (a, mut ma) = fake("lims");
    let mut s = session(vec![a], DEFAULT_FAN_TIMEOUT).await;
    for name in ["nope__x", "get_sample", "lims__", "__x"] {
        s.send(
            json!({"jsonrpc": "2.0", "id": name, "method": "tools/call", "params": {"name": name}}),
        )
        .await;
        let (answer, _) = s.next().await;
        assert_eq!(
            answer["error"]["code"],
            jsonrpc::INVALID_PARAMS,
            "{name}: {answer}"
        );
        assert!(
            answer["error"]["message"]
                .as_str()
                .unwrap()
                .contains("lims"),
            "{answer}"
        );
    }
    s.send(json!({"jsonrpc": "2.0", "id": 1, "method": "tasks/get", "params": {"taskId": "t"}}))
        .await;
    let (answer, _) = s.next().await;
    assert_eq!(answer["error"]["code"], jsonrpc::METHOD_NOT_FOUND);
    assert!(
        ma.got.try_recv().is_err(),
        "nothing was forwarded to a guess"
    );
}

#[tokio::test]
async fn lists_merge_in_config_order_and_page_per_server() {
    let (a, mut ma) = fake("zeta");
    let (b, mut mb) = fake("alpha");
    let (c, mut mc) = fake("down");
    let mut s = session(vec![a, b, c], DEFAULT_FAN_TIMEOUT).await;
    s.send(json!({"jsonrpc": "2.0", "id": "l1", "method": "tools/list", "params": {}}))
        .await;
    let (qa, qb, qc) = (ma.next().await, mb.next().await, mc.next().await);
    assert_ne!(qa["id"], qb["id"]);
    mb.say(
        json!({"jsonrpc": "2.0", "id": qb["id"], "result": {"tools": [{"name": "t"}]}}),
        None,
    )
    .await;
    mc.say(json!({"jsonrpc": "2.0", "id": qc["id"], "error": {"code": -32001, "message": "upstream down"}}), None)
        .await;
    ma.say(json!({"jsonrpc": "2.0", "id": qa["id"], "result": {"tools": [{"name": "t"}], "nextCursor": "z2"}}), None)
        .await;
    let (page, _) = s.next().await;
    assert_eq!(page["id"], "l1");
    let names: Vec<&str> = page["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["zeta__t", "alpha__t"],
        "config order, the failing server left out"
    );
    let cursor = page["result"]["nextCursor"].clone();
    assert!(cursor.is_string());

    s.send(
        json!({"jsonrpc": "2.0", "id": "l2", "method": "tools/list", "params": {"cursor": cursor}}),
    )
    .await;
    let q2 = ma.next().await;
    assert_eq!(
        q2["params"]["cursor"], "z2",
        "only the server with more is asked, with its cursor"
    );
    ma.say(
        json!({"jsonrpc": "2.0", "id": q2["id"], "result": {"tools": [{"name": "u"}]}}),
        None,
    )
    .await;
    let (page2, _) = s.next().await;
    assert_eq!(page2["result"], json!({"tools": [{"name": "zeta__u"}]}));
    assert!(mb.got.try_recv().is_err() && mc.got.try_recv().is_err());

    s.send(json!({"jsonrpc": "2.0", "id": "l3", "method": "tools/list", "params": {"cursor": "forged"}}))
        .await;
    let (bad, _) = s.next().await;
    assert_eq!(bad["error"]["code"], jsonrpc::INVALID_PARAMS);
}

#[tokio::test]
async fn a_member_that_does_not_answer_is_left_out_and_cancelled() {
    let (a, mut ma) = fake("slow");
    let (b, mut mb) = fake("fast");
    let mut s = session(vec![a, b], Duration::from_millis(100)).await;
    s.send(json!({"jsonrpc": "2.0", "id": 1, "method": "prompts/list"}))
        .await;
    let qa = ma.next().await;
    let qb = mb.next().await;
    mb.say(
        json!({"jsonrpc": "2.0", "id": qb["id"], "result": {"prompts": [{"name": "p"}]}}),
        None,
    )
    .await;
    let (page, _) = s.next().await;
    assert_eq!(page["result"]["prompts"], json!([{"name": "fast__p"}]));
    let cancel = ma.next().await;
    assert_eq!(cancel["method"], "notifications/cancelled");
    assert_eq!(cancel["params"]["requestId"], qa["id"]);
    // Its late answer changes nothing.
    ma.say(
        json!({"jsonrpc": "2.0", "id": qa["id"], "result": {"prompts": [{"name": "late"}]}}),
        None,
    )
    .await;
    s.send(json!({"jsonrpc": "2.0", "id": 2, "method": "ping"}))
        .await;
    assert_eq!(s.next().await.0["id"], 2);
}

#[tokio::test]
async fn a_members_question_is_answered_only_under_the_id_the_client_was_given() {
    let (a, mut ma) = fake("lims");
    let mut s = session(vec![a], DEFAULT_FAN_TIMEOUT).await;
    s.send(json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {"name": "lims__delete"}}))
        .await;
    let call = ma.next().await;
    // The member's relay asks the person to confirm, about that call.
    ma.say(
        json!({"jsonrpc": "2.0", "id": "warden:1", "method": "elicitation/create", "params": {"message": "sure?"}}),
        Some(call["id"].clone()),
    )
    .await;
    let (question, related) = s.next().await;
    assert_eq!(
        related,
        Some(json!(5)),
        "the question rides the call's stream"
    );
    let qid = question["id"].clone();
    assert_ne!(qid, json!("warden:1"));
    // A guessed id reaches no member.
    s.send(json!({"jsonrpc": "2.0", "id": "warden:1", "result": {"action": "accept"}}))
        .await;
    s.send(json!({"jsonrpc": "2.0", "id": qid, "result": {"action": "accept"}}))
        .await;
    let answer = ma.next().await;
    assert_eq!(
        answer,
        json!({"jsonrpc": "2.0", "id": "warden:1", "result": {"action": "accept"}})
    );
    // Answering twice: the second goes nowhere.
    s.send(json!({"jsonrpc": "2.0", "id": qid, "result": {"action": "decline"}}))
        .await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(ma.got.try_recv().is_err());
}

#[tokio::test]
async fn a_cancellation_reaches_the_member_under_its_own_id() {
    let (a, mut ma) = fake("lims");
    let s = session(vec![a], DEFAULT_FAN_TIMEOUT).await;
    s.send(json!({"jsonrpc": "2.0", "id": "c1", "method": "tools/call", "params": {"name": "lims__slow"}}))
        .await;
    let call = ma.next().await;
    s.send(json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": "c1"}}))
        .await;
    let cancel = ma.next().await;
    assert_eq!(cancel["params"]["requestId"], call["id"]);
    // A cancellation of an id the client never used goes nowhere.
    s.send(json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": "other"}}))
        .await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(ma.got.try_recv().is_err());
}

#[tokio::test]
async fn resources_are_read_by_their_federated_uri() {
    let (a, mut ma) = fake("results");
    let mut s = session(vec![a], DEFAULT_FAN_TIMEOUT).await;
    s.send(json!({"jsonrpc": "2.0", "id": 1, "method": "resources/read", "params": {"uri": "results+file:///r/1.vcf"}}))
        .await;
    let q = ma.next().await;
    assert_eq!(q["params"]["uri"], "file:///r/1.vcf");
    ma.say(json!({"jsonrpc": "2.0", "id": q["id"], "result": {"contents": [{"uri": "file:///r/1.vcf", "text": "x"}]}}), None)
        .await;
    let (answer, _) = s.next().await;
    assert_eq!(
        answer["result"]["contents"][0]["uri"],
        "results+file:///r/1.vcf"
    );
    ma.say(json!({"jsonrpc": "2.0", "method": "notifications/resources/updated", "params": {"uri": "file:///r/1.vcf"}}), None)
        .await;
    let (updated, _) = s.next().await;
    assert_eq!(updated["params"]["uri"], "results+file:///r/1.vcf");
}

#[tokio::test]
async fn a_removed_server_fails_its_calls_in_flight_and_the_lists_change() {
    let (a, mut ma) = fake("lims");
    let (b, _mb) = fake("genomics");
    let keep = b.clone();
    let mut s = session(vec![a, b], DEFAULT_FAN_TIMEOUT).await;
    s.send(json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "lims__slow"}}))
        .await;
    let _ = ma.next().await;
    s.factory.set_members(vec![keep]).await;
    let (failed, _) = s.next().await;
    assert_eq!(failed["id"], 3);
    assert_eq!(failed["error"]["code"], jsonrpc::UPSTREAM_UNAVAILABLE);
    assert!(
        failed["error"]["message"]
            .as_str()
            .unwrap()
            .contains("removed"),
        "{failed}"
    );
    let (changed, _) = s.next().await;
    assert_eq!(changed["method"], "notifications/tools/list_changed");
    s.send(
        json!({"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {"name": "lims__x"}}),
    )
    .await;
    let mut answer = s.next().await.0;
    while answer.get("method").is_some() {
        answer = s.next().await.0;
    }
    assert_eq!(answer["error"]["code"], jsonrpc::INVALID_PARAMS, "{answer}");
}

#[tokio::test]
async fn initialize_merges_and_is_replayed_to_a_server_added_later() {
    let (a, mut ma) = fake("lims");
    let mut s = session(vec![a.clone()], DEFAULT_FAN_TIMEOUT).await;
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "c", "version": "1"}}});
    s.send(init.clone()).await;
    let q = ma.next().await;
    assert_eq!(q["params"], init["params"]);
    ma.say(json!({"jsonrpc": "2.0", "id": q["id"], "result": {"protocolVersion": "2025-06-18", "capabilities": {"tools": {}}, "serverInfo": {"name": "lims"}}}), None)
        .await;
    let (merged, _) = s.next().await;
    assert_eq!(merged["result"]["serverInfo"]["name"], "warden");
    s.send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        .await;
    assert_eq!(ma.next().await["method"], "notifications/initialized");

    let (b, mut mb) = fake("genomics");
    s.factory.set_members(vec![a, b]).await;
    let replayed = mb.next().await;
    assert_eq!(replayed["method"], "initialize");
    assert_eq!(replayed["params"], init["params"]);
    assert_eq!(mb.next().await["method"], "notifications/initialized");
}

#[tokio::test]
async fn ending_the_session_stops_every_members_link_even_once_it_is_dropped() {
    let (a, ma) = fake("lims");
    let (b, mb) = fake("genomics");
    let s = session(vec![a, b], DEFAULT_FAN_TIMEOUT).await;
    assert!(!ma.link.is_cancelled());
    // The HTTP session drops its endpoint, then cancels the token it got.
    let Session { fed, shutdown, .. } = s;
    drop(fed);
    shutdown.cancel();
    for m in [&ma, &mb] {
        tokio::time::timeout(Duration::from_secs(5), m.link.cancelled())
            .await
            .expect("the member's link was stopped");
    }

    // And a federation dropped without its token cancelled stops them too.
    let (c, mc) = fake("results");
    let s = session(vec![c], DEFAULT_FAN_TIMEOUT).await;
    drop(s);
    tokio::time::timeout(Duration::from_secs(5), mc.link.cancelled())
        .await
        .expect("dropping the federation stopped its member's link");
}

#[tokio::test]
async fn one_list_change_announced_by_every_member_reaches_the_client_once() {
    let (a, ma) = fake("lims");
    let (b, mb) = fake("genomics");
    let mut s = session(vec![a, b], DEFAULT_FAN_TIMEOUT).await;
    let changed = json!({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"});
    // A policy reload: both members say so at once.
    ma.say(changed.clone(), None).await;
    mb.say(changed.clone(), None).await;
    let (first, _) = s.next().await;
    assert_eq!(first["method"], "notifications/tools/list_changed");
    // Both members' messages are handled by now (within the quiet time).
    tokio::time::sleep(Duration::from_millis(50)).await;
    s.send(json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}))
        .await;
    assert_eq!(
        s.next().await.0["id"],
        1,
        "the second announcement was not passed on"
    );
    // Later news is news again.
    tokio::time::sleep(Duration::from_millis(300)).await;
    mb.say(changed, None).await;
    assert_eq!(
        s.next().await.0["method"],
        "notifications/tools/list_changed"
    );
}
