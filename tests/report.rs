//! `warden report` through the real binary and a real browser: the page
//! it writes for a known log renders in headless Chromium (Debian's
//! `chromium`, installed by `.ci/run`) to a PNG with no console errors,
//! and the numbers its charts carry (as rendered, in the DOM) are the
//! log's, counted here independently.

use serde_json::json;
use std::path::Path;
use std::process::Command;

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

#[allow(clippy::too_many_arguments)]
fn line(
    time: &str,
    decision: &str,
    user: &str,
    agent: &str,
    tool: &str,
    rules: &[&str],
    extra: serde_json::Value,
) -> String {
    let mut v = json!({
        "seq": 0, "prev": "0".repeat(64), "time": time, "decision_id": format!("d-{time}"),
        "policy_version": "v1", "decision": decision, "server": "genomics", "tool": tool,
        "identity": {"user": user, "groups": [], "agent": agent}, "session": "s1",
        "provenance": {"via_agent": true}, "arguments": {}, "rules": rules, "latency_us": 9,
    });
    if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
        o.extend(e.clone());
    }
    v.to_string()
}

/// Six decisions over three minutes, with an outcome, a checkpoint and a
/// torn line besides.
fn sample_log(dir: &Path) -> Res<std::path::PathBuf> {
    let lines = [
        line("2026-12-01T09:00:00.000Z", "allow", "ada", "a1", "get_sample", &["reads"], json!({})),
        line("2026-12-01T09:00:30.000Z", "deny", "ada", "a1", "delete_sample", &["no-deletes"],
             json!({"reason": "agents may not delete", "retry": {"when": "never"}})),
        r#"{"seq":2,"prev":"00","time":"2026-12-01T09:00:31.000Z","decision_id":"d-x","event":"outcome","upstream":{"ok":true,"duration_ms":3}}"#.to_string(),
        line("2026-12-01T09:01:10.000Z", "deny", "bob", "a2", "export_results", &["exports"],
             json!({"reason": "at most 2 exports per hour", "retry": {"when": "after_seconds", "seconds": 60}})),
        line("2026-12-01T09:02:00.000Z", "allow", "ada", "a1", "start_pipeline_run", &["runs"],
             json!({"confirmed": ["costly"]})),
        line("2026-12-01T09:02:30.000Z", "deny", "bob", "a2", "start_pipeline_run", &["costly"],
             json!({"reason": "`start_pipeline_run` was not called: the person declined the confirmation (rule `costly`: run?)", "retry": {"when": "never"}})),
        r#"{"seq":6,"prev":"00","time":"2026-12-01T09:02:40.000Z","event":"checkpoint","alg":"EdDSA","signature":"x"}"#.to_string(),
        line("2026-12-01T09:03:00.000Z", "deny", "ada", "a1", "start_pipeline_run", &["three-in-a-row"],
             json!({"reason": "at most 3 runs in a row", "retry": {"when": "after_streak_ends"}})),
        r#"{"seq":8,"prev":"00","time":"2026-12-01T09:03:0"#.to_string(),
    ];
    let path = dir.join("decisions.jsonl");
    std::fs::write(&path, lines.join("\n") + "\n")?;
    Ok(path)
}

