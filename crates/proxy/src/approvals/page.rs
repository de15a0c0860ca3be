//! The approval page's HTML: one self-contained document (inline style, no
//! script, no external asset), every value from the call escaped.

use super::{Pending, Status};
use warden_lang::CompiledApprover;

/// The page's Content-Security-Policy: nothing loads, forms post back.
pub(super) const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem;color:#1b1f24}\
h1{font-size:1.4rem}dl{display:grid;grid-template-columns:max-content 1fr;gap:.3rem 1rem}dt{font-weight:600}\
pre{background:#f3f4f6;padding:.8rem;overflow:auto;white-space:pre-wrap;word-break:break-all}\
textarea,input[type=password]{width:100%;box-sizing:border-box;margin:.3rem 0 1rem}\
button{font-size:1rem;padding:.5rem 1.2rem;margin-right:.8rem}.approve{background:#116329;color:#fff;border:0}\
.refuse{background:#a40e26;color:#fff;border:0}.status{padding:.6rem;border-left:4px solid #888;background:#f6f8fa}";

/// Escapes text for HTML content and attribute values.
pub(super) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn document(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\"><title>{}</title><style>{STYLE}</style></head><body>{body}</body></html>",
        escape(title)
    )
}

fn who_approves(p: &Pending) -> String {
    match &p.approver {
        None => format!("the caller, {}", escape(&p.call.identity.user)),
        Some(CompiledApprover::Group(g)) => format!(
            "a member of group <code>{}</code> other than the caller",
            escape(g)
        ),
        Some(CompiledApprover::User(u)) => format!("<code>{}</code>", escape(u)),
    }
}

/// The page of a pending (or decided) approval; `form`: the secret and
/// CSRF token the form posts back, when it may still be decided.
pub(super) fn approval_page(p: &Pending, id: &str, secret: &str, ask_token: bool) -> String {
    let id_ = &p.call.identity;
    let args = serde_json::to_string_pretty(&p.shown_args).unwrap_or_default();
    let expires = jiff_like(p.expires_at);
    let mut body = format!(
        "<h1>Approve a call by an AI agent?</h1>\
<dl><dt>Asked by</dt><dd>user <code>{user}</code>, agent <code>{agent}</code>{model}</dd>\
<dt>Tool</dt><dd><code>{tool}</code> on server <code>{server}</code></dd>\
<dt>Rule</dt><dd><code>{rules}</code></dd>\
<dt>Why</dt><dd>{message}</dd>\
<dt>Approved by</dt><dd>{who}</dd>\
<dt>Expires</dt><dd>{expires}</dd>\
<dt>Decision</dt><dd><code>{decision}</code> in the decision log</dd></dl>\
<h2>Arguments</h2><pre id=\"arguments\">{args}</pre>",
        user = escape(&id_.user),
        agent = escape(id_.agent.as_deref().unwrap_or("unknown")),
        model = id_
            .model
            .as_deref()
            .map(|m| format!(", model <code>{}</code>", escape(m)))
            .unwrap_or_default(),
        tool = escape(&p.call.tool),
        server = escape(&p.call.server),
        rules = escape(&p.rules.join(", ")),
        message = escape(&p.message),
        who = who_approves(p),
        expires = escape(&expires),
        decision = escape(&p.decision_id),
        args = escape(&args),
    );
    match &p.status {
        Status::Pending => {
            let token = if ask_token {
                "<label for=\"token\">Your access token (warden checks who approves)</label>\
<input type=\"password\" id=\"token\" name=\"token\" autocomplete=\"off\">"
            } else {
                ""
            };
            body.push_str(&format!(
                "<form method=\"post\" action=\"/approvals/{id}\">\
<input type=\"hidden\" name=\"s\" value=\"{secret}\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
{token}<label for=\"note\">Note (optional, kept in the decision log)</label>\
<textarea id=\"note\" name=\"note\" rows=\"2\" maxlength=\"500\"></textarea>\
<button class=\"approve\" type=\"submit\" name=\"action\" value=\"approve\">Approve</button>\
<button class=\"refuse\" type=\"submit\" name=\"action\" value=\"refuse\">Refuse</button></form>",
                id = escape(id),
                secret = escape(secret),
                csrf = escape(&p.csrf),
            ));
        }
        Status::Approved { by } => body.push_str(&format!(
            "<p class=\"status\" id=\"status\">Approved by {}. The agent's call goes through when it is made again.</p>",
            escape(by)
        )),
        Status::Refused { by } => body.push_str(&format!(
            "<p class=\"status\" id=\"status\">Refused by {}.</p>",
            escape(by)
        )),
    }
    document("Approve a call — warden", &body)
}

/// A page that only says something (a refusal of the request, a result).
pub(super) fn message_page(title: &str, text: &str) -> String {
    document(
        title,
        &format!(
            "<h1>{}</h1><p class=\"status\" id=\"status\">{}</p>",
            escape(title),
            escape(text)
        ),
    )
}

/// `2026-12-04 10:15:00 UTC`.
fn jiff_like(t: std::time::SystemTime) -> String {
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    match jiff::Timestamp::from_second(secs) {
        Ok(ts) => ts.strftime("%Y-%m-%d %H:%M:%S UTC").to_string(),
        Err(_) => format!("{secs} s after 1970"),
    }
}
