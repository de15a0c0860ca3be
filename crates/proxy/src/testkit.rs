//! A tiny MCP server over stdio for the proxy's end-to-end tests (run by
//! the hidden `warden proxy-test-upstream` command). It speaks raw JSON-RPC
//! so that it can do what a well-behaved SDK server would not: echo the
//! `_meta` it received, crash on request, carry unknown fields, and ask the
//! client questions. Not part of warden's interface.
//!
//! Tools: `echo_meta` (returns its arguments and the request's `_meta`),
//! `slow` (answers after `ms` milliseconds, with a progress notification
//! first and then every `progress_every_ms` if given), `crash` (exits with status 3 without answering), `ask_client`
//! (sends `elicitation/create` to the client and returns its answer),
//! `wipe` (destructive; for hiding tests), and for the fault tests: `hang`
//! (never answers), `garbage` (writes lines that are no JSON-RPC message,
//! invalid UTF-8 among them, then answers), `huge` (answers with one line
//! of `mb` MiB, default 50, and nothing else) and `cancellations` (the
//! request ids of every `notifications/cancelled` received so far). Also
//! `x/echo`, a custom method that returns its params, `x/hang`, one that is
//! never answered, and `ping`. For the byte-level tests: `x/received`
//! returns every line the server read so far, exactly as read, and
//! `x/raw` (and the tool `raw`) answers with the text of its `line`
//! argument, `$ID` replaced by the request's id (so a test can make it
//! answer with `1e400` or a big integer).

use serde_json::{Value, json};
use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

type Waiters = Arc<Mutex<HashMap<String, mpsc::Sender<Value>>>>;
type Cancelled = Arc<Mutex<Vec<Value>>>;

/// Writes raw bytes and a line break (what a broken server might write).
fn send_raw(out: &Mutex<std::io::Stdout>, bytes: &[u8]) {
    let mut out = out.lock().unwrap_or_else(|p| p.into_inner());
    let _ = out.write_all(bytes);
    let _ = out.write_all(b"\n");
    let _ = out.flush();
}

