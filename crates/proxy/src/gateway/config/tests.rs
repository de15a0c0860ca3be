//! Unit tests of the config file: what parses to what, and each problem
//! (message, place, help), all reported at once.

use super::*;
use crate::UpstreamCommand;
use crate::bearer::{ClaimNames, KeySource};
use std::collections::HashMap;
use std::ffi::OsString;

const FILE: &str = "/etc/warden/warden.toml";

fn parse_env(text: &str, vars: &[(&str, &str)]) -> Result<GatewayConfig, ConfigError> {
    let vars: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    GatewayConfig::parse(Path::new(FILE), text, &|name| vars.get(name).cloned())
}

fn parse(text: &str) -> Result<GatewayConfig, ConfigError> {
    parse_env(text, &[])
}

fn problems(text: &str) -> Vec<Problem> {
    match parse(text) {
        Ok(c) => panic!("parsed: {c:#?}"),
        Err(e) => {
            assert!(!e.is_read_error());
            e.problems().to_vec()
        }
    }
}

/// The only problem of `text`.
fn one(text: &str) -> Problem {
    let p = problems(text);
    assert_eq!(p.len(), 1, "{p:#?}");
    p.into_iter().next().unwrap()
}

/// A valid file's head, to which a test appends what it checks.
const HEAD: &str = "listen = \"8080\"\npolicies = \"p\"\n";
const SERVER: &str = "[[server]]\nname = \"s\"\ncommand = \"s-mcp\"\n";

fn with(extra: &str) -> String {
    format!("{HEAD}{extra}")
}

const MINIMAL: &str = r#"listen = "127.0.0.1:8080"
policies = "policies"

[[server]]
name = "genomics"
command = "genomics-mcp"
args = ["--stdio"]

[[server]]
name = "lims"
url = "http://127.0.0.1:9000/mcp"
"#;

#[test]
fn the_minimal_file_parses_to_exactly_two_servers_with_defaults() {
    let c = parse(MINIMAL).unwrap();
    assert_eq!(c.listen, "127.0.0.1:8080");
    assert_eq!(c.policies, Path::new("/etc/warden/policies"));
    assert_eq!(c.servers.len(), 2);
    let [g, l] = &c.servers[..] else {
        unreachable!()
    };
    assert_eq!(g.name, "genomics");
    let mut want = UpstreamCommand::new("genomics-mcp", ["--stdio"]);
    // warden serve's children do not get warden's whole environment
    // unless the file says so.
    want.inherit_env = false;
    assert_eq!(g.upstream, Upstream::Command(want));
    assert_eq!(g.instances, Instances::PerSession);
    assert_eq!(l.name, "lims");
    assert_eq!(
        l.upstream,
        Upstream::Url("http://127.0.0.1:9000/mcp".into())
    );
    for s in &c.servers {
        assert_eq!(s.call_timeout, Duration::from_secs(600));
        assert!(!s.required);
        assert!(s.headers.is_empty());
    }
    // The span covers the table, from its header to its last value.
    let text = &MINIMAL[g.span.0..g.span.1];
    assert!(
        text.starts_with("[[server]]") && text.contains("name = \"genomics\""),
        "{text:?}"
    );
    assert!(text.ends_with("args = [\"--stdio\"]"), "{text:?}");
    assert_eq!(c.separator, "__");
    assert_eq!(c.limits, Limits::default());
    assert_eq!(c.reload_debounce, warden_engine::DEFAULT_DEBOUNCE);
    assert_eq!(c.identity, IdentityDefaults::default());
    assert!(c.tls.is_none() && c.auth.is_none() && c.decision_log.is_none());
    assert!(!c.decision_log_fsync, "fsync is off unless asked for");
    assert!(c.state.is_none() && c.signing_key.is_none());
    assert!(c.redact.is_empty() && c.allow_origins.is_empty());
}

const COMPLETE: &str = r#"
listen = "0.0.0.0:8443"
policies = "policies"
decision_log = "/var/log/warden/decisions.jsonl"
decision_log_fsync = true
redact = ["token"]
state = "state.sqlite"
signing_key = "keys/warden.pem"
allow_origins = ["https://app.example.com"]
reload_debounce = "250ms"

