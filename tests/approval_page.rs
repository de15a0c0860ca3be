//! The approval page in a real browser: headless Chromium driven over
//! WebDriver (Debian's `chromium` and `chromium-driver`, installed by
//! `.ci/run`; a test fails when they are missing). A pending call's page
//! shows the call with markup as text; the person approves (or refuses)
//! with a note by clicking, and the agent's retry goes through (or is
//! asked again). Screenshots of the page before and after go to
//! docs/approvals-pending.png and docs/approvals-approved.png when
//! `UPDATE_SCREENSHOTS=1`.

mod common;

use common::Res;
use common::http_warden::HttpWarden;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use std::process::Stdio;
use std::time::Duration;

/// chromedriver on a free port, stopped on drop.
struct Driver {
    child: std::process::Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> Res<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

async fn driver() -> Res<Driver> {
    let port = free_port()?;
    let child = std::process::Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("chromedriver (Debian package `chromium-driver`) is needed: {e}"))?;
    let d = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(d);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err("chromedriver did not start listening".into())
}

async fn browser(d: &Driver) -> Res<Client> {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({"binary": "/usr/bin/chromium",
               "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=900,1000"]}),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    Ok(ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&d.url)
        .await?)
}

/// A client without elicitation in front of `warden proxy --listen`.
struct Agent {
    http: reqwest::Client,
    warden: HttpWarden,
    sid: String,
}

impl Agent {
    async fn start(policy: &str) -> Res<Agent> {
        let warden = HttpWarden::start(policy, &["--user", "ada"]).await?;
        let http = reqwest::Client::builder().no_proxy().build()?;
        let sid = warden.session(&http, None).await?;
        Ok(Agent { http, warden, sid })
    }

    async fn call(&self, id: u64, args: &Value) -> Res<Value> {
        self.warden
            .call(&self.http, &self.sid, id, args.clone())
            .await
    }

    fn log(&self) -> Res<String> {
        Ok(std::fs::read_to_string(
            self.warden.dir.path().join("audit.jsonl"),
        )?)
    }
}

/// Clicks the button `css` and reads the page's status once it shows.
async fn click_and_read_status(b: &Client, css: &str) -> Res<String> {
    b.find(Locator::Css(css)).await?.click().await?;
    Ok(b.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Id("status"))
        .await?
        .text()
        .await?)
}

fn link_in(answer: &Value) -> Res<String> {
    let t = answer["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or("");
    let start = t.find("http://").ok_or_else(|| format!("no link in {t}"))?;
    Ok(t[start..]
        .chars()
        .take_while(|c| !c.is_whitespace())
        .collect())
}

const POLICY: &str = r#"default allow

require-confirm runs {
  tool "echo_meta"
  reason "start {args.pipeline} on {args.sample_id}? this uses paid compute"
}
"#;

fn save_screenshot(name: &str, png: &[u8]) -> Res<()> {
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    if std::env::var_os("UPDATE_SCREENSHOTS").is_some() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("docs")
            .join(name);
        std::fs::write(path, png)?;
    }
    Ok(())
}

#[tokio::test]
async fn a_person_approves_in_the_browser_and_the_agents_retry_goes_through() -> Res<()> {
    let d = driver().await?;
    let agent = Agent::start(POLICY).await?;
    let args = json!({"pipeline": "wgs-align", "sample_id": "S-0001",
        "label": "<script>document.title='pwned'</script><b>bold</b>"});
    let refused = agent.call(1, &args).await?;
    assert_eq!(refused["result"]["isError"], true, "{refused}");
    let link = link_in(&refused)?;

    let b = browser(&d).await?;
    b.goto(&link).await?;
    assert_eq!(b.title().await?, "Approve a call — warden", "no script ran");
    let shown = b.find(Locator::Id("arguments")).await?.text().await?;
    assert!(
        shown.contains("<script>document.title='pwned'</script><b>bold</b>"),
        "markup shown as text: {shown}"
    );
    assert!(
        b.find_all(Locator::Css("b")).await?.is_empty(),
        "no markup rendered"
    );
    let page = b.find(Locator::Css("body")).await?.text().await?;
    for expected in [
        "ada",
        "echo_meta",
        "runs",
        "start wgs-align on S-0001? this uses paid compute",
    ] {
        assert!(page.contains(expected), "{expected} in {page}");
    }
    save_screenshot("approvals-pending.png", &b.screenshot().await?)?;

    b.find(Locator::Id("note"))
        .await?
        .send_keys("fine for the S-0001 rerun")
        .await?;
    let status = click_and_read_status(&b, "button.approve").await?;
    assert!(status.starts_with("Approved by ada"), "{status}");
    save_screenshot("approvals-approved.png", &b.screenshot().await?)?;

    // The link a second time: decided, no form.
    b.goto(&link).await?;
    assert!(b.find_all(Locator::Css("form")).await?.is_empty());

    let ok = agent.call(2, &args).await?;
    assert!(
        ok["result"]["isError"] != true,
        "the retry goes through: {ok}"
    );
    let log = agent.log()?;
    assert!(
        log.contains(r#""note":"fine for the S-0001 rerun""#),
        "{log}"
    );
    b.close().await?;
    Ok(())
}

#[tokio::test]
async fn a_person_refuses_in_the_browser_and_the_retry_asks_again() -> Res<()> {
    let d = driver().await?;
    let agent = Agent::start(POLICY).await?;
    let args = json!({"pipeline": "wgs-align", "sample_id": "S-0002"});
    let link = link_in(&agent.call(1, &args).await?)?;
    let b = browser(&d).await?;
    b.goto(&link).await?;
    let status = click_and_read_status(&b, "button.refuse").await?;
    assert!(status.starts_with("Refused by ada"), "{status}");
    let again = agent.call(2, &args).await?;
    assert_eq!(again["result"]["isError"], true, "{again}");
    assert_ne!(link_in(&again)?, link, "a new approval");
    let log = agent.log()?;
    assert!(log.contains(r#""approved":false"#), "{log}");
    b.close().await?;
    Ok(())
}
