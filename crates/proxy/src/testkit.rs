//! A tiny MCP server over stdio for the proxy's end-to-end tests (run by
//! the hidden `warden proxy-test-upstream` command). It speaks raw JSON-RPC
//! so that it can do what a well-behaved SDK server would not: echo the
//! `_meta` it received, crash on request, carry unknown fields, and ask the
//! client questions. Not part of warden's interface.
//!
//! Tools: `echo_meta` (returns its arguments and the request's `_meta`),
//! `slow` (answers after `ms` milliseconds, with a progress notification
//! first), `crash` (exits with status 3 without answering), `ask_client`
//! (sends `elicitation/create` to the client and returns its answer),
//! `wipe` (destructive; for hiding tests). Also `x/echo`, a custom method
//! that returns its params, and `ping`.

use serde_json::{Value, json};
use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

type Waiters = Arc<Mutex<HashMap<String, mpsc::Sender<Value>>>>;

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
        }
    ])
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
            std::thread::sleep(Duration::from_millis(ms));
            text_result(json!({"slept_ms": ms}))
        }
        "crash" => std::process::exit(3),
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
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
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
                send(
                    &out,
                    &json!({"jsonrpc": "2.0", "id": id, "result": {"tools": tools()}}),
                );
            }
            (Some("tools/call"), Some(id)) => {
                let (out, waiters, next) =
                    (Arc::clone(&out), Arc::clone(&waiters), Arc::clone(&next));
                std::thread::spawn(move || call_tool(id, params, out, waiters, next));
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
            (Some(m), Some(id)) => {
                send(
                    &out,
                    &json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32601, "message": format!("method not found: {m}")}}),
                );
            }
            (Some(_), None) | (None, None) => {}
        }
    }
}