[identity]
user = "alice"
groups = ["lab"]
model = "claude-x"

[tls]
cert = "tls/cert.pem"
key = "tls/key.pem"

[auth]
issuer = "https://id.example.com"
audiences = ["https://warden.example.com/mcp"]
jwks = "jwks.json"
user_claim = "email"
groups_claim = "roles"
agent_claim = "client"
model_claim = "model"
leeway = "60s"

[limits]
max_message_bytes = 1048576
confirm_timeout = "90s"
call_timeout = "5m"
session_idle_timeout = "1h"
header_read_timeout = "5s"
body_read_timeout = "20s"
max_connections = 1024
drain_timeout = "10s"

[federation]
separator = "."

[[server]]
name = "genomics"
command = "bin/genomics-mcp"
args = ["--stdio"]
env = { GENOMICS_TOKEN = "${GENOMICS_TOKEN}", MODE = "${MODE:-prod}" }
cwd = "/srv/genomics"
inherit_env = true
instances = "shared"
call_timeout = "0s"
required = true

[[server]]
name = "lims_eu"
url = "https://lims.example.com/mcp"
headers = { Authorization = "Bearer ${LIMS_TOKEN}" }
"#;

#[test]
fn the_complete_example_sets_every_field() {
    let c = parse_env(
        COMPLETE,
        &[("GENOMICS_TOKEN", "g-tok"), ("LIMS_TOKEN", "l-tok")],
    )
    .unwrap();
    let d = Path::new("/etc/warden");
    assert_eq!(c.listen, "0.0.0.0:8443");
    assert_eq!(
        c.decision_log.as_deref(),
        Some(Path::new("/var/log/warden/decisions.jsonl"))
    );
    assert!(c.decision_log_fsync);
    assert_eq!(
        c.state,
        Some(warden_engine::StateLocation::Sqlite(d.join("state.sqlite")))
    );
    assert_eq!(c.signing_key, Some(d.join("keys/warden.pem")));
    assert_eq!(c.redact, ["token"]);
    assert_eq!(c.allow_origins, ["https://app.example.com"]);
    assert_eq!(c.reload_debounce, Duration::from_millis(250));
    assert_eq!(
        c.identity,
        IdentityDefaults {
            user: Some("alice".into()),
            groups: vec!["lab".into()],
            model: Some("claude-x".into()),
        }
    );
    assert_eq!(
        c.tls,
        Some(TlsFiles {
            cert: d.join("tls/cert.pem"),
            key: d.join("tls/key.pem"),
        })
    );
    let auth = c.auth.clone().unwrap();
    assert_eq!(auth.issuer, "https://id.example.com");
    assert_eq!(auth.audiences, ["https://warden.example.com/mcp"]);
    assert_eq!(auth.keys, KeySource::Jwks(d.join("jwks.json")));
    assert_eq!(auth.leeway_secs, 60);
    assert_eq!(
        auth.claims,
        ClaimNames {
            user: "email".into(),
            groups: "roles".into(),
            agent: vec!["client".into()],
            model: Some("model".into()),
        }
    );
    assert_eq!(
        c.limits,
        Limits {
            max_message_bytes: 1 << 20,
            confirm_timeout: Duration::from_secs(90),
            call_timeout: Duration::from_secs(300),
            session_idle_timeout: Duration::from_secs(3600),
            listen: crate::listener::ListenLimits {
                header_read: Duration::from_secs(5),
                body_read: Duration::from_secs(20),
                max_connections: 1024,
            },
            drain_timeout: Duration::from_secs(10),
        }
    );
    assert_eq!(c.separator, ".");
    let g = c.server("genomics").unwrap();
    let Upstream::Command(cmd) = &g.upstream else {
        panic!("{g:?}")
    };
    // A relative program with a directory is the config file's.
    assert_eq!(cmd.program, OsString::from("/etc/warden/bin/genomics-mcp"));
    assert_eq!(cmd.args, [OsString::from("--stdio")]);
    let mut env = cmd.env.clone();
    env.sort();
    assert_eq!(
        env,
        [
            (OsString::from("GENOMICS_TOKEN"), OsString::from("g-tok")),
            (OsString::from("MODE"), OsString::from("prod")),
        ]
    );
    assert_eq!(cmd.cwd.as_deref(), Some(Path::new("/srv/genomics")));
    assert!(cmd.inherit_env);
    assert_eq!(g.instances, Instances::Shared);
    assert_eq!(g.call_timeout, Duration::ZERO);
    assert!(g.required);
    let l = c.server("lims_eu").unwrap();
    assert_eq!(
        l.headers,
        [("Authorization".to_string(), "Bearer l-tok".to_string())]
    );
    // A server without its own call timeout takes [limits]'.
    assert_eq!(l.call_timeout, Duration::from_secs(300));

    let p = c.proxy_config(l, "bob".into());
    assert_eq!(p.server_name.as_deref(), Some("lims_eu"));
    assert_eq!(p.upstream, l.upstream);
    assert_eq!(p.upstream_headers, l.headers);
    assert_eq!(p.user, "bob");
    assert_eq!(p.groups, ["lab"]);
    assert_eq!(p.model.as_deref(), Some("claude-x"));
    assert_eq!(p.call_timeout, Duration::from_secs(300));
    assert_eq!(p.confirm_timeout, Duration::from_secs(90));
    assert_eq!(p.max_message_bytes, 1 << 20);
    assert_eq!(p.allowed_origins, ["https://app.example.com"]);
    assert_eq!(p.session_idle_timeout, Duration::from_secs(3600));
    assert_eq!(p.listen_limits, c.limits.listen);
    assert!(p.bearer.is_none() && p.provenance_signer.is_none());
    assert_eq!(c.proxy_config(g, "bob".into()).call_timeout, Duration::ZERO);
    let h = c.http_config("bob".into());
    assert_eq!(h.server_name, None);
    assert_eq!(h.allowed_origins, p.allowed_origins);
    assert_eq!(h.listen_limits, p.listen_limits);
}

