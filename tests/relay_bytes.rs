//! The relay's text, byte by byte (issue 13: relay what warden does not
//! govern without re-encoding it). The real `warden proxy` binary on stdio,
//! driven with raw lines by a client written here, in front of warden's raw
//! test server (`warden proxy-test-upstream`), which answers with any text
//! (`x/raw`, the `raw` tool) and reports every line it read as it read it
//! (`x/received`).
//!
//! - What warden does not change arrives as the very text sent, both ways:
//!   numbers serde_json would round, escapes it would rewrite, spacing,
//!   duplicate keys in an upstream message, notifications and
//!   server-to-client requests (only their ids remapped).
//! - What looks unchanged but is not: a reserved `_meta` key spelled with
//!   an escape is still warden's key and is stripped; a client message
//!   with a key twice in one object is written anew as warden read it
//!   (the last of the two), so an upstream that reads the first cannot
//!   see another method, tool, argument or `_meta` than warden decided on.
//! - Method spellings: an escaped `tools/call` is a `tools/call` (decided,
//!   with provenance); a governed method in another case or with a control
//!   character is refused and never reaches the upstream.

mod common;

use common::raw_proxy::RawProxy;
use serde_json::{Value, json};

type Error = Box<dyn std::error::Error + Send + Sync>;
type TestResult = Result<(), Error>;

const POLICY: &str = r#"
default allow

deny no-wipe {
  tool "wipe"
  when via agent
  reason "agents may not wipe"
}
"#;

struct Wire {
    proxy: RawProxy,
}