/// Answers request `id` with one line of about `mb` MiB (a text result),
/// written in pieces so the server itself never holds it.
fn send_huge(out: &Mutex<std::io::Stdout>, id: &Value, mb: u64) {
    let mut out = out.lock().unwrap_or_else(|p| p.into_inner());
    let head =
        format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{{"content":[{{"type":"text","text":""#);
    let _ = out.write_all(head.as_bytes());
    let chunk = vec![b'x'; 1024 * 1024];
    for _ in 0..mb {
        if out.write_all(&chunk).is_err() {
            return;
        }
    }
    let _ = out.write_all(b"\"}]}}\n");
    let _ = out.flush();
}

fn send(out: &Mutex<std::io::Stdout>, msg: &Value) {
    let mut out = out.lock().unwrap_or_else(|p| p.into_inner());
    let _ = writeln!(out, "{msg}");
    let _ = out.flush();
}

fn tools() -> Value {
    json!([
        {
            "name": "echo_meta",
            "description": "Returns its arguments and the request's _meta.",
            "inputSchema": {"type": "object"},
            "annotations": {"readOnlyHint": true, "destructiveHint": false, "openWorldHint": false},
            "x-vendor": {"kept": true}
        },
        {
            "name": "slow",
            "description": "Answers after `ms` milliseconds.",
            "inputSchema": {"type": "object", "properties": {"ms": {"type": "integer"}}},
            "annotations": {"readOnlyHint": true, "destructiveHint": false}
        },
        {
            "name": "crash",
            "description": "Exits the server without answering.",
            "inputSchema": {"type": "object"},
            "annotations": {"readOnlyHint": true, "destructiveHint": false}
        },
        {
            "name": "ask_client",
            "description": "Asks the client (elicitation/create) and returns the answer.",
            "inputSchema": {"type": "object"},
            "annotations": {"readOnlyHint": true, "destructiveHint": false}
        },
        {
            "name": "wipe",
            "description": "Deletes everything.",
            "inputSchema": {"type": "object"},
            "annotations": {"readOnlyHint": false, "destructiveHint": true}
        },
        {
            "name": "hang",
            "description": "Never answers.",
            "inputSchema": {"type": "object"},
            "annotations": {"readOnlyHint": true, "destructiveHint": false}
        },
        {
            "name": "garbage",
            "description": "Writes lines that are no JSON-RPC message, then answers.",
            "inputSchema": {"type": "object"},
            "annotations": {"readOnlyHint": true, "destructiveHint": false}
        },
        {
            "name": "huge",
            "description": "Answers with one line of `mb` MiB (default 50).",
            "inputSchema": {"type": "object", "properties": {"mb": {"type": "integer"}}},
            "annotations": {"readOnlyHint": true, "destructiveHint": false}
        },
        {
            "name": "raw",
            "description": "Answers with the text of `line`, `$ID` replaced by the request id.",
            "inputSchema": {"type": "object"},
            "annotations": {"readOnlyHint": true, "destructiveHint": false}
        },
        {
            "name": "cancellations",
            "description": "The request ids of the notifications/cancelled received so far.",
            "inputSchema": {"type": "object"},
            "annotations": {"readOnlyHint": true, "destructiveHint": false}
        }
    ])
}

/// Tools listed after the built-in ones: the JSON array in the file that
/// `WARDEN_TEST_UPSTREAM_TOOLS` names, read at every tools/list (a test
/// rewrites it to change a definition, as a rug pull would). Each answers
/// a call with its name and arguments.
fn extra_tools() -> Vec<Value> {
    std::env::var_os("WARDEN_TEST_UPSTREAM_TOOLS")
        .and_then(|p| std::fs::read_to_string(p).ok())
        .and_then(|t| serde_json::from_str::<Vec<Value>>(&t).ok())
        .unwrap_or_default()
}

fn text_result(value: Value) -> Value {
    json!({
        "content": [{"type": "text", "text": value.to_string()}],
        "structuredContent": value,
    })
}

fn call_tool(
    id: Value,
    params: Value,
    out: Arc<Mutex<std::io::Stdout>>,
    waiters: Waiters,
    next: Arc<Mutex<u64>>,
    cancelled: Cancelled,
) {
    let name = params.get("name").and_then(Value::as_str).unwrap_or("");
    let args = params.get("arguments").cloned().unwrap_or(json!({}));
    let result = match name {
        "echo_meta" | "wipe" => text_result(json!({
            "tool": name,
            "arguments": args,
            "meta": params.get("_meta").cloned().unwrap_or(Value::Null),
        })),
        "slow" => {
            if let Some(token) = params.pointer("/_meta/progressToken") {
                send(
                    &out,
                    &json!({"jsonrpc": "2.0", "method": "notifications/progress",
                        "params": {"progressToken": token, "progress": 1, "total": 2}}),
                );
            }
            let ms = args.get("ms").and_then(Value::as_u64).unwrap_or(100);
            let every = args.get("progress_every_ms").and_then(Value::as_u64);
            match (params.pointer("/_meta/progressToken"), every) {
                (Some(token), Some(every)) if every > 0 => {
                    let end = std::time::Instant::now() + Duration::from_millis(ms);
                    let mut n = 1;
                    while std::time::Instant::now() < end {
                        std::thread::sleep(
                            Duration::from_millis(every)
                                .min(end.saturating_duration_since(std::time::Instant::now())),
                        );
                        n += 1;
                        send(
                            &out,
                            &json!({"jsonrpc": "2.0", "method": "notifications/progress",
                                "params": {"progressToken": token, "progress": n}}),
                        );
                    }
                }
                _ => std::thread::sleep(Duration::from_millis(ms)),
            }
            text_result(json!({"slept_ms": ms}))
        }
        "crash" => std::process::exit(3),
        "hang" => return,
        "garbage" => {
            for line in [
                &b"this is not JSON"[..],
                b"{\"jsonrpc\": \"2.0\", \"id\": 1, \"result\": ",
                b"\xff\xfe\x00 invalid UTF-8 \xc3\x28",
                b"[1, 2, 3]",
                b"{\"jsonrpc\": \"2.0\"}",
                b"{\"jsonrpc\": \"2.0\", \"id\": \"nobody-asked\", \"result\": {}}",
                b"   ",
            ] {
                send_raw(&out, line);
            }
            text_result(json!({"garbage": "sent", "arguments": args}))
        }
        "huge" => {
            let mb = args.get("mb").and_then(Value::as_u64).unwrap_or(50);
            send_huge(&out, &id, mb);
            return;
        }
        "raw" => {
            let line = args.get("line").and_then(Value::as_str).unwrap_or("{}");
            send_raw(&out, line.replace("$ID", &id.to_string()).as_bytes());
            return;
        }
        "cancellations" => {
            let ids = cancelled.lock().unwrap_or_else(|p| p.into_inner()).clone();
            text_result(json!({"cancelled": ids}))
        }
        "ask_client" => {
            let n = {
                let mut n = next.lock().unwrap_or_else(|p| p.into_inner());
                *n += 1;
                *n
            };
            // Small integer ids, as SDK servers use: the proxy remaps them.
            let req_id = json!(n);
            let (tx, rx) = mpsc::channel();
            waiters
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(req_id.to_string(), tx);
            send(
                &out,
                &json!({"jsonrpc": "2.0", "id": req_id, "method": "elicitation/create",
                    "params": {"message": "upstream asks: favourite colour?",
                        "requestedSchema": {"type": "object", "properties": {"colour": {"type": "string"}}}}}),
            );
            match rx.recv_timeout(Duration::from_secs(30)) {
                Ok(answer) => text_result(json!({"client_answer": answer})),
                Err(_) => text_result(json!({"client_answer": null})),
            }
        }
        other if extra_tools().iter().any(|t| t["name"] == other) => text_result(json!({
            "tool": other,
            "arguments": args,
        })),
        other => {
            send(
                &out,
                &json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32602, "message": format!("unknown tool {other}")}}),
            );
            return;
        }
    };
    send(&out, &json!({"jsonrpc": "2.0", "id": id, "result": result}));
}

/// Serves on stdin/stdout until stdin ends.
pub fn run_test_upstream() {
    let out = Arc::new(Mutex::new(std::io::stdout()));
    let waiters: Waiters = Arc::new(Mutex::new(HashMap::new()));
    let next = Arc::new(Mutex::new(0u64));
    let cancelled: Cancelled = Arc::new(Mutex::new(Vec::new()));
    let mut received: Vec<String> = Vec::new();
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        received.push(line.clone());
        let Ok(msg) = serde_json::from_str::<Value>(&line) else {
            send(
                &out,
                &json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32700, "message": "parse error"}}),
            );
            continue;
        };
        let id = msg.get("id").cloned();
        let method = msg
            .get("method")
            .and_then(Value::as_str)
            .map(str::to_string);
        let params = msg.get("params").cloned().unwrap_or(json!({}));
        match (method.as_deref(), id) {
            (None, Some(id)) => {
                let waiter = waiters
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&id.to_string());
                if let Some(tx) = waiter {
                    let _ = tx.send(msg.get("result").cloned().unwrap_or(msg.clone()));
                }
            }
            (Some("initialize"), Some(id)) => {
                let version = params
                    .get("protocolVersion")
                    .cloned()
                    .unwrap_or(json!("2025-06-18"));
                send(
                    &out,
                    &json!({"jsonrpc": "2.0", "id": id, "result": {
                        "protocolVersion": version,
                        "capabilities": {"tools": {}, "logging": {}, "x-experimental-thing": {"on": true}},
                        "serverInfo": {"name": "proxy-test-upstream", "version": "1.0.0", "pid": std::process::id()},
                        "x-unknown-field": [1, 2, 3]
                    }}),
                );
            }
            (Some("tools/list"), Some(id)) => {
                let mut all = tools();
                if let Some(list) = all.as_array_mut() {
                    list.extend(extra_tools());
                }
                send(
                    &out,
                    &json!({"jsonrpc": "2.0", "id": id, "result": {"tools": all}}),
                );
            }
            (Some("tools/call"), Some(id)) => {
                let (out, waiters, next, cancelled) = (
                    Arc::clone(&out),
                    Arc::clone(&waiters),
                    Arc::clone(&next),
                    Arc::clone(&cancelled),
                );
                std::thread::spawn(move || call_tool(id, params, out, waiters, next, cancelled));
            }
            (Some("ping"), Some(id)) => {
                send(&out, &json!({"jsonrpc": "2.0", "id": id, "result": {}}));
            }
            (Some("x/echo"), Some(id)) => {
                send(
                    &out,
                    &json!({"jsonrpc": "2.0", "id": id, "result": {"echo": params, "pid": std::process::id()}}),
                );
            }
            (Some("x/hang"), Some(_)) => {}
            (Some("x/received"), Some(id)) => {
                send(
                    &out,
                    &json!({"jsonrpc": "2.0", "id": id, "result": {"lines": received}}),
                );
            }
            (Some("x/raw"), Some(id)) => {
                let line = params.get("line").and_then(Value::as_str).unwrap_or("{}");
                send_raw(&out, line.replace("$ID", &id.to_string()).as_bytes());
            }
            (Some(m), Some(id)) => {
                send(
                    &out,
                    &json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32601, "message": format!("method not found: {m}")}}),
                );
            }
            (Some("notifications/cancelled"), None) => {
                if let Some(req) = params.get("requestId") {
                    cancelled
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(req.clone());
                }
            }
            (Some(_), None) | (None, None) => {}
        }
    }
}