#[test]
fn listen_takes_a_bare_port_as_loopback() {
    for (given, want) in [
        ("\"9000\"", "127.0.0.1:9000"),
        ("9000", "127.0.0.1:9000"),
        ("\"localhost:9000\"", "localhost:9000"),
        ("\"[::1]:9000\"", "[::1]:9000"),
        ("\"0.0.0.0:0\"", "0.0.0.0:0"),
    ] {
        let c = parse(&format!("listen = {given}\npolicies = \"p\"\n{SERVER}")).unwrap();
        assert_eq!(c.listen, want, "{given}");
    }
    for bad in [
        "\"\"",
        "\"localhost\"",
        "\"1.2.3.4:99999\"",
        "\"a b:80\"",
        "70000",
        "\"::1:80\"",
    ] {
        let p = problems(&format!("listen = {bad}\npolicies = \"p\"\n{SERVER}"));
        assert_eq!(p.len(), 1, "{bad}: {p:#?}");
        assert_eq!((p[0].line, p[0].column), (1, 10), "{bad}");
    }
}

#[test]
fn a_relative_config_path_resolves_against_its_directory() {
    let c = GatewayConfig::parse(Path::new("warden.toml"), MINIMAL, &|_| None).unwrap();
    assert_eq!(c.policies, Path::new("policies"));
    let c = GatewayConfig::parse(Path::new("conf/warden.toml"), MINIMAL, &|_| None).unwrap();
    assert_eq!(c.policies, Path::new("conf/policies"));
    assert_eq!(c.file, Path::new("conf/warden.toml"));
}