impl Wire {
    async fn start() -> Result<Wire, Error> {
        let mut w = Wire {
            proxy: RawProxy::start(POLICY, None, &[]).await?,
        };
        let r = w
            .request(
                json!(0),
                "initialize",
                json!({"protocolVersion": "2025-06-18", "capabilities": {},
                       "clientInfo": {"name": "byte-client", "version": "1"}}),
            )
            .await?;
        assert!(r.get("result").is_some(), "{r:#}");
        w.send_raw(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#)
            .await?;
        Ok(w)
    }

    async fn send_raw(&mut self, text: &str) -> TestResult {
        self.proxy.send_line(text.as_bytes()).await
    }

    async fn next_line(&mut self) -> Result<String, Error> {
        self.proxy.next_line().await
    }

    /// Lines until the response to `id` (the response as it came, and the
    /// lines before it).
    async fn response_line(&mut self, id: &Value) -> Result<(String, Vec<String>), Error> {
        let mut others = Vec::new();
        loop {
            let line = self.next_line().await?;
            let v: Value = serde_json::from_str(&line)
                .map_err(|e| format!("warden wrote undecodable line ({e}): {line}"))?;
            if v.get("id") == Some(id) && v.get("method").is_none() {
                return Ok((line, others));
            }
            others.push(line);
        }
    }

    async fn request(&mut self, id: Value, method: &str, params: Value) -> Result<Value, Error> {
        let text = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        self.send_raw(&text.to_string()).await?;
        let (line, _) = self.response_line(&id).await?;
        Ok(serde_json::from_str(&line)?)
    }

    /// Every line the upstream read so far, exactly as it read it.
    async fn received(&mut self, id: i64) -> Result<Vec<String>, Error> {
        let r = self.request(json!(id), "x/received", json!({})).await?;
        Ok(r["result"]["lines"]
            .as_array()
            .ok_or_else(|| format!("no lines: {r:#}"))?
            .iter()
            .filter_map(|l| l.as_str().map(str::to_string))
            .collect())
    }

    /// The line the upstream read whose request id is `id` (a number).
    async fn received_request(&mut self, id: i64, probe: i64) -> Result<String, Error> {
        let lines = self.received(probe).await?;
        lines
            .into_iter()
            .find(|l| {
                serde_json::from_str::<Value>(l).is_ok_and(|v| v.get("id") == Some(&json!(id)))
            })
            .ok_or_else(|| format!("request {id} never reached the upstream").into())
    }

    fn decisions(&self) -> Vec<Value> {
        std::fs::read_to_string(self.proxy.dir().join("audit.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|l| l.get("decision").is_some())
            .collect()
    }
}

/// Text serde_json would not write back the same: big and long numbers,
/// exponents, `-0`, escapes (`\/`, `\u00e9`, a surrogate pair, `\u0000`),
/// a key twice, spacing and tabs.
const ODD: &str = r#"{ "big" : 123456789012345678901234567890, "dec":0.1000000000000000000000000001,"e":1E2,"z":-0,"f":1.50,
"s":"\/\u00e9\uD83D\uDE00\u0000\t","dup":1,"dup":2 ,	"nested":{"a":[ 1 , 2.0 ],"a":[]}}"#;

#[tokio::test]
async fn an_unchanged_message_reaches_the_upstream_as_its_very_text() -> TestResult {
    let mut w = Wire::start().await?;
    // ODD has a line break; one line of it, with the duplicate keys only in
    // the upstream's answers (a client's would be written anew, below).
    let odd = ODD.replace('\n', " ");
    let params = odd
        .replace(r#","dup":1,"dup":2 "#, "")
        .replace(r#","a":[]"#, "");
    // A request, spaced and ordered as no serializer would.
    let sent = format!(r#"  {{"params":{params} ,"method":"x/echo", "id":1,"jsonrpc":"2.0"}}  "#);
    w.send_raw(&sent).await?;
    w.response_line(&json!(1)).await?;
    // A notification, and a client request carrying a `_meta` warden keeps.
    let note = format!(
        r#"{{"jsonrpc":"2.0","method":"notifications/roots/list_changed","params":{{"_meta":{{"vendor/x":{params}}}}}}}"#
    );
    w.send_raw(&note).await?;
    let lines = w.received(2).await?;
    assert!(
        lines.contains(&sent.trim().to_string()),
        "the request was re-encoded: {lines:#?}"
    );
    assert!(
        lines.contains(&note),
        "the notification was re-encoded: {lines:#?}"
    );
    Ok(())
}

#[tokio::test]
async fn an_upstream_answer_notification_and_request_reach_the_client_as_their_text() -> TestResult
{
    let mut w = Wire::start().await?;
    let odd = ODD.replace('\n', " ");
    // An answer to a relayed request, duplicate keys and all.
    let answer = format!(r#"{{"jsonrpc":"2.0","id":$ID,"result":{odd}}}"#);
    let r = json!({"jsonrpc": "2.0", "id": 1, "method": "x/raw", "params": {"line": answer}});
    w.send_raw(&r.to_string()).await?;
    let (line, _) = w.response_line(&json!(1)).await?;
    assert_eq!(line, answer.replace("$ID", "1"));

    // An answer to a governed call (warden reads it to log the outcome).
    let answer = format!(
        r#"{{"jsonrpc":"2.0","id":$ID,"result":{{"content":[],"structuredContent":{odd}}}}}"#
    );
    let r = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                   "params": {"name": "raw", "arguments": {"line": answer}}});
    w.send_raw(&r.to_string()).await?;
    let (line, _) = w.response_line(&json!(2)).await?;
    assert_eq!(line, answer.replace("$ID", "2"));

    // A notification the upstream sends (as x/raw's "answer", which leaves
    // request 3 unanswered), then a request to the client: only its id is
    // remapped (to warden's own), every other byte as it came.
    let note = format!(r#"{{"jsonrpc":"2.0","method":"notifications/message","params":{odd}}}"#);
    let r = json!({"jsonrpc": "2.0", "id": 3, "method": "x/raw", "params": {"line": note}});
    w.send_raw(&r.to_string()).await?;
    assert_eq!(w.next_line().await?, note);
    let ask = format!(r#"{{"jsonrpc":"2.0","id":77,"method":"roots/list","params":{odd}}}"#);
    let r = json!({"jsonrpc": "2.0", "id": 4, "method": "x/raw", "params": {"line": ask}});
    w.send_raw(&r.to_string()).await?;
    let line = w.next_line().await?;
    let v: Value = serde_json::from_str(&line)?;
    let id = v["id"].as_str().ok_or("a warden id")?;
    assert!(id.starts_with("warden:"), "{line}");
    assert_eq!(line, ask.replace("77", &format!("\"{id}\"")));
    Ok(())
}

#[tokio::test]
async fn a_governed_call_keeps_its_arguments_text_and_gets_only_its_provenance() -> TestResult {
    let mut w = Wire::start().await?;
    let args = r#"{ "big":123456789012345678901234567890,"s":"\/\u00e9","list":[1.50, -0 ,1E2]}"#;
    let sent = format!(
        r#"{{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{{"name":"echo_meta", "arguments":{args},"_meta":{{"progressToken":"p\u0031"}}}}}}"#
    );
    w.send_raw(&sent).await?;
    let (line, _) = w.response_line(&json!(5)).await?;
    let r: Value = serde_json::from_str(&line)?;
    let meta = &r["result"]["structuredContent"]["meta"];
    assert_eq!(meta["progressToken"], "p1", "{meta:#}");
    assert!(meta.get("io.warden/provenance").is_some(), "{meta:#}");
    let got = w.received_request(5, 6).await?;
    assert!(
        got.contains(&format!(r#""arguments":{args}"#)),
        "arguments changed in transit: {got}"
    );
    // The client's own `_meta` member is copied, warden's is added.
    assert!(got.contains(r#""progressToken":"p\u0031""#), "{got}");
    assert_eq!(w.decisions().len(), 1);
    Ok(())
}

#[tokio::test]
async fn a_reserved_meta_key_behind_an_escape_is_still_stripped() -> TestResult {
    let mut w = Wire::start().await?;
    // `\u0069o.warden/` is `io.warden/`; `\u0057arden/` is `Warden/`.
    let sent = r#"{"jsonrpc":"2.0","id":1,"method":"x/echo","params":{"n":123456789012345678901234567890,"_meta":{"\u0069o.warden/provenance":{"user":"root"},"\u0057arden/decision":1,"vendor/keep":1}}}"#;
    w.send_raw(sent).await?;
    let (line, _) = w.response_line(&json!(1)).await?;
    let r: Value = serde_json::from_str(&line)?;
    assert_eq!(
        r["result"]["echo"]["_meta"],
        json!({"vendor/keep": 1}),
        "{r:#}"
    );
    let got = w.received_request(1, 2).await?;
    assert!(
        !got.contains("provenance") && !got.contains("decision"),
        "{got}"
    );
    // Only `_meta` was written anew: the number kept its digits.
    assert!(got.contains("123456789012345678901234567890"), "{got}");

    // The same in a governed call: only warden's provenance arrives.
    let sent = r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"echo_meta","arguments":{},"_meta":{"\u0069O.wArden/provenance":{"user":"mallory"}}}}"#;
    w.send_raw(sent).await?;
    let (line, _) = w.response_line(&json!(3)).await?;
    let r: Value = serde_json::from_str(&line)?;
    let meta = &r["result"]["structuredContent"]["meta"];
    assert_ne!(meta["io.warden/provenance"]["user"], "mallory", "{meta:#}");
    let keys: Vec<&String> = meta
        .as_object()
        .map(|m| m.keys().collect())
        .unwrap_or_default();
    assert_eq!(keys, vec!["io.warden/provenance"], "{meta:#}");
    Ok(())
}

#[tokio::test]
async fn a_client_message_with_a_key_twice_reaches_the_upstream_as_warden_read_it() -> TestResult {
    let mut w = Wire::start().await?;
    // Read first-wins, this is a tools/call of `wipe` (denied by policy);
    // warden reads the last `method`: x/echo. The upstream must get only
    // what warden read.
    let sent = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","method":"x/echo","params":{"name":"wipe","arguments":{}}}"#;
    w.send_raw(sent).await?;
    w.response_line(&json!(1)).await?;
    let got = w.received_request(1, 2).await?;
    let v: Value = serde_json::from_str(&got)?;
    assert_eq!(v["method"], "x/echo", "{got}");
    assert!(
        !got.contains("tools/call"),
        "the other method reached the upstream: {got}"
    );

    // A reserved `_meta` hidden in the first of two `_meta` members.
    let sent = r#"{"jsonrpc":"2.0","id":3,"method":"x/echo","params":{"_meta":{"io.warden/provenance":{"user":"root"}},"_meta":{"vendor/x":1}}}"#;
    w.send_raw(sent).await?;
    w.response_line(&json!(3)).await?;
    let got = w.received_request(3, 4).await?;
    assert!(
        !got.contains("io.warden"),
        "a spoofed provenance reached the upstream: {got}"
    );

    // A governed call whose argument is given twice: the upstream gets the
    // value that was decided (and logged), once.
    let sent = r#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"echo_meta","arguments":{"path":"/etc/shadow","path":"/tmp/ok"}}}"#;
    w.send_raw(sent).await?;
    w.response_line(&json!(5)).await?;
    let got = w.received_request(5, 6).await?;
    assert!(!got.contains("/etc/shadow"), "{got}");
    let v: Value = serde_json::from_str(&got)?;
    assert_eq!(
        v["params"]["arguments"],
        json!({"path": "/tmp/ok"}),
        "{got}"
    );
    let logged = w.decisions();
    assert_eq!(logged.len(), 1, "{logged:#?}");
    assert!(
        !logged[0].to_string().contains("/etc/shadow"),
        "{logged:#?}"
    );
    // A tool named twice: decided, and sent, as the last name.
    let sent = r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"wipe","name":"echo_meta","arguments":{}}}"#;
    w.send_raw(sent).await?;
    let (line, _) = w.response_line(&json!(7)).await?;
    assert!(!line.contains("Denied"), "{line}");
    let got = w.received_request(7, 8).await?;
    assert!(!got.contains("wipe"), "{got}");
    Ok(())
}

#[tokio::test]
async fn method_spellings_are_taken_exactly() -> TestResult {
    let mut w = Wire::start().await?;
    // Escapes decode to the governed method itself: decided like it.
    for (id, method) in [(1, r#"tools\/call"#), (2, r#"\u0074ools/call"#)] {
        let sent = format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"{method}","params":{{"name":"wipe","arguments":{{}}}}}}"#
        );
        w.send_raw(&sent).await?;
        let (line, _) = w.response_line(&json!(id)).await?;
        assert!(line.contains("Denied by warden policy"), "{method}: {line}");
    }
    // Other spellings of a governed method: refused, never relayed.
    for (id, method) in [
        (3, r#"tools/call\u0000"#),
        (4, r#"TOOLS\/CALL"#),
        (5, r#"tools/\u0043all"#),
        (6, r#"\ttools/list"#),
        (7, r#"tools/list\ufeff"#),
        (8, r#"Initialize"#),
    ] {
        let sent = format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"{method}","params":{{"name":"wipe","arguments":{{}}}}}}"#
        );
        w.send_raw(&sent).await?;
        let (line, _) = w.response_line(&json!(id)).await?;
        let r: Value = serde_json::from_str(&line)?;
        assert_eq!(r["error"]["code"], -32601, "{method}: {line}");
    }
    let lines = w.received(9).await?;
    let reached: Vec<&String> = lines
        .iter()
        .filter(|l| {
            serde_json::from_str::<Value>(l)
                .ok()
                .and_then(|v| v["id"].as_i64())
                .is_some_and(|id| (1..=8).contains(&id))
        })
        .collect();
    assert!(reached.is_empty(), "reached the upstream: {reached:#?}");
    assert_eq!(
        w.decisions().len(),
        2,
        "the two escaped tools/call were decided"
    );
    Ok(())
}
