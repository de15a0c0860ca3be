//! Approvals (issue 16) through the real binary: a rule whose approver is
//! someone else (`by group`) is refused with the truth even for a client
//! that could ask its person (no one else can approve yet); grants let
//! later calls through without asking again, bound to the caller, the
//! arguments (or those `within` names) and their scope.

mod common;

use common::Res;
use common::http_warden::HttpWarden;
use common::raw_proxy::RawProxy;
use serde_json::{Value, json};

/// `warden proxy` with `policy`, handshaken as a client that declares
/// form elicitation.
async fn asking_client(policy: &str, extra: &[&str]) -> Res<RawProxy> {
    RawProxy::start_initialized_with(policy, extra, "asker", json!({"elicitation": {}})).await
}

/// Sends a tools/call; answers each elicitation warden asks with `answer`
/// (counting them); returns the call's answer and how many were asked.
async fn call_answering(
    p: &mut RawProxy,
    id: u64,
    tool: &str,
    args: Value,
    answer: &str,
) -> Res<(Value, usize)> {
    let msg = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": {"name": tool, "arguments": args}});
    p.send_line(msg.to_string().as_bytes()).await?;
    let mut asked = 0;
    loop {
        let v: Value = serde_json::from_str(&p.next_line().await?)?;
        if v["method"] == "elicitation/create" {
            asked += 1;
            let reply = json!({"jsonrpc": "2.0", "id": v["id"],
                "result": {"action": answer, "content": {}}});
            p.send_line(reply.to_string().as_bytes()).await?;
        } else if v["id"] == id {
            return Ok((v, asked));
        }
    }
}

/// How many times warden asked the person for call `id` (answered yes).
async fn asked(p: &mut RawProxy, id: u64, args: &Value) -> Res<usize> {
    let (a, n) = call_answering(p, id, "echo_meta", args.clone(), "accept").await?;
    assert!(a["result"]["isError"] != true, "{a}");
    Ok(n)
}