/// The `data-name`/`data-count` pairs of the list section `id` in `dom`.
fn list(dom: &str, id: &str) -> Vec<(String, u64)> {
    let Some(start) = dom.find(&format!(r#"id="{id}""#)) else {
        return Vec::new();
    };
    let section = &dom[start..start + dom[start..].find("</section>").unwrap_or(0)];
    section
        .split("<li ")
        .skip(1)
        .filter_map(|li| {
            let attr = |name: &str| {
                let from = li.find(&format!(r#"{name}=""#))? + name.len() + 2;
                Some(li[from..from + li[from..].find('"')?].to_string())
            };
            Some((attr("data-name")?, attr("data-count")?.parse().ok()?))
        })
        .collect()
}

/// The sum of one attribute over the chart's buckets.
fn bucket_sum(dom: &str, attr: &str) -> u64 {
    dom.split(r#"class="bucket""#)
        .skip(1)
        .filter_map(|b| {
            let from = b.find(&format!(r#"{attr}=""#))? + attr.len() + 2;
            b[from..from + b[from..].find('"')?].parse::<u64>().ok()
        })
        .sum()
}

fn chromium(args: &[&str], page: &Path) -> Res<std::process::Output> {
    Ok(Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .args(args)
        .arg(format!("file://{}", page.display()))
        .output()
        .map_err(|e| format!("chromium (Debian package `chromium`) is needed: {e}"))?)
}

#[test]
fn the_report_renders_without_console_errors_and_its_charts_hold_the_logs_numbers() -> Res<()> {
    let dir = tempfile::tempdir()?;
    let log = sample_log(dir.path())?;
    let page = dir.path().join("report.html");
    let out = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["report", "--log"])
        .arg(&log)
        .arg("--out")
        .arg(&page)
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("6 decision(s) (2 allow, 4 deny, 0 confirm)"),
        "{stdout}"
    );
    assert!(stdout.contains("1 line(s) could not be read"), "{stdout}");
    let html = std::fs::read_to_string(&page)?;
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "the page loads nothing"
    );
    assert!(
        !html.contains("<script>") && !html.contains("<script src"),
        "no script runs"
    );

    // Rendered to a PNG, with nothing on the console.
    let png = dir.path().join("report.png");
    let shot = chromium(
        &[
            "--window-size=1100,1400",
            &format!("--screenshot={}", png.display()),
        ],
        &page,
    )?;
    let log_text = String::from_utf8_lossy(&shot.stderr);
    assert!(shot.status.success(), "{log_text}");
    let image = std::fs::read(&png)?;
    assert!(
        image.starts_with(b"\x89PNG") && image.len() > 10_000,
        "{} bytes",
        image.len()
    );
    for bad in [":CONSOLE", "Uncaught", "Refused to", "Failed to load"] {
        assert!(
            !log_text.contains(bad),
            "`{bad}` on the console:\n{log_text}"
        );
    }

    // The DOM as the browser built it carries the log's numbers.
    let dom = chromium(&["--dump-dom"], &page)?;
    let dom = String::from_utf8_lossy(&dom.stdout).into_owned();
    assert_eq!(bucket_sum(&dom, "data-allow"), 2, "{dom}");
    assert_eq!(bucket_sum(&dom, "data-deny"), 4);
    assert_eq!(bucket_sum(&dom, "data-confirm"), 0);
    // Three minutes in 10 s buckets, 09:00:00 to 09:03:00.
    assert_eq!(dom.matches(r#"class="bucket""#).count(), 19);
    let one = |names: &[&str]| names.iter().map(|n| (n.to_string(), 1)).collect::<Vec<_>>();
    assert_eq!(
        list(&dom, "top-rules"),
        one(&["costly", "exports", "no-deletes", "three-in-a-row"])
    );
    assert_eq!(
        list(&dom, "top-tools"),
        vec![
            ("genomics/start_pipeline_run".to_string(), 2),
            ("genomics/delete_sample".to_string(), 1),
            ("genomics/export_results".to_string(), 1),
        ]
    );
    assert_eq!(
        list(&dom, "top-users"),
        vec![("ada".to_string(), 2), ("bob".to_string(), 2)]
    );
    assert_eq!(
        list(&dom, "top-agents"),
        vec![("a1".to_string(), 2), ("a2".to_string(), 2)]
    );
    assert_eq!(
        list(&dom, "confirmations"),
        vec![
            ("asked".to_string(), 2),
            ("accepted".to_string(), 1),
            ("declined".to_string(), 1),
            ("unanswered".to_string(), 0),
        ]
    );
    assert_eq!(list(&dom, "rates"), one(&["exports"]));
    assert_eq!(list(&dom, "caps"), one(&["three-in-a-row"]));
    Ok(())
}

#[test]
fn names_from_the_log_are_shown_as_text_and_a_missing_log_exits_2() -> Res<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("decisions.jsonl");
    std::fs::write(
        &path,
        line(
            "2026-12-01T09:00:00.000Z",
            "deny",
            "<img src=x onerror=alert(1)>",
            "a",
            "t",
            &["<b>r</b>"],
            json!({}),
        ) + "\n",
    )?;
    let page = dir.path().join("report.html");
    let out = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["report", "--log"])
        .arg(&path)
        .arg("--out")
        .arg(&page)
        .output()?;
    assert!(out.status.success());
    let html = std::fs::read_to_string(&page)?;
    assert!(
        !html.contains("<img") && !html.contains("<b>r</b>"),
        "markup from the log is escaped"
    );
    assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;"));

    let out = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["report", "--log"])
        .arg(dir.path().join("missing.jsonl"))
        .arg("--out")
        .arg(&page)
        .output()?;
    assert_eq!(out.status.code(), Some(2));
    Ok(())
}
