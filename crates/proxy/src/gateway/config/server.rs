//! The `[[server]]` tables: one upstream MCP server each, a command (stdio)
//! or a URL (Streamable HTTP), with its name, the keys that fit its kind,
//! and the names checked across servers (unique, no separator in them).

use super::build::{MAX_DURATION, elsewhere, resolve};
use super::error::Problem;
use super::reader::{Cx, Str, Table, closest};
use super::{Instances, ServerConfig};
use crate::{Upstream, UpstreamCommand};
use std::collections::HashMap;
use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

pub(super) const KEYS: &[&str] = &[
    "name",
    "command",
    "args",
    "env",
    "cwd",
    "inherit_env",
    "instances",
    "url",
    "headers",
    "call_timeout",
    "required",
];
/// Keys only a command server takes.
const COMMAND_ONLY: &[&str] = &["args", "env", "cwd", "inherit_env", "instances"];
/// The longest server name: tool names on /mcp are `<server><sep><tool>`,
/// and MCP clients expect tool names of at most 128 characters.
const MAX_NAME: usize = 64;

pub(super) fn servers(
    cx: &mut Cx<'_>,
    root: &Table<'_, '_>,
    dir: &Path,
    separator: Option<&str>,
    default_timeout: Duration,
) -> Vec<ServerConfig> {
    let example = "add a section per MCP server, e.g.\n[[server]]\nname = \"genomics\"\ncommand = \"genomics-mcp\"";
    if !root.require(cx, "server", example) {
        return Vec::new();
    }
    let Some(tables) = root.tables(cx, "server", "this `[[server]]`") else {
        return Vec::new();
    };
    if tables.is_empty() {
        let span = root.value_span("server").unwrap_or(root.start());
        cx.push(Problem::error(span, "no servers", "empty").with_help(example));
    }
    let mut out = Vec::new();
    // Lowercased name -> the span of its first use.
    let mut seen: HashMap<String, std::ops::Range<usize>> = HashMap::new();
    for t in tables {
        t.check_keys(cx, KEYS, elsewhere);
        let name = t
            .require(cx, "name", "add e.g. `name = \"genomics\"`: the server's name in policies (`via server \"genomics\"`) and its route /servers/genomics/mcp")
            .then(|| t.string(cx, "name"))
            .flatten()
            .filter(|n| check_name(cx, n, separator));
        if let Some(n) = &name {
            let key = n.value.to_ascii_lowercase();
            if let Some(first) = seen.get(&key) {
                let line = cx.line_of(first.start);
                cx.push(
                    Problem::error(n.span.clone(), format!("two servers are named `{}`", n.value), "second use")
                        .with_help(format!("the first is on line {line}; server names are unique, ignoring case: rename one")),
                );
            } else {
                seen.insert(key, n.span.clone());
            }
        }
        let upstream = upstream(cx, &t, dir);
        // Checked by the kind the keys say, even when the command or URL
        // itself is bad, so that every problem shows at once.
        let headers = match (t.has("command"), t.has("url")) {
            (false, true) => headers(cx, &t),
            _ => Vec::new(),
        };
        let instances = match (t.has("command"), t.has("url")) {
            (true, false) => instances(cx, &t),
            _ => Instances::PerSession,
        };
        let call_timeout = t.duration(cx, "call_timeout", MAX_DURATION);
        let required = t.boolean(cx, "required").unwrap_or(false);
        if let (Some(name), Some(upstream)) = (name, upstream) {
            out.push(ServerConfig {
                name: name.value,
                upstream,
                headers,
                instances,
                call_timeout: call_timeout.unwrap_or(default_timeout),
                required,
                span: t.span,
            });
        }
    }
    out
}

/// Whether a server name is usable; reports why not.
fn check_name(cx: &mut Cx<'_>, n: &Str, separator: Option<&str>) -> bool {
    let v = &n.value;
    let mut chars = v.chars();
    let charset = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !charset || v.len() > MAX_NAME {
        cx.push(
            Problem::error(n.span.clone(), format!("`{v}` is not a usable server name"), "not a server name").with_help(format!(
                "a server name is a letter or digit, then letters, digits, `_`, `.` or `-`, at most {MAX_NAME} in all, e.g. `genomics` or `lims-eu`"
            )),
        );
        return false;
    }
    if let Some(sep) = separator
        && v.contains(sep)
    {
        cx.push(
            Problem::error(n.span.clone(), format!("the server name `{v}` contains the separator `{sep}`"), "contains the separator")
                .with_help(format!(
                    "tools on /mcp are named `<server>{sep}<tool>`, so the name would make them ambiguous: rename the server, or set another `[federation].separator`"
                )),
        );
        return false;
    }
    true
}