#[test]
fn unknown_keys_suggest_the_close_spelling_or_the_right_section() {
    let p = one(&format!("{HEAD}polcies_dir = 1\n{SERVER}"));
    assert_eq!(p.message, "unknown key `polcies_dir` in the top level");
    assert_eq!((p.line, p.column), (3, 1));
    let p = one(&format!(
        "lisen = \"1\"\nlisten = \"1\"\npolicies = \"p\"\n{SERVER}"
    ));
    assert_eq!(p.help.as_deref(), Some("did you mean `listen`?"));
    let p = one(&format!("{HEAD}[limits]\ncall_timout = \"1s\"\n{SERVER}"));
    assert_eq!(p.help.as_deref(), Some("did you mean `call_timeout`?"));
    assert_eq!(p.message, "unknown key `call_timout` in `[limits]`");
    // A top-level key written below a section lands in that section.
    // It is then missing from the top level too.
    let p = problems(&format!(
        "listen = \"1\"\n[identity]\nuser = \"a\"\npolicies = \"p\"\n{SERVER}"
    ));
    assert_eq!(p[0].message, "the top level has no `policies`");
    assert_eq!(p[1].message, "unknown key `policies` in `[identity]`");
    assert!(
        p[1].help
            .as_deref()
            .unwrap()
            .starts_with("`policies` belongs in the top level"),
        "{p:?}"
    );
    let p = one(&format!("{HEAD}{SERVER}drain_timeout = \"1s\"\n"));
    assert_eq!(
        p.help.as_deref(),
        Some("`drain_timeout` belongs in `[limits]`")
    );
    let p = one(&format!("{HEAD}[[servers]]\nname = \"x\"\n{SERVER}"));
    assert_eq!(p.help.as_deref(), Some("did you mean `server`?"));
}

#[test]
fn wrong_types_say_what_was_expected() {
    let p = problems(&with(&format!(
        "redact = \"token\"\n[limits]\nmax_message_bytes = \"4MB\"\nconfirm_timeout = 30\n{SERVER}required = \"yes\"\n"
    )));
    let msgs: Vec<_> = p.iter().map(|p| p.message.as_str()).collect();
    assert_eq!(
        msgs,
        [
            "`redact` must be an array of strings, not a string",
            "`max_message_bytes` must be an integer, not a string",
            "`confirm_timeout` must be a duration string, not an integer",
            "`required` must be a boolean, not a string",
        ]
    );
    assert!(p[2].help.as_deref().unwrap().contains("\"30s\""));
    // `[server]` (one bracket) instead of `[[server]]`.
    let p = one(&with("[server]\nname = \"s\"\ncommand = \"c\"\n"));
    assert_eq!(
        p.message,
        "`server` must be an array of tables, not a table"
    );
    assert!(p.help.as_deref().unwrap().contains("`[[server]]`"));
}

#[test]
fn decision_log_fsync_is_a_boolean_and_needs_a_decision_log_file() {
    let c = parse(&with(&format!(
        "decision_log = \"d.jsonl\"\ndecision_log_fsync = false\n{SERVER}"
    )))
    .unwrap();
    assert!(!c.decision_log_fsync);
    let p = one(&with(&format!(
        "decision_log = \"d.jsonl\"\ndecision_log_fsync = \"yes\"\n{SERVER}"
    )));
    assert_eq!(
        p.message,
        "`decision_log_fsync` must be a boolean, not a string"
    );
    // Standard error cannot be synced: asking for it without a file is
    // refused rather than quietly not synced.
    let text = with(&format!("decision_log_fsync = true\n{SERVER}"));
    let p = one(&text);
    assert_eq!(
        p.message,
        "`decision_log_fsync = true` without a `decision_log` file"
    );
    assert_eq!(&text[p.span.clone()], "true");
    assert!(p.help.as_deref().unwrap().contains("decision_log = "));
    // A broken `decision_log` is one problem, not two.
    let p = one(&with(&format!(
        "decision_log = \"\"\ndecision_log_fsync = true\n{SERVER}"
    )));
    assert_eq!(p.message, "`decision_log` is empty");
}

