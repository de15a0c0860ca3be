//! `warden proxy --listen 127.0.0.1:0` in front of warden's raw test
//! server, driven with raw HTTP as a client without elicitation: what the
//! approval tests share. The policy and the decision log live in a temp
//! dir that lives as long as the proxy.

use serde_json::{Value, json};

use super::Res;

/// `warden proxy --listen` in front of the raw test server, with `extra`
/// flags; its MCP URL, base URL and temp dir (policy, decision log).
pub struct HttpWarden {
    _child: tokio::process::Child,
    pub mcp: String,
    pub base: String,
    pub dir: tempfile::TempDir,
}

impl HttpWarden {
    pub async fn start(policy: &str, extra: &[&str]) -> Res<HttpWarden> {
        use tokio::io::AsyncBufReadExt;
        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join("p.policy"), policy)?;
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_warden"))
            .arg("proxy")
            .arg("--policies")
            .arg(dir.path().join("p.policy"))
            .arg("--audit-log")
            .arg(dir.path().join("audit.jsonl"))
            .args(["--listen", "127.0.0.1:0"])
            .args(extra)
            .arg("--")
            .arg(env!("CARGO_BIN_EXE_warden"))
            .arg("proxy-test-upstream")
            // Tools the test upstream lists besides its own, if the test
            // writes them (`tools.json` in the temp dir).
            .env("WARDEN_TEST_UPSTREAM_TOOLS", dir.path().join("tools.json"))
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let mut lines = tokio::io::BufReader::new(child.stderr.take().ok_or("stderr")?).lines();
        let mcp = tokio::time::timeout(std::time::Duration::from_secs(10), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(url) = line.strip_prefix("warden: MCP at ") {
                    return Some(url.trim().to_string());
                }
            }
            None
        })
        .await?
        .ok_or("warden did not say where it listens")?;
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let base = mcp.trim_end_matches("/mcp").to_string();
        Ok(HttpWarden {
            _child: child,
            mcp,
            base,
            dir,
        })
    }

    /// One 2025-06-18 session without elicitation, as the bearer of
    /// `token` when given: its id.
    pub async fn session(&self, http: &reqwest::Client, token: Option<&str>) -> Res<String> {
        let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize",
            "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                       "clientInfo": {"name": "no-elicitation", "version": "1"}}});
        let resp = self.post(http, None, token, &init).await?;
        let sid = resp
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .ok_or("no session id")?
            .to_string();
        let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        self.post(http, Some(&sid), token, &note).await?;
        Ok(sid)
    }

    pub async fn post(
        &self,
        http: &reqwest::Client,
        sid: Option<&str>,
        token: Option<&str>,
        msg: &Value,
    ) -> Res<reqwest::Response> {
        let mut req = http
            .post(&self.mcp)
            .header("accept", "application/json")
            .header("content-type", "application/json")
            .header("mcp-protocol-version", "2025-06-18");
        if let Some(s) = sid {
            req = req.header("mcp-session-id", s);
        }
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        Ok(req.body(msg.to_string()).send().await?)
    }

    pub async fn call(
        &self,
        http: &reqwest::Client,
        sid: &str,
        id: u64,
        args: Value,
    ) -> Res<Value> {
        self.call_as(http, sid, None, id, args).await
    }

    pub async fn call_as(
        &self,
        http: &reqwest::Client,
        sid: &str,
        token: Option<&str>,
        id: u64,
        args: Value,
    ) -> Res<Value> {
        let msg = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": "echo_meta", "arguments": args}});
        Ok(self
            .post(http, Some(sid), token, &msg)
            .await?
            .json()
            .await?)
    }

    pub fn log(&self) -> Vec<Value> {
        std::fs::read_to_string(self.dir.path().join("audit.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}