fn text(answer: &Value) -> String {
    answer["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn a_rule_another_person_approves_is_refused_without_asking_the_caller() -> Res<()> {
    let policy = r#"default allow

require-confirm big-runs {
  tool "echo_meta"
  when via agent
  by group "lab-leads"
  grant for 30m
}
"#;
    let mut p = asking_client(policy, &["--group", "lab-leads"]).await?;
    let (a, asked) = call_answering(&mut p, 1, "echo_meta", json!({"run": 1}), "accept").await?;
    assert_eq!(
        asked, 0,
        "the caller is not asked: their yes is not the approval"
    );
    assert_eq!(a["result"]["isError"], true, "{a}");
    let t = text(&a);
    assert!(
        t.contains("needs the approval of a member of group `lab-leads`")
            && t.contains("someone other than the caller"),
        "{t}"
    );
    let (_, dir) = p.close().await?;
    let log = std::fs::read_to_string(dir.path().join("audit.jsonl"))?;
    assert!(log.contains(r#""decision":"deny""#), "{log}");
    assert!(
        !log.contains(r#""event":"outcome""#),
        "never forwarded: {log}"
    );
    Ok(())
}

fn decision_lines(dir: &std::path::Path) -> Res<Vec<Value>> {
    Ok(std::fs::read_to_string(dir.join("audit.jsonl"))?
        .lines()
        .map(serde_json::from_str::<Value>)
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .filter(|l| l.get("decision").is_some())
        .collect())
}

#[tokio::test]
async fn a_grant_for_5_calls_lets_exactly_5_through_then_asks_again() -> Res<()> {
    let policy = r#"default allow

require-confirm runs {
  tool "echo_meta"
  grant for 5 calls
}
"#;
    let mut p = asking_client(policy, &[]).await?;
    let mut asked = Vec::new();
    for id in 1..=7 {
        let (a, n) = call_answering(&mut p, id, "echo_meta", json!({"run": "x"}), "accept").await?;
        assert!(a["result"]["isError"] != true, "{a}");
        asked.push(n);
    }
    // The yes of call 1 covers calls 1-5; call 6 asks, and its yes covers 6-10.
    assert_eq!(asked, vec![1, 0, 0, 0, 0, 1, 0], "asked per call");
    let (_, dir) = p.close().await?;
    let lines = decision_lines(dir.path())?;
    let grants: Vec<&Value> = lines.iter().map(|l| &l["grants"][0]).collect();
    assert_eq!(grants[0]["new"], true, "{lines:#?}");
    let first = grants[0]["grant"].as_str().ok_or("a grant id")?;
    assert!(first.starts_with("grant-") && first.len() == 38, "{first}");
    for g in &grants[1..5] {
        assert_eq!(g["grant"], first, "calls 2-5 use the first grant");
        assert!(g.get("new").is_none());
    }
    assert_eq!(grants[5]["new"], true);
    assert_ne!(grants[5]["grant"], first);
    assert_eq!(
        lines[2]["confirmed"],
        json!(["runs"]),
        "a granted call is confirmed"
    );
    Ok(())
}

#[tokio::test]
async fn a_grant_binds_to_the_arguments_or_to_those_within_names() -> Res<()> {
    let policy = r#"default allow

require-confirm exact {
  tool "echo_meta"
  when args.kind == "exact"
  grant for 30m
}

require-confirm per-sample {
  tool "echo_meta"
  when args.kind == "sample"
  grant for 30m within args.sample_id
}
"#;
    let mut p = asking_client(policy, &[]).await?;
    let calls = [
        // Exact arguments: the same ones in another order are the same call.
        (json!({"kind": "exact", "a": 1, "b": [1, 2]}), 1),
        (json!({"b": [1, 2], "a": 1, "kind": "exact"}), 0),
        (json!({"kind": "exact", "a": 2, "b": [1, 2]}), 1),
        (json!({"kind": "exact", "a": 1.0, "b": [1, 2]}), 1),
        // Within the sample: another pipeline on S1 is covered, S2 is not,
        // and an absent sample id is not any sample.
        (
            json!({"kind": "sample", "sample_id": "S1", "pipeline": "qc"}),
            1,
        ),
        (
            json!({"kind": "sample", "sample_id": "S1", "pipeline": "wgs"}),
            0,
        ),
        (
            json!({"kind": "sample", "sample_id": "S2", "pipeline": "qc"}),
            1,
        ),
        (json!({"kind": "sample", "pipeline": "qc"}), 1),
    ];
    for (args, expected) in calls {
        let (a, n) = call_answering(&mut p, rand_id(), "echo_meta", args.clone(), "accept").await?;
        assert!(a["result"]["isError"] != true, "{a}");
        assert_eq!(n, expected, "asked for {args}");
    }
    p.close().await?;
    Ok(())
}

fn rand_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(100);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

#[tokio::test]
async fn a_declined_confirmation_creates_no_grant() -> Res<()> {
    let policy = r#"default allow

require-confirm runs {
  tool "echo_meta"
  grant for 30m
}
"#;
    let mut p = asking_client(policy, &[]).await?;
    let (a, n) = call_answering(&mut p, 1, "echo_meta", json!({}), "decline").await?;
    assert_eq!((a["result"]["isError"].clone(), n), (json!(true), 1), "{a}");
    let (a, n) = call_answering(&mut p, 2, "echo_meta", json!({}), "accept").await?;
    assert!(a["result"]["isError"] != true && n == 1, "asked again: {a}");
    let (_, n) = call_answering(&mut p, 3, "echo_meta", json!({}), "accept").await?;
    assert_eq!(n, 0, "the yes of call 2 covers call 3");
    p.close().await?;
    Ok(())
}

#[tokio::test]
async fn grants_live_in_the_state_file_across_processes_per_user_and_session() -> Res<()> {
    let policy = r#"default allow

require-confirm runs {
  tool "echo_meta"
  when args.scope == "time"
  grant for 30m
}

require-confirm in-session {
  tool "echo_meta"
  when args.scope == "session"
  grant for session
}
"#;
    let state_dir = tempfile::tempdir()?;
    let state = state_dir.path().join("state.sqlite");
    let state = state.to_str().ok_or("utf-8 path")?;
    let time = json!({"scope": "time"});
    let session = json!({"scope": "session"});

    let mut a = asking_client(policy, &["--state", state, "--user", "alice"]).await?;
    assert_eq!(asked(&mut a, 1, &time).await?, 1);
    assert_eq!(asked(&mut a, 2, &session).await?, 1);
    assert_eq!(asked(&mut a, 3, &session).await?, 0);
    a.close().await?;

    // Another process on the same file, as alice: the 30-minute grant
    // holds, the session grant does not (a new session).
    let mut b = asking_client(policy, &["--state", state, "--user", "alice"]).await?;
    assert_eq!(asked(&mut b, 1, &time).await?, 0);
    assert_eq!(asked(&mut b, 2, &session).await?, 1);
    b.close().await?;

    // Bob has no grant of alice's.
    let mut c = asking_client(policy, &["--state", state, "--user", "bob"]).await?;
    assert_eq!(asked(&mut c, 1, &time).await?, 1);
    c.close().await?;
    Ok(())
}

/// The approval link in a refusal's text.
fn link_in(answer: &Value) -> Res<String> {
    let t = text(answer);
    let start = t.find("http://").ok_or_else(|| format!("no link in {t}"))?;
    let link: String = t[start..]
        .chars()
        .take_while(|c| !c.is_whitespace())
        .collect();
    Ok(link)
}

/// The value of hidden input `name` in a page.
fn hidden(page: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let at = page.find(&marker)? + marker.len();
    Some(page[at..].split('"').next()?.to_string())
}

#[tokio::test]
async fn a_client_without_elicitation_gets_an_approval_link_and_its_retry_goes_through() -> Res<()>
{
    let policy = r#"default allow

require-confirm runs {
  tool "echo_meta"
  reason "run {args.label}?"
}
"#;
    let w = HttpWarden::start(policy, &[]).await?;
    let http = reqwest::Client::builder().no_proxy().build()?;
    let sid = w.session(&http, None).await?;
    let args = json!({"label": "<script>alert(1)</script>", "n": 1});

    // The call: refused with the link and retry after approval.
    let first = w.call(&http, &sid, 1, args.clone()).await?;
    assert_eq!(first["result"]["isError"], true, "{first}");
    assert_eq!(
        first["result"]["structuredContent"]["warden/decision"]["retry"]["when"], "after_approval",
        "{first}"
    );
    let link = link_in(&first)?;
    assert!(
        link.starts_with(&format!("{}/approvals/", w.base)),
        "{link}"
    );

    // The page shows the call, escaped, with a strict CSP.
    let resp = http.get(&link).send().await?;
    assert_eq!(resp.status(), 200);
    let csp = resp.headers()["content-security-policy"]
        .to_str()?
        .to_string();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert_eq!(resp.headers()["referrer-policy"], "no-referrer");
    let page = resp.text().await?;
    assert!(
        !page.contains("<script>"),
        "markup is shown as text: {page}"
    );
    assert!(
        page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{page}"
    );
    assert!(page.contains("echo_meta"), "{page}");

    // Guesses get nothing: another secret, no secret.
    let (path, secret) = link.split_once("?s=").ok_or("a secret in the link")?;
    for bad in [format!("{path}?s=0000"), path.to_string()] {
        assert_eq!(http.get(&bad).send().await?.status(), 404, "{bad}");
    }
    let csrf = hidden(&page, "csrf").ok_or("a csrf token")?;
    let post = |form: Vec<(&'static str, String)>| {
        let http = http.clone();
        let path = path.to_string();
        async move { http.post(&path).form(&form).send().await }
    };
    // A wrong CSRF token, and a form from another site, are refused.
    let r = post(vec![
        ("s", secret.to_string()),
        ("csrf", "forged".into()),
        ("action", "approve".into()),
    ])
    .await?;
    assert_eq!(r.status(), 403);
    let r = http
        .post(path)
        .header("origin", "https://evil.example")
        .form(&[("s", secret), ("csrf", &csrf), ("action", "approve")])
        .send()
        .await?;
    assert_eq!(r.status(), 403);
    // Still pending: the retry is refused again (with a new link).
    let again = w.call(&http, &sid, 2, args.clone()).await?;
    assert_eq!(again["result"]["isError"], true, "{again}");

    // The approval, once; the link does not work twice.
    let r = post(vec![
        ("s", secret.to_string()),
        ("csrf", csrf.clone()),
        ("action", "approve".into()),
        ("note", "ok for <b>today</b>".into()),
    ])
    .await?;
    assert_eq!(r.status(), 200);
    let done = r.text().await?;
    assert!(done.contains("Approved by"), "{done}");
    let r = post(vec![
        ("s", secret.to_string()),
        ("csrf", csrf),
        ("action", "approve".into()),
    ])
    .await?;
    assert_eq!(r.status(), 409);

    // The retry goes through, once (grant once); the next asks again.
    let ok = w.call(&http, &sid, 3, args.clone()).await?;
    assert!(ok["result"]["isError"] != true, "{ok}");
    let next = w.call(&http, &sid, 4, args.clone()).await?;
    assert_eq!(next["result"]["isError"], true, "{next}");

    let log = w.log();
    let approval = log
        .iter()
        .find(|l| l["event"] == "approval")
        .ok_or("an approval line")?;
    assert_eq!(approval["approved"], true);
    assert_eq!(approval["channel"], "page");
    assert_eq!(approval["note"], "ok for <b>today</b>");
    assert!(
        approval["by"].as_str().unwrap_or("").contains("the caller"),
        "{approval}"
    );
    let grant = approval["grants"][0]["grant"].clone();
    let used = log
        .iter()
        .find(|l| l["decision"] == "allow")
        .ok_or("the allowed retry")?;
    assert_eq!(used["grants"][0]["grant"], grant, "{used}");
    assert!(
        !std::fs::read_to_string(w.dir.path().join("audit.jsonl"))?.contains(secret),
        "the link's secret is never logged"
    );
    Ok(())
}

const ISS: &str = "https://auth.example.com";
const AUD: &str = "https://warden.example.com/mcp";

/// A token of `sub` in `groups`, signed with the issuer's key `pem`.
fn token(pem: &std::path::Path, sub: &str, groups: &[&str]) -> Res<String> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let claims = json!({"iss": ISS, "aud": AUD, "sub": sub, "iat": now, "exp": now + 600,
        "groups": groups});
    let key = jsonwebtoken::EncodingKey::from_ed_pem(&std::fs::read(pem)?)?;
    Ok(jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA),
        &claims,
        &key,
    )?)
}

#[tokio::test]
async fn four_eyes_a_lab_lead_other_than_the_caller_approves_on_the_page() -> Res<()> {
    let policy = r#"default allow

require-confirm big-runs {
  tool "echo_meta"
  when via agent
  by group "lab-leads"
  grant for 30m
}
"#;
    let keys = tempfile::tempdir()?;
    let (private, public) = common::key_pair(keys.path(), "issuer", 42)?;
    let public = public.to_str().ok_or("utf-8")?.to_string();
    let w = HttpWarden::start(
        policy,
        &[
            "--jwt-issuer",
            ISS,
            "--jwt-audience",
            AUD,
            "--jwt-key",
            &public,
        ],
    )
    .await?;
    let http = reqwest::Client::builder().no_proxy().build()?;
    // The caller is a lab lead herself: four eyes still need another.
    let ada = token(&private, "ada", &["lab-leads"])?;
    let sid = w.session(&http, Some(&ada)).await?;
    let args = json!({"pipeline": "wgs-align", "sample_id": "S-0001"});
    let first = w.call_as(&http, &sid, Some(&ada), 1, args.clone()).await?;
    assert_eq!(first["result"]["isError"], true, "{first}");
    assert!(
        text(&first).contains("needs the approval of a member of group `lab-leads`"),
        "{first}"
    );
    let link = link_in(&first)?;
    let page = http.get(&link).send().await?.text().await?;
    assert!(
        page.contains("name=\"token\""),
        "the page asks who approves: {page}"
    );
    let (path, secret) = link.split_once("?s=").ok_or("secret")?;
    let csrf = hidden(&page, "csrf").ok_or("csrf")?;
    let approve_as = |who: String| {
        let (http, path, secret, csrf) = (
            http.clone(),
            path.to_string(),
            secret.to_string(),
            csrf.clone(),
        );
        async move {
            http.post(&path)
                .form(&[
                    ("s", secret.as_str()),
                    ("csrf", csrf.as_str()),
                    ("action", "approve"),
                    ("token", who.as_str()),
                    ("note", "budget ok"),
                ])
                .send()
                .await
        }
    };
    // The caller, someone outside the group, no token, a forged token.
    let r = approve_as(ada.clone()).await?;
    assert_eq!(r.status(), 403);
    assert!(r.text().await?.contains("you made this call"));
    let r = approve_as(token(&private, "bob", &["lab"])?).await?;
    assert_eq!(r.status(), 403);
    assert!(r.text().await?.contains("group `lab-leads`"));
    assert_eq!(approve_as(String::new()).await?.status(), 403);
    let other = tempfile::tempdir()?;
    let (forger, _) = common::key_pair(other.path(), "forger", 7)?;
    assert_eq!(
        approve_as(token(&forger, "lena", &["lab-leads"])?)
            .await?
            .status(),
        403
    );
    // Still refused before the approval.
    let again = w.call_as(&http, &sid, Some(&ada), 2, args.clone()).await?;
    assert_eq!(again["result"]["isError"], true, "{again}");

    // A lab lead approves: the caller's retry goes through, and the grant
    // holds for further calls with these arguments.
    let r = approve_as(token(&private, "lena", &["lab-leads"])?).await?;
    assert_eq!(r.status(), 200);
    assert!(r.text().await?.contains("Approved by lena"));
    for id in 3..=4 {
        let ok = w.call_as(&http, &sid, Some(&ada), id, args.clone()).await?;
        assert!(ok["result"]["isError"] != true, "{ok}");
    }
    let other_args = json!({"pipeline": "wgs-align", "sample_id": "S-0002"});
    let other_call = w.call_as(&http, &sid, Some(&ada), 5, other_args).await?;
    assert_eq!(
        other_call["result"]["isError"], true,
        "another sample asks again"
    );

    let log = w.log();
    let approval = log
        .iter()
        .find(|l| l["event"] == "approval")
        .ok_or("an approval line")?;
    assert_eq!(approval["by"], "lena");
    assert_eq!(approval["note"], "budget ok");
    Ok(())
}

#[tokio::test]
async fn the_page_shows_what_the_log_shows_redacted_arguments_stay_hidden() -> Res<()> {
    let policy = r#"default allow

require-confirm runs {
  tool "echo_meta"
  reason "use token {args.token} on {args.sample_id}?"
}
"#;
    let w = HttpWarden::start(policy, &["--redact", "token"]).await?;
    let http = reqwest::Client::builder().no_proxy().build()?;
    let sid = w.session(&http, None).await?;
    let args = json!({"token": "s3cret-value", "sample_id": "S-0001"});
    let link = link_in(&w.call(&http, &sid, 1, args).await?)?;
    let page = http.get(&link).send().await?.text().await?;
    assert!(!page.contains("s3cret-value"), "{page}");
    assert!(
        page.contains("[redacted]") && page.contains("S-0001"),
        "{page}"
    );
    Ok(())
}

/// A 2025-11-25 session whose client declares only URL-mode elicitation,
/// and its `tools/call` of `echo_meta` (id 1) with `args`, answered on an
/// SSE stream: the session id and the stream.
async fn url_client_call(
    w: &HttpWarden,
    http: &reqwest::Client,
    args: Value,
) -> Res<(String, reqwest::Response)> {
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {"elicitation": {"url": {}}},
                   "clientInfo": {"name": "url-client", "version": "1"}}});
    let resp = w.post(http, None, None, &init).await?;
    let sid = resp.headers()["mcp-session-id"].to_str()?.to_string();
    let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    w.post(http, Some(&sid), None, &note).await?;
    let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "echo_meta", "arguments": args}});
    let stream = http
        .post(&w.mcp)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .header("mcp-protocol-version", "2025-11-25")
        .header("mcp-session-id", &sid)
        .body(call.to_string())
        .send()
        .await?;
    Ok((sid, stream))
}