/// `command` (+ `args`, `env`, `cwd`) or `url`, exactly one; reports keys
/// that do not fit the kind.
fn upstream(cx: &mut Cx<'_>, t: &Table<'_, '_>, dir: &Path) -> Option<Upstream> {
    let help = "give exactly one: `command = \"...\"` runs a stdio MCP server, `url = \"http://...\"` connects to a Streamable HTTP one";
    match (t.has("command"), t.has("url")) {
        (true, true) => {
            cx.push(
                Problem::error(
                    t.key_span("url").unwrap_or(t.start()),
                    "this `[[server]]` has both `command` and `url`",
                    "second upstream",
                )
                .with_help(help),
            );
            None
        }
        (false, false) => {
            cx.push(
                Problem::error(
                    t.start(),
                    "this `[[server]]` has neither `command` nor `url`",
                    "no upstream",
                )
                .with_help(help),
            );
            None
        }
        (true, false) => {
            if let Some(span) = t.key_span("headers") {
                cx.push(
                    Problem::error(
                        span,
                        "`headers` is for `url` servers; this one runs a `command`",
                        "not for a command",
                    )
                    .with_help(
                        "a command server is configured by `args` and `env`; remove `headers`",
                    ),
                );
            }
            command(cx, t, dir).map(Upstream::Command)
        }
        (false, true) => {
            for key in COMMAND_ONLY {
                if let Some(span) = t.key_span(key) {
                    cx.push(
                        Problem::error(span, format!("`{key}` is for `command` servers; this one has a `url`"), "not for a url")
                            .with_help(format!("remove `{key}`, or run the server as a `command` instead of connecting to a `url`")),
                    );
                }
            }
            url(cx, t).map(Upstream::Url)
        }
    }
}

fn no_nul(cx: &mut Cx<'_>, s: &Str, what: &str) -> bool {
    if s.value.contains('\0') {
        cx.push(Problem::error(
            s.span.clone(),
            format!("the {what} contains a NUL character"),
            "NUL",
        ));
        return false;
    }
    true
}

fn command(cx: &mut Cx<'_>, t: &Table<'_, '_>, dir: &Path) -> Option<UpstreamCommand> {
    let program = t
        .nonempty(cx, "command")
        .filter(|p| no_nul(cx, p, "command"));
    let args = t.strings(cx, "args").unwrap_or_default();
    // Every argument is checked (not only up to the first bad one).
    let bad_args = args.iter().filter(|a| !no_nul(cx, a, "argument")).count();
    let mut ok = bad_args == 0;
    let mut env = Vec::new();
    for (name, value) in t.string_map(cx, "env").unwrap_or_default() {
        if name.value.is_empty() || name.value.contains(['=', '\0']) {
            cx.push(
                Problem::error(
                    name.span,
                    format!(
                        "`{}` is not an environment variable name",
                        name.value.escape_debug()
                    ),
                    "not a name",
                )
                .with_help("a name is non-empty and has no `=`, e.g. `GENOMICS_TOKEN`"),
            );
            ok = false;
        } else if no_nul(cx, &value, "environment value") {
            env.push((OsString::from(name.value), OsString::from(value.value)));
        } else {
            ok = false;
        }
    }
    let cwd = t.nonempty(cx, "cwd").map(|c| resolve(dir, &c.value));
    // A gateway's environment holds every server's secrets: a child gets
    // only what programs need, unless the operator says otherwise.
    let inherit_env = t.boolean(cx, "inherit_env").unwrap_or(false);
    let program = program?.value;
    if !ok {
        return None;
    }
    // A relative path with a directory in it is relative to the config
    // file (as every path in it), not to wherever warden was started or to
    // `cwd` (which std leaves platform-dependent); a bare name is looked up
    // on PATH.
    let program = if Path::new(&program).components().count() > 1 {
        resolve(dir, &program).into_os_string()
    } else {
        OsString::from(program)
    };
    let mut c = UpstreamCommand::new(program, args.into_iter().map(|a| a.value));
    c.env = env;
    c.cwd = cwd;
    c.inherit_env = inherit_env;
    Some(c)
}