#[test]
fn missing_required_keys_are_reported_together() {
    let p = problems("[limits]\n");
    let msgs: Vec<_> = p.iter().map(|p| p.message.as_str()).collect();
    assert_eq!(
        msgs,
        [
            "the top level has no `listen`",
            "the top level has no `policies`",
            "the top level has no `server`",
        ]
    );
    assert!(p.iter().all(|p| (p.line, p.column) == (1, 1)));
    let p = one(&with("[[server]]\ncommand = \"c\"\n"));
    assert_eq!(p.message, "this `[[server]]` has no `name`");
    assert_eq!(p.line, 3);
    let p = one(&with("server = []\n"));
    assert_eq!(p.message, "no servers");
}

#[test]
fn a_server_has_exactly_one_of_command_and_url() {
    let p = one(&with(
        "[[server]]\nname = \"s\"\ncommand = \"c\"\nurl = \"http://h/mcp\"\n",
    ));
    assert_eq!(p.message, "this `[[server]]` has both `command` and `url`");
    assert_eq!((p.line, p.column), (6, 1));
    let p = one(&with("[[server]]\nname = \"s\"\n"));
    assert_eq!(
        p.message,
        "this `[[server]]` has neither `command` nor `url`"
    );
}

#[test]
fn keys_of_the_other_kind_of_server_are_refused() {
    let p = problems(&with(
        "[[server]]\nname = \"u\"\nurl = \"http://h/mcp\"\nargs = []\nenv = {}\ncwd = \"/\"\ninherit_env = true\ninstances = \"shared\"\n\
         [[server]]\nname = \"c\"\ncommand = \"c\"\nheaders = { X-A = \"1\" }\n",
    ));
    let msgs: Vec<_> = p.iter().map(|p| p.message.as_str()).collect();
    assert_eq!(
        msgs,
        [
            "`args` is for `command` servers; this one has a `url`",
            "`env` is for `command` servers; this one has a `url`",
            "`cwd` is for `command` servers; this one has a `url`",
            "`inherit_env` is for `command` servers; this one has a `url`",
            "`instances` is for `command` servers; this one has a `url`",
            "`headers` is for `url` servers; this one runs a `command`",
        ]
    );
}

#[test]
fn server_names_are_unique_ignoring_case_and_well_formed() {
    let p = one(&with(&format!(
        "{SERVER}[[server]]\nname = \"S\"\nurl = \"http://h/mcp\"\n"
    )));
    assert_eq!(p.message, "two servers are named `S`");
    assert_eq!(
        p.help.as_deref(),
        Some("the first is on line 4; server names are unique, ignoring case: rename one")
    );
    for bad in ["", "-x", "a b", "a/b", "a+b", "é", &"x".repeat(65)] {
        let p = one(&with(&format!(
            "[[server]]\nname = \"{bad}\"\ncommand = \"c\"\n"
        )));
        assert_eq!(p.message, format!("`{bad}` is not a usable server name"));
    }
    let p = one(&with("[[server]]\nname = \"a__b\"\ncommand = \"c\"\n"));
    assert_eq!(
        p.message,
        "the server name `a__b` contains the separator `__`"
    );
    // With another separator the same name is fine, and `.` is then refused.
    let c = parse(&with(
        "[federation]\nseparator = \"::\"\n[[server]]\nname = \"a__b\"\ncommand = \"c\"\n",
    ))
    .unwrap();
    assert_eq!(c.servers[0].name, "a__b");
    let p = one(&with(
        "[federation]\nseparator = \".\"\n[[server]]\nname = \"a.b\"\ncommand = \"c\"\n",
    ));
    assert!(p.message.contains("contains the separator `.`"), "{p:?}");
}

#[test]
fn the_separator_is_visible_and_not_empty() {
    let p = one(&with(&format!("[federation]\nseparator = \"\"\n{SERVER}")));
    assert_eq!(p.message, "`separator` is empty");
    for bad in [" ", "a b", "\\t", "\\u0001"] {
        let p = one(&with(&format!(
            "[federation]\nseparator = \"{bad}\"\n{SERVER}"
        )));
        assert_eq!(
            p.message, "`separator` contains whitespace or a control character",
            "{bad}"
        );
    }
}