/// Opens the approval page at `link` and approves with its CSRF token:
/// the answer's status.
async fn approve_on_page(http: &reqwest::Client, link: &str) -> Res<reqwest::StatusCode> {
    let page = http.get(link).send().await?.text().await?;
    let csrf = hidden(&page, "csrf").ok_or("csrf")?;
    let (path, secret) = link.split_once("?s=").ok_or("secret")?;
    Ok(http
        .post(path)
        .form(&[("s", secret), ("csrf", &csrf), ("action", "approve")])
        .send()
        .await?
        .status())
}

/// Reads SSE events from `resp` until `stop` accepts one; every message.
async fn sse_until(
    resp: &mut reqwest::Response,
    buf: &mut String,
    stop: impl Fn(&Value) -> bool,
) -> Res<Vec<Value>> {
    let mut seen = Vec::new();
    loop {
        while let Some(at) = buf.find("\n\n") {
            let event: String = buf.drain(..at + 2).collect();
            let data: Vec<&str> = event
                .lines()
                .filter_map(|l| l.strip_prefix("data:").map(str::trim_start))
                .collect();
            if let Ok(v) = serde_json::from_str::<Value>(&data.join("\n")) {
                let done = stop(&v);
                seen.push(v);
                if done {
                    return Ok(seen);
                }
            }
        }
        let chunk = tokio::time::timeout(std::time::Duration::from_secs(10), resp.chunk())
            .await??
            .ok_or("the stream ended")?;
        buf.push_str(&String::from_utf8_lossy(&chunk));
    }
}