fn url(cx: &mut Cx<'_>, t: &Table<'_, '_>) -> Option<String> {
    let s = t.nonempty(cx, "url")?;
    let problem = match reqwest::Url::parse(s.value.trim()) {
        Err(e) => Some(format!("`url` is not a URL: {e}")),
        Ok(u) if !matches!(u.scheme(), "http" | "https") => Some(format!(
            "`url` has the scheme `{}`: only http and https are served",
            u.scheme()
        )),
        Ok(u) if u.host_str().is_none_or(str::is_empty) => Some("`url` has no host".to_string()),
        Ok(u) if !u.username().is_empty() || u.password().is_some() => {
            Some("`url` holds credentials".to_string())
        }
        Ok(_) => None,
    };
    match problem {
        None => Some(s.value.trim().to_string()),
        Some(message) => {
            cx.push(Problem::error(s.span, message, "not usable").with_help(
                "give the server's Streamable HTTP endpoint, e.g. `url = \"http://127.0.0.1:9000/mcp\"`; credentials go in `headers = { Authorization = \"Bearer ${TOKEN}\" }`",
            ));
            None
        }
    }
}

/// `headers`, each checked as the HTTP upstream checks it when it starts
/// (`crate::http_upstream::check_upstream_header`): a name warden sets
/// itself would be overridden or, worse, contradict what warden decided.
fn headers(cx: &mut Cx<'_>, t: &Table<'_, '_>) -> Vec<(String, String)> {
    use crate::http_upstream::{check_upstream_header, check_upstream_header_value};
    let mut out: Vec<(String, String)> = Vec::new();
    for (name, value) in t.string_map(cx, "headers").unwrap_or_default() {
        if let Err(message) = check_upstream_header(&name.value) {
            let valid = reqwest::header::HeaderName::from_bytes(name.value.as_bytes()).is_ok();
            let (label, help) = if valid {
                (
                    "set by warden",
                    "warden sends `Mcp-*`, `Warden-*`, `Accept`, `Content-Type` and the connection headers from what it decided; configure others, e.g. `Authorization`",
                )
            } else {
                (
                    "not a header name",
                    "a header name is letters, digits and `-`, e.g. `Authorization` or `X-Api-Key`",
                )
            };
            cx.push(
                Problem::error(name.span, message.escape_debug().to_string(), label)
                    .with_help(help),
            );
        } else if out.iter().any(|(n, _)| n.eq_ignore_ascii_case(&name.value)) {
            cx.push(
                Problem::error(
                    name.span,
                    format!("the header `{}` is given twice", name.value),
                    "twice",
                )
                .with_help("header names ignore case: keep one"),
            );
        } else if let Err(message) = check_upstream_header_value(&value.value) {
            // The message shows no part of the value: headers carry credentials.
            cx.push(
                Problem::error(
                    value.span,
                    format!("the value of the header `{}` is not usable: {message}", name.value),
                    "not a header value",
                )
                .with_help("a header value is printable ASCII without line breaks or surrounding blanks; check what `${...}` expands to"),
            );
        } else {
            out.push((name.value, value.value));
        }
    }
    out
}

fn instances(cx: &mut Cx<'_>, t: &Table<'_, '_>) -> Instances {
    let Some(s) = t.string(cx, "instances") else {
        return Instances::PerSession;
    };
    match s.value.as_str() {
        "per-session" => Instances::PerSession,
        "shared" => Instances::Shared,
        other => {
            let help = match closest(other, &["per-session", "shared"]) {
                Some(c) => format!("did you mean `{c}`?"),
                None => "`per-session` (a child per client session, the default) or `shared` (one child for all)".to_string(),
            };
            cx.push(
                Problem::error(
                    s.span,
                    format!("`instances` is `{other}`"),
                    "not an instances value",
                )
                .with_help(help),
            );
            Instances::PerSession
        }
    }
}
