//! `warden report --log FILE... --out report.html`: one self-contained
//! HTML page (inline CSS and SVG, no script, no network: its Content
//! Security Policy allows nothing else) with charts of what the decision
//! log holds ([`warden_engine::report`]). Every bar carries its numbers in
//! `data-*` attributes, and the counts are embedded as JSON
//! (`#warden-report-data`), so a test or a script reads what the page shows.

use crate::exit;
use clap::Args;
use std::fmt::Write as _;
use std::path::PathBuf;
use warden_engine::log::rfc3339;
use warden_engine::report::{ReportData, report_data};

/// `warden report` arguments.
#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  warden report --log decisions.jsonl.* decisions.jsonl --out report.html"
)]
pub(crate) struct ReportArgs {
    /// Decision log files (rotated ones too).
    #[arg(long = "log", value_name = "FILE", required = true, num_args = 1..)]
    logs: Vec<PathBuf>,
    /// Where to write the page.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
}

pub(crate) fn run(args: ReportArgs) -> i32 {
    let files = match crate::files::open_log_files(&args.logs) {
        Ok(f) => f,
        Err(code) => return code,
    };
    let names: Vec<String> = files.iter().map(|(name, _)| name.clone()).collect();
    let data = match report_data(files.into_iter().map(|(_, r)| r).collect()) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: cannot read the log: {e}");
            return exit::USAGE;
        }
    };
    if let Err(e) = std::fs::write(&args.out, page(&data, &names)) {
        eprintln!("error: cannot write `{}`: {e}", args.out.display());
        return exit::USAGE;
    }
    println!(
        "warden: {} decision(s) ({} allow, {} deny, {} confirm) in {}",
        data.decisions,
        data.allow,
        data.deny,
        data.confirm,
        args.out.display()
    );
    if data.unreadable > 0 {
        println!("warden: {} line(s) could not be read", data.unreadable);
    }
    exit::OK
}

fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn time(ms: i64) -> String {
    let at =
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    rfc3339(at)
}

/// A stacked bar per time bucket: allow, deny, confirm.
fn over_time(data: &ReportData) -> String {
    let (w, h, pad) = (960.0_f64, 240.0_f64, 30.0_f64);
    let most = data
        .over_time
        .iter()
        .map(|b| b.allow + b.deny + b.confirm)
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let n = data.over_time.len().max(1) as f64;
    let bw = (w - 2.0 * pad) / n;
    let mut svg = format!(
        r#"<svg id="over-time" viewBox="0 0 {w} {h}" role="img" aria-label="decisions over time by outcome"><line x1="{pad}" y1="{}" x2="{}" y2="{}" class="axis"/>"#,
        h - pad,
        w - pad,
        h - pad
    );
    for (i, b) in data.over_time.iter().enumerate() {
        let x = pad + i as f64 * bw;
        let mut y = h - pad;
        let _ = write!(
            svg,
            r#"<g class="bucket" data-start="{}" data-allow="{}" data-deny="{}" data-confirm="{}"><title>{}: {} allow, {} deny, {} confirm</title>"#,
            esc(&time(b.start_ms)),
            b.allow,
            b.deny,
            b.confirm,
            esc(&time(b.start_ms)),
            b.allow,
            b.deny,
            b.confirm
        );
        for (count, class) in [(b.allow, "allow"), (b.deny, "deny"), (b.confirm, "confirm")] {
            let bh = count as f64 / most * (h - 2.0 * pad);
            y -= bh;
            let _ = write!(
                svg,
                r#"<rect class="{class}" x="{x:.1}" y="{y:.1}" width="{:.1}" height="{bh:.1}"/>"#,
                (bw - 1.0).max(0.5)
            );
        }
        svg.push_str("</g>");
    }
    let _ = write!(
        svg,
        r#"<text x="{pad}" y="{}" class="label">{}</text><text x="{}" y="{}" class="label end">{}</text><text x="{pad}" y="16" class="label">{} per bar at most</text></svg>"#,
        h - 8.0,
        esc(&time(data.from_ms)),
        w - pad,
        h - 8.0,
        esc(&time(data.to_ms)),
        most as u64
    );
    svg
}