#[tokio::test]
async fn a_client_with_url_elicitation_is_sent_to_the_page_and_the_call_waits_for_it() -> Res<()> {
    let policy = r#"default allow

require-confirm runs {
  tool "echo_meta"
  reason "run {args.label}?"
}
"#;
    let w = HttpWarden::start(policy, &[]).await?;
    let http = reqwest::Client::builder().no_proxy().build()?;
    let (sid, mut stream) = url_client_call(&w, &http, json!({"label": "x"})).await?;
    let mut buf = String::new();
    let got = sse_until(&mut stream, &mut buf, |v| {
        v["method"] == "elicitation/create"
    })
    .await?;
    let ask = got.last().ok_or("asked")?.clone();
    assert_eq!(ask["params"]["mode"], "url", "{ask}");
    let url = ask["params"]["url"].as_str().ok_or("a url")?.to_string();
    let elicitation_id = ask["params"]["elicitationId"].clone();
    assert!(url.starts_with(&format!("{}/approvals/", w.base)), "{url}");
    assert!(
        url.contains(elicitation_id.as_str().unwrap_or("?")),
        "{url}"
    );
    // The person agrees to open the page: the call still waits.
    let accept = json!({"jsonrpc": "2.0", "id": ask["id"], "result": {"action": "accept"}});
    w.post(&http, Some(&sid), None, &accept).await?;

    // The decision on the page releases the held call at once.
    assert_eq!(approve_on_page(&http, &url).await?, 200);
    let rest = sse_until(&mut stream, &mut buf, |v| v["id"] == 1).await?;
    assert!(
        rest.iter()
            .any(|m| m["method"] == "notifications/elicitation/complete"
                && m["params"]["elicitationId"] == elicitation_id),
        "{rest:?}"
    );
    let answer = rest.last().ok_or("answered")?;
    assert!(answer["result"]["isError"] != true, "{answer}");
    // The one-use grant went to this call: the next asks again.
    let log = w.log();
    let allowed = log
        .iter()
        .find(|l| l["decision"] == "allow")
        .ok_or("allowed")?;
    assert_eq!(allowed["grants"][0]["rule"], "runs", "{allowed}");
    Ok(())
}