#[test]
fn durations_have_units_and_bounds() {
    let ok = parse(&with(&format!(
        "[limits]\ncall_timeout = \"1h 30m\"\n{SERVER}"
    )))
    .unwrap();
    assert_eq!(ok.limits.call_timeout, Duration::from_secs(5400));
    // "0" is the one number that needs no unit (docs/config.md says so).
    let ok = parse(&with(&format!("[limits]\ncall_timeout = \"0\"\n{SERVER}"))).unwrap();
    assert_eq!(ok.limits.call_timeout, Duration::ZERO);
    let p = one(&with(&format!("[limits]\ncall_timeout = \"10\"\n{SERVER}")));
    assert!(
        p.message.starts_with("`call_timeout` is not a duration"),
        "{p:?}"
    );
    let p = one(&with(&format!(
        "[limits]\ncall_timeout = \"10 parsecs\"\n{SERVER}"
    )));
    assert!(
        p.message.starts_with("`call_timeout` is not a duration"),
        "{p:?}"
    );
    let p = one(&with(&format!(
        "[limits]\nheader_read_timeout = \"2h\"\n{SERVER}"
    )));
    assert_eq!(p.message, "`header_read_timeout` is too long");
    let p = one(&with(&format!(
        "[limits]\nconfirm_timeout = \"0s\"\n{SERVER}"
    )));
    assert_eq!(p.message, "`confirm_timeout` is zero");
    let p = one(&with(&format!("{SERVER}call_timeout = \"2y\"\n")));
    assert_eq!(p.message, "`call_timeout` is too long");
    let p = one(&with(&format!("[limits]\nmax_connections = 0\n{SERVER}")));
    assert_eq!(p.message, "`max_connections` is out of range");
}

#[test]
fn urls_are_http_or_https_without_credentials() {
    for (url, message) in [
        (
            "ftp://h/mcp",
            "`url` has the scheme `ftp`: only http and https are served",
        ),
        (
            "file:///tmp/x",
            "`url` has the scheme `file`: only http and https are served",
        ),
        (
            "not a url",
            "`url` is not a URL: relative URL without a base",
        ),
        ("http://user:pw@h/mcp", "`url` holds credentials"),
    ] {
        let p = one(&with(&format!(
            "[[server]]\nname = \"u\"\nurl = \"{url}\"\n"
        )));
        assert_eq!(p.message, message);
        assert_eq!((p.line, p.column), (5, 7));
    }
    let p = one(&with(&format!(
        "allow_origins = [\"https://app.example.com/path\"]\n{SERVER}"
    )));
    assert_eq!(p.message, "`https://app.example.com/path` is not an origin");
}

#[test]
fn env_expansion_applies_to_values_and_an_unset_variable_is_an_error() {
    let text = with(
        "[[server]]\nname = \"${NAME:-lims}\"\nurl = \"${URL}\"\nheaders = { Authorization = \"Bearer ${TOKEN}\" }\n",
    );
    let c = parse_env(&text, &[("URL", "http://h:1/mcp"), ("TOKEN", "t0k")]).unwrap();
    assert_eq!(c.servers[0].name, "lims");
    assert_eq!(
        c.servers[0].upstream,
        Upstream::Url("http://h:1/mcp".into())
    );
    assert_eq!(c.servers[0].headers[0].1, "Bearer t0k");
    let e = parse_env(&text, &[("URL", "http://h:1/mcp")]).unwrap_err();
    let [p] = e.problems() else { panic!("{e:?}") };
    assert_eq!(p.message, "the environment variable `TOKEN` is not set");
    assert_eq!((p.line, p.column), (6, 29));
    // `$${` is a literal `${`.
    let c = parse(&with(
        "redact = [\"$${X}\"]\n[[server]]\nname = \"s\"\ncommand = \"c\"\n",
    ))
    .unwrap();
    assert_eq!(c.redact, ["${X}"]);
}