/// A horizontal bar list.
fn bars(id: &str, title: &str, items: &[(String, u64)], empty: &str) -> String {
    let mut out = format!(r#"<section class="list" id="{id}"><h2>{}</h2>"#, esc(title));
    if items.is_empty() {
        let _ = write!(out, r#"<p class="empty">{}</p></section>"#, esc(empty));
        return out;
    }
    let most = items.iter().map(|(_, n)| *n).max().unwrap_or(1).max(1) as f64;
    out.push_str("<ol>");
    for (name, n) in items {
        let _ = write!(
            out,
            r#"<li data-name="{}" data-count="{n}"><span class="name">{}</span><svg viewBox="0 0 100 10" preserveAspectRatio="none" class="bar"><rect width="{:.1}" height="10"/></svg><span class="count">{n}</span></li>"#,
            esc(name),
            esc(name),
            *n as f64 / most * 100.0
        );
    }
    out.push_str("</ol></section>");
    out
}

fn page(data: &ReportData, files: &[String]) -> String {
    let c = &data.confirmations;
    let confirmations = vec![
        ("asked".to_string(), c.asked),
        ("accepted".to_string(), c.accepted),
        ("declined".to_string(), c.declined),
        ("unanswered".to_string(), c.unanswered),
    ];
    let json = serde_json::to_string(data)
        .unwrap_or_else(|_| "{}".into())
        // `<` as a JSON escape: nothing from the log can end the block or
        // read as markup.
        .replace('<', "\\u003c");
    let mut html = String::new();
    let _ = write!(
        html,
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>warden decision report</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #1d2330; background: #fff; }}
h1 {{ font-size: 20px; margin: 0 0 4px; }} h2 {{ font-size: 15px; margin: 0 0 8px; }}
.meta {{ color: #5a6270; margin: 0 0 16px; }}
.totals span {{ display: inline-block; margin-right: 18px; font-weight: 600; }}
.grid {{ display: grid; grid-template-columns: repeat(auto-fill, minmax(300px, 1fr)); gap: 20px; margin-top: 20px; }}
section {{ border: 1px solid #dde1e7; border-radius: 6px; padding: 12px; }}
#over-time {{ width: 100%; height: auto; }}
rect.allow {{ fill: #3b8f5a; }} rect.deny {{ fill: #c0392b; }} rect.confirm {{ fill: #d68910; }}
.axis {{ stroke: #8a93a0; }} .label {{ font-size: 11px; fill: #5a6270; }} .end {{ text-anchor: end; }}
ol {{ list-style: none; margin: 0; padding: 0; }}
li {{ display: grid; grid-template-columns: 1fr 120px 48px; gap: 8px; align-items: center; margin: 3px 0; }}
.name {{ overflow-wrap: anywhere; }} .count {{ text-align: right; font-variant-numeric: tabular-nums; }}
svg.bar {{ width: 120px; height: 10px; }} svg.bar rect {{ fill: #4a6fa5; }}
.legend span::before {{ content: ""; display: inline-block; width: 10px; height: 10px; margin: 0 4px 0 12px; }}
.legend .allow::before {{ background: #3b8f5a; }} .legend .deny::before {{ background: #c0392b; }} .legend .confirm::before {{ background: #d68910; }}
.empty {{ color: #5a6270; }}
</style></head><body>
<h1>warden decision report</h1>
<p class="meta">{} · {} to {}</p>
<p class="totals"><span id="total" data-count="{}">{} decisions</span><span data-count="{}">{} allowed</span><span data-count="{}">{} denied</span><span data-count="{}">{} to confirm</span></p>
<section><h2>Decisions over time, by outcome</h2><p class="legend"><span class="allow">allow</span><span class="deny">deny</span><span class="confirm">confirm</span></p>{}</section>
<div class="grid">"#,
        esc(&files.join(", ")),
        esc(&time(data.from_ms)),
        esc(&time(data.to_ms)),
        data.decisions,
        data.decisions,
        data.allow,
        data.allow,
        data.deny,
        data.deny,
        data.confirm,
        data.confirm,
        over_time(data)
    );
    html.push_str(&bars(
        "top-rules",
        "Top denying rules",
        &data.top_denying_rules,
        "no denials",
    ));
    html.push_str(&bars(
        "top-tools",
        "Top denied tools",
        &data.top_denied_tools,
        "no denials",
    ));
    html.push_str(&bars(
        "top-agents",
        "Top denied agents",
        &data.top_denied_agents,
        "no denials",
    ));
    html.push_str(&bars(
        "top-users",
        "Top denied users",
        &data.top_denied_users,
        "no denials",
    ));
    html.push_str(&bars("confirmations", "Confirmations", &confirmations, ""));
    html.push_str(&bars(
        "rates",
        "Rate limits and budgets reached",
        &data.rates_reached,
        "none reached",
    ));
    html.push_str(&bars(
        "caps",
        "Consecutive-call caps reached",
        &data.caps_reached,
        "none reached",
    ));
    let _ = write!(
        html,
        r#"</div>
<script type="application/json" id="warden-report-data">{json}</script>
</body></html>
"#
    );
    html
}