#[tokio::test]
async fn each_pending_approval_is_posted_to_the_webhook_signed() -> Res<()> {
    use aws_lc_rs::hmac;
    type Seen = std::sync::Arc<std::sync::Mutex<Vec<(axum::http::HeaderMap, String)>>>;
    let seen: Seen = Default::default();
    let s = seen.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(
            move |headers: axum::http::HeaderMap, body: String| async move {
                s.lock().unwrap().push((headers, body));
                axum::http::StatusCode::NO_CONTENT
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let hook = format!("http://{}/hook", listener.local_addr()?);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let secrets = tempfile::tempdir()?;
    let secret_file = secrets.path().join("hook.secret");
    std::fs::write(&secret_file, "a-shared-secret-of-some-length\n")?;
    let policy = r#"default allow

require-confirm runs {
  tool "echo_meta"
  reason "run {args.label}?"
}
"#;
    let w = HttpWarden::start(
        policy,
        &[
            "--approvals-webhook",
            &hook,
            "--approvals-webhook-secret",
            secret_file.to_str().ok_or("utf-8")?,
        ],
    )
    .await?;
    let http = reqwest::Client::builder().no_proxy().build()?;
    let sid = w.session(&http, None).await?;
    let refused = w.call(&http, &sid, 1, json!({"label": "wgs"})).await?;
    let link = link_in(&refused)?;

    let delivery = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            if let Some(d) = seen.lock().unwrap().first().cloned() {
                return d;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await?;
    let (headers, body) = delivery;
    let payload: Value = serde_json::from_str(&body)?;
    assert_eq!(payload["event"], "approval.pending");
    assert_eq!(payload["url"], link.as_str());
    assert_eq!(payload["tool"], "echo_meta");
    assert_eq!(payload["rules"], json!(["runs"]));
    assert_eq!(payload["reason"], "run wgs?");
    assert_eq!(payload["arguments"], json!({"label": "wgs"}));
    // The signature verifies with the shared secret, over "timestamp.body".
    let timestamp = headers["warden-timestamp"].to_str()?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    assert!(now.abs_diff(timestamp.parse::<u64>()?) < 60, "{timestamp}");
    let key = hmac::Key::new(hmac::HMAC_SHA256, b"a-shared-secret-of-some-length");
    let tag = hmac::sign(&key, format!("{timestamp}.{body}").as_bytes());
    let expected: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        headers["warden-signature"],
        format!("sha256={expected}").as_str()
    );
    // Another secret does not verify it.
    let other = hmac::Key::new(hmac::HMAC_SHA256, b"another-secret-of-some-length");
    let forged: String = hmac::sign(&other, format!("{timestamp}.{body}").as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_ne!(
        headers["warden-signature"],
        format!("sha256={forged}").as_str()
    );
    Ok(())
}

#[tokio::test]
async fn links_start_with_the_public_url_and_its_origin_may_post() -> Res<()> {
    let policy = "default allow\nrequire-confirm runs {\n  tool \"echo_meta\"\n}\n";
    let w = HttpWarden::start(policy, &["--public-url", "https://warden.example.com/"]).await?;
    let http = reqwest::Client::builder().no_proxy().build()?;
    let sid = w.session(&http, None).await?;
    let refused = w.call(&http, &sid, 1, json!({})).await?;
    let t = text(&refused);
    let start = t
        .find("https://warden.example.com/approvals/")
        .ok_or(t.clone())?;
    let link: String = t[start..]
        .chars()
        .take_while(|c| !c.is_whitespace())
        .collect();
    // Behind the proxy: the same path on the listener itself.
    let local = link.replacen("https://warden.example.com", &w.base, 1);
    let page = http.get(&local).send().await?.text().await?;
    let csrf = hidden(&page, "csrf").ok_or("csrf")?;
    let (path, secret) = local.split_once("?s=").ok_or("secret")?;
    let r = http
        .post(path)
        .header("origin", "https://warden.example.com")
        .form(&[("s", secret), ("csrf", &csrf), ("action", "approve")])
        .send()
        .await?;
    assert_eq!(r.status(), 200, "the public origin is warden's own");
    Ok(())
}

#[tokio::test]
async fn on_stdio_the_approval_page_has_a_listener_of_its_own() -> Res<()> {
    let policy = "default allow\nrequire-confirm runs {\n  tool \"echo_meta\"\n}\n";
    // A client without elicitation, on stdio.
    let mut p = RawProxy::start_initialized(
        policy,
        &["--approvals-listen", "127.0.0.1:0"],
        "stdio-agent",
    )
    .await?;
    let refused = p.call_tool(1, "echo_meta", json!({"n": 1})).await?;
    assert_eq!(
        refused["result"]["structuredContent"]["warden/decision"]["retry"]["when"],
        "after_approval",
        "{refused}"
    );
    let link = link_in(&refused)?;
    let http = reqwest::Client::builder().no_proxy().build()?;
    assert_eq!(approve_on_page(&http, &link).await?, 200);
    let ok = p.call_tool(2, "echo_meta", json!({"n": 1})).await?;
    assert!(ok["result"]["isError"] != true, "{ok}");
    p.close().await?;
    Ok(())
}

#[tokio::test]
async fn a_url_elicitation_the_person_declines_cannot_be_approved_later() -> Res<()> {
    let policy = "default allow\nrequire-confirm runs {\n  tool \"echo_meta\"\n}\n";
    let w = HttpWarden::start(policy, &[]).await?;
    let http = reqwest::Client::builder().no_proxy().build()?;
    let (sid, mut stream) = url_client_call(&w, &http, json!({})).await?;
    let mut buf = String::new();
    let got = sse_until(&mut stream, &mut buf, |v| {
        v["method"] == "elicitation/create"
    })
    .await?;
    let ask = got.last().ok_or("asked")?.clone();
    let url = ask["params"]["url"].as_str().ok_or("a url")?.to_string();
    let page = http.get(&url).send().await?.text().await?;
    let decline = json!({"jsonrpc": "2.0", "id": ask["id"], "result": {"action": "decline"}});
    w.post(&http, Some(&sid), None, &decline).await?;
    let rest = sse_until(&mut stream, &mut buf, |v| v["id"] == 1).await?;
    let answer = rest.last().ok_or("answered")?;
    assert_eq!(answer["result"]["isError"], true, "{answer}");
    // The page, opened before, can no longer approve it.
    let (path, secret) = url.split_once("?s=").ok_or("secret")?;
    let csrf = hidden(&page, "csrf").ok_or("csrf")?;
    let r = http
        .post(path)
        .form(&[("s", secret), ("csrf", &csrf), ("action", "approve")])
        .send()
        .await?;
    assert_eq!(r.status(), 409, "withdrawn with the call");
    Ok(())
}

#[test]
fn warden_proxy_without_bearer_auth_warns_of_rules_no_one_else_can_approve() -> Res<()> {
    let dir = tempfile::tempdir()?;
    let policy = dir.path().join("p.policy");
    std::fs::write(
        &policy,
        "default allow\nrequire-confirm big-runs {\n  tool \"run\"\n  by group \"lab-leads\"\n}\n",
    )?;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_warden"))
        .arg("proxy")
        .arg("--policies")
        .arg(&policy)
        .args(["--", "true"])
        .stdin(std::process::Stdio::null())
        .output()?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("warning: rule `big-runs`")
            && err.contains("needs the approval of a member of group `lab-leads`")
            && err.contains("help: give --jwt-issuer, --jwt-audience and --jwks (or --jwt-key) with --listen, or with --approvals-listen on stdio"),
        "{err}"
    );
    Ok(())
}

#[tokio::test]
async fn an_approval_opened_on_one_replica_is_given_on_another_and_the_retry_goes_through()
-> Res<()> {
    let policy = "default allow\nrequire-confirm runs {\n  tool \"echo_meta\"\n}\n";
    let state_dir = tempfile::tempdir()?;
    let state = state_dir.path().join("shared.sqlite");
    let state = state.to_str().ok_or("utf-8")?;
    let a = HttpWarden::start(policy, &["--state", state]).await?;
    let b = HttpWarden::start(policy, &["--state", state]).await?;
    let http = reqwest::Client::builder().no_proxy().build()?;
    let sid = a.session(&http, None).await?;
    let refused = a.call(&http, &sid, 1, json!({"n": 7})).await?;
    let link = link_in(&refused)?;
    // The same approval on replica B's page.
    let on_b = link.replacen(&a.base, &b.base, 1);
    let page = http.get(&on_b).send().await?;
    assert_eq!(page.status(), 200, "replica B shows what A opened");
    let page = page.text().await?;
    let csrf = hidden(&page, "csrf").ok_or("csrf")?;
    let (path, secret) = on_b.split_once("?s=").ok_or("secret")?;
    let r = http
        .post(path)
        .form(&[("s", secret), ("csrf", &csrf), ("action", "approve")])
        .send()
        .await?;
    assert_eq!(r.status(), 200);
    // Decided once for both: A's page refuses a second decision.
    let (path_a, _) = link.split_once("?s=").ok_or("secret")?;
    let again = http
        .post(path_a)
        .form(&[("s", secret), ("csrf", &csrf), ("action", "refuse")])
        .send()
        .await?;
    assert_eq!(again.status(), 409);
    // The retry on A goes through on the grant B made.
    let ok = a.call(&http, &sid, 2, json!({"n": 7})).await?;
    assert!(ok["result"]["isError"] != true, "{ok}");
    Ok(())
}

#[tokio::test]
async fn a_2026_07_28_client_with_url_elicitation_gets_input_required_pointing_at_the_page()
-> Res<()> {
    let policy = "default allow\nrequire-confirm runs {\n  tool \"echo_meta\"\n}\n";
    let w = HttpWarden::start(policy, &[]).await?;
    let http = reqwest::Client::builder().no_proxy().build()?;
    let call = |extra: Value| {
        let mut params = json!({"name": "echo_meta", "arguments": {"n": 3},
        "_meta": {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientInfo": {"name": "stateless", "version": "1"},
            "io.modelcontextprotocol/clientCapabilities": {"elicitation": {"url": {}}},
        }});
        if let (Some(p), Value::Object(e)) = (params.as_object_mut(), extra) {
            p.extend(e);
        }
        json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": params})
    };
    let send = |msg: Value| {
        let (http, url) = (http.clone(), w.mcp.clone());
        async move {
            http.post(&url)
                .header("accept", "application/json")
                .header("content-type", "application/json")
                .header("mcp-protocol-version", "2026-07-28")
                .body(msg.to_string())
                .send()
                .await?
                .json::<Value>()
                .await
        }
    };
    let first = send(call(json!({}))).await?;
    assert_eq!(first["result"]["resultType"], "input_required", "{first}");
    let ask = &first["result"]["inputRequests"]["warden/approve"];
    assert_eq!(ask["params"]["mode"], "url", "{first}");
    let url = ask["params"]["url"].as_str().ok_or("a url")?.to_string();
    // Approved on the page; the retry (with its answer) goes through.
    assert_eq!(approve_on_page(&http, &url).await?, 200);
    let retry = send(call(
        json!({"inputResponses": {"warden/approve": {"action": "accept"}}}),
    ))
    .await?;
    assert!(retry["result"]["isError"] != true, "{retry}");
    Ok(())
}