#[test]
fn auth_needs_exactly_one_key_source_and_a_bounded_leeway() {
    let auth = "[auth]\nissuer = \"https://id\"\naudiences = [\"https://w\"]\n";
    let p = one(&with(&format!(
        "{auth}jwks = \"j.json\"\nkeys = [\"k.pem\"]\n{SERVER}"
    )));
    assert_eq!(p.message, "`[auth]` has both `jwks` and `keys`");
    let p = one(&with(&format!("{auth}{SERVER}")));
    assert_eq!(p.message, "`[auth]` has neither `jwks` nor `keys`");
    assert_eq!(p.line, 3);
    let p = one(&with(&format!(
        "{auth}jwks = \"j.json\"\nleeway = \"301s\"\n{SERVER}"
    )));
    assert_eq!(p.message, "`leeway` is too long");
    assert_eq!(p.help.as_deref(), Some("give at most `5m`"));
    let c = parse(&with(&format!(
        "{auth}keys = [\"a.pem\", \"/k/b.pem\"]\n{SERVER}"
    )))
    .unwrap();
    let a = c.auth.unwrap();
    assert_eq!(
        a.keys,
        KeySource::Pem(vec!["/etc/warden/a.pem".into(), "/k/b.pem".into()])
    );
    assert_eq!(a.leeway_secs, crate::bearer::DEFAULT_LEEWAY_SECS);
    assert_eq!(a.claims, ClaimNames::default());
    let p = problems(&with(&format!("[auth]\njwks = \"j\"\n{SERVER}")));
    let msgs: Vec<_> = p.iter().map(|p| p.message.as_str()).collect();
    assert_eq!(
        msgs,
        ["`[auth]` has no `issuer`", "`[auth]` has no `audiences`"]
    );
}

#[test]
fn headers_warden_sets_itself_are_refused() {
    for name in [
        "Mcp-Session-Id",
        "mcp-protocol-version",
        "Warden-User",
        "Content-Type",
        "Accept",
        "Host",
    ] {
        let p = one(&with(&format!(
            "[[server]]\nname = \"u\"\nurl = \"http://h/mcp\"\nheaders = {{ {name} = \"x\" }}\n"
        )));
        assert!(p.message.starts_with(&format!("`{name}` is ")), "{p:?}");
        assert!(p.message.contains("warden"), "{p:?}");
        assert_eq!(p.label, "set by warden");
    }
    let p = one(&with(
        "[[server]]\nname = \"u\"\nurl = \"http://h/mcp\"\nheaders = { \"Bad Name\" = \"x\" }\n",
    ));
    assert!(
        p.message
            .starts_with("`Bad Name` is not a valid HTTP header name"),
        "{p:?}"
    );
    assert_eq!(p.label, "not a header name");
    let p = one(&with(
        "[[server]]\nname = \"u\"\nurl = \"http://h/mcp\"\nheaders = { X-A = \"a\\nb\" }\n",
    ));
    assert!(
        p.message
            .starts_with("the value of the header `X-A` is not usable: "),
        "{p:?}"
    );
    // A blank around the value would be stripped by the server.
    let p = one(&with(
        "[[server]]\nname = \"u\"\nurl = \"http://h/mcp\"\nheaders = { X-A = \"${T:-tok} \" }\n",
    ));
    assert!(p.message.contains("blank"), "{p:?}");
    let p = one(&with(
        "[[server]]\nname = \"u\"\nurl = \"http://h/mcp\"\nheaders = { X-A = \"a\", x-a = \"b\" }\n",
    ));
    assert_eq!(p.message, "the header `x-a` is given twice");
}

#[test]
fn syntax_errors_are_located() {
    let p = problems("listen = \"8080\nx = 1\n");
    assert!(!p.is_empty());
    assert!(p[0].message.starts_with("invalid TOML"), "{p:?}");
    assert_eq!(p[0].line, 1);
}

#[test]
fn every_problem_is_reported_at_once_in_file_order() {
    let p = problems(
        "lisen = \"8080\"\n\
         [limits]\ncall_timeout = \"soon\"\n\
         [federation]\nseparator = \"\"\n\
         [[server]]\nname = \"a\"\nurl = \"gopher://h\"\n\
         [[server]]\nname = \"a\"\ncommand = \"c\"\nheaders = {}\n",
    );
    let lines: Vec<_> = p.iter().map(|p| p.line).collect();
    assert_eq!(lines, [1, 1, 1, 3, 5, 8, 10, 12], "{p:#?}");
    let e = parse("listen = 1\n").unwrap_err();
    assert_eq!(
        e.to_string(),
        "`/etc/warden/warden.toml` is not a valid warden config: 2 problems"
    );
}

#[test]
fn instances_is_per_session_or_shared() {
    let p = one(&with(
        "[[server]]\nname = \"s\"\ncommand = \"c\"\ninstances = \"per_session\"\n",
    ));
    assert_eq!(p.message, "`instances` is `per_session`");
    assert_eq!(p.help.as_deref(), Some("did you mean `per-session`?"));
}

#[test]
fn same_settings_ignores_only_the_span() {
    let a = parse(MINIMAL).unwrap();
    let b = parse(&format!("# a comment moves every line\n{MINIMAL}")).unwrap();
    assert_ne!(a.servers[0].span, b.servers[0].span);
    assert!(a.servers[0].same_settings(&b.servers[0]));
    let c = parse(&MINIMAL.replace("--stdio", "--verbose")).unwrap();
    assert!(!a.servers[0].same_settings(&c.servers[0]));
    assert!(a.servers[1].same_settings(&c.servers[1]));
}

#[test]
fn span_of_finds_keys_for_later_messages() {
    let c = parse_env(COMPLETE, &[("GENOMICS_TOKEN", "g"), ("LIMS_TOKEN", "l")]).unwrap();
    let s = c.span_of("auth.jwks");
    assert_eq!(&COMPLETE[s], "\"jwks.json\"");
    let s = c.span_of("policies");
    assert_eq!(&COMPLETE[s], "\"policies\"");
    assert_eq!(c.span_of("nope"), 0..0);
    let s = c.span_of("server.1.url");
    assert_eq!(&COMPLETE[s], "\"https://lims.example.com/mcp\"");
}

#[test]
fn debug_output_shows_no_secret() {
    let c = parse_env(
        COMPLETE,
        &[("GENOMICS_TOKEN", "g-secret"), ("LIMS_TOKEN", "l-secret")],
    )
    .unwrap();
    let shown = format!("{c:?}");
    assert!(shown.contains("Authorization"), "{shown}");
    assert!(shown.contains("GENOMICS_TOKEN"), "{shown}");
    assert!(!shown.contains("secret"), "{shown}");
    // Nor the file's text, which may hold secrets written into it.
    assert!(!shown.contains("${LIMS_TOKEN}"), "{shown}");
}

#[test]
fn control_characters_never_reach_a_message_or_the_shown_source() {
    // A raw ESC is not TOML: a syntax error, shown without the ESC.
    let e = parse("listen = \"\u{1b}[31mred\"\n").unwrap_err();
    let ConfigError::Invalid { src, problems, .. } = &e else {
        panic!("{e:?}")
    };
    assert!(!src.inner().contains('\u{1b}'));
    assert!(src.inner().contains("?[31mred"));
    assert!(problems.iter().all(|p| !p.message.contains('\u{1b}')));
    // An escape written as `\u001b` in a string (valid TOML) or coming
    // from the environment is shown as its escape.
    let p = one(&format!(
        "listen = \"\\u001b[2J\"\npolicies = \"p\"\n{SERVER}"
    ));
    assert!(!p.message.contains('\u{1b}'), "{p:?}");
    assert!(p.message.contains("\\u{1b}"), "{p:?}");
    let e = parse_env(
        &format!("listen = \"${{L}}\"\npolicies = \"p\"\n{SERVER}"),
        &[("L", "\u{1b}]0;x\u{7}")],
    )
    .unwrap_err();
    assert!(
        e.problems()
            .iter()
            .all(|p| !p.message.chars().any(char::is_control))
    );
}
