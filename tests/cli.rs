//! End-to-end tests of the `warden` binary: lint, compile and fmt as a
//! person or a CI job runs them, checking output and exit codes.

use assert_cmd::Command;
use serde_json::Value;
use std::path::{Path, PathBuf};

fn warden() -> Command {
    let mut cmd = Command::cargo_bin("warden").expect("binary");
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("NO_COLOR", "1");
    cmd
}

fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

const SEVERAL_MISTAKES: &str = "\
deny no-deletes {
  tool \"delete sample\"
  reason \"cannot delete {args.id} for {who}\"
}

allow no-deletes {
  tool \"get_*\"
}

cap-consecutive runs {
  max 0 per session
}
";

fn temp_policy(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("test.policy");
    std::fs::write(&path, text).expect("write");
    (dir, path)
}

#[test]
fn lint_of_the_shipped_policies_is_clean() {
    let out = warden().args(["lint", "policies/"]).assert().code(0);
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).to_string();
    assert!(
        stdout.contains("policies/: 2 files, no problems"),
        "{stdout}"
    );
}

#[test]
fn lint_defaults_to_the_policies_directory() {
    let out = warden().arg("lint").assert().code(0);
    assert!(
        String::from_utf8_lossy(&out.get_output().stdout)
            .contains("policies: 2 files, no problems")
    );
}

#[test]
fn lint_shows_every_mistake_at_its_place_and_exits_1() {
    let (_dir, path) = temp_policy(SEVERAL_MISTAKES);
    let out = warden().arg("lint").arg(&path).assert().code(1);
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).to_string();
    for (code, place) in [
        ("missing-default", "test.policy:1:1"),
        ("glob-never-matches", "test.policy:2:8"),
        ("unknown-placeholder", "test.policy:3:39"),
        ("duplicate-rule-name", "test.policy:6:7"),
        ("zero-limit", "test.policy:11:7"),
    ] {
        assert!(stdout.contains(code), "{code} missing:\n{stdout}");
        assert!(stdout.contains(place), "{place} missing:\n{stdout}");
    }
    assert!(stdout.contains("help:"), "{stdout}");
    assert!(stdout.contains("5 errors, 0 warnings"), "{stdout}");
}

#[test]
fn lint_json_lists_findings_with_positions() {
    let (_dir, path) = temp_policy(SEVERAL_MISTAKES);
    let out = warden()
        .arg("lint")
        .arg(&path)
        .args(["--format", "json"])
        .assert()
        .code(1);
    let v: Value = serde_json::from_slice(&out.get_output().stdout).expect("json");
    assert_eq!(v["errors"], 5);
    let diags = v["sets"][0]["diagnostics"].as_array().expect("diagnostics");
    let dup = diags
        .iter()
        .find(|d| d["code"] == "duplicate-rule-name")
        .expect("dup");
    assert_eq!(dup["severity"], "error");
    assert_eq!(dup["location"]["line"], 6);
    assert_eq!(dup["location"]["column"], 7);
    assert!(dup["help"].as_str().is_some());
}

#[test]
fn lint_sarif_is_sarif_2_1_0_with_rules_and_regions() {
    let (_dir, path) = temp_policy(SEVERAL_MISTAKES);
    let out = warden()
        .arg("lint")
        .arg(&path)
        .args(["--format", "sarif"])
        .assert()
        .code(1);
    let v: Value = serde_json::from_slice(&out.get_output().stdout).expect("json");
    assert_eq!(v["version"], "2.1.0");
    let run = &v["runs"][0];
    assert_eq!(run["tool"]["driver"]["name"], "warden");
    let rules = run["tool"]["driver"]["rules"].as_array().expect("rules");
    let results = run["results"].as_array().expect("results");
    assert_eq!(results.len(), 5);
    for r in results {
        let idx = r["ruleIndex"].as_u64().expect("ruleIndex") as usize;
        assert_eq!(
            rules[idx]["id"], r["ruleId"],
            "ruleIndex points at its rule"
        );
        assert_eq!(r["level"], "error");
        let region = &r["locations"][0]["physicalLocation"]["region"];
        assert!(region["startLine"].as_u64().unwrap() >= 1);
        assert!(
            r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
                .as_str()
                .unwrap()
                .ends_with("test.policy")
        );
    }
    let dup = results
        .iter()
        .find(|r| r["ruleId"] == "duplicate-rule-name")
        .expect("dup");
    assert_eq!(
        dup["locations"][0]["physicalLocation"]["region"]["startLine"],
        6
    );
    assert!(
        dup["relatedLocations"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
    );
}

#[test]
fn warnings_fail_only_with_deny_warnings() {
    let (_dir, path) = temp_policy("default allow\nallow reads {\n  tool \"get_*\"\n}\n");
    let out = warden().arg("lint").arg(&path).assert().code(0);
    assert!(String::from_utf8_lossy(&out.get_output().stdout).contains("redundant-allow"));
    warden()
        .arg("lint")
        .arg(&path)
        .arg("--deny-warnings")
        .assert()
        .code(1);
}

#[test]
fn usage_and_io_errors_exit_2() {
    warden().args(["lint", "does/not/exist"]).assert().code(2);
    warden().args(["lint", "--format", "xml"]).assert().code(2);
    let empty = tempfile::tempdir().unwrap();
    warden().arg("lint").arg(empty.path()).assert().code(2);
    // Standard error cannot be synced: fsync needs a log file.
    let out = warden()
        .args(["proxy", "--policies", "policies/genomics.policy"])
        .args(["--audit-log-fsync", "--", "true"])
        .assert()
        .code(2);
    assert!(String::from_utf8_lossy(&out.get_output().stderr).contains("--audit-log"));
}

#[test]
fn compile_prints_cedar_and_schema_on_request() {
    let out = warden()
        .args(["compile", "policies/genomics.policy"])
        .assert()
        .code(0);
    let cedar = String::from_utf8_lossy(&out.get_output().stdout).to_string();
    assert!(cedar.contains("@id(\"agents-never-delete\")"));
    assert!(cedar.contains("forbid ("));
    assert!(!cedar.contains("namespace Warden"));
    let out = warden()
        .args(["compile", "--schema", "policies/genomics.policy"])
        .assert()
        .code(0);
    let both = String::from_utf8_lossy(&out.get_output().stdout).to_string();
    assert!(both.contains("namespace Warden") && both.contains("forbid ("));
}

#[test]
fn compile_of_a_broken_set_reports_and_exits_1() {
    let (_dir, path) = temp_policy(SEVERAL_MISTAKES);
    let out = warden().arg("compile").arg(&path).assert().code(1);
    assert!(
        out.get_output().stdout.is_empty(),
        "no Cedar for a broken set"
    );
    assert!(String::from_utf8_lossy(&out.get_output().stderr).contains("duplicate-rule-name"));
}

#[test]
fn fmt_check_reports_and_fmt_rewrites_canonically() {
    let messy = "# header\ndefault   deny\nallow  reads{tool [\"get_*\",\"list_*\"]   # trailing\nwhen (via agent) and not(user==\"x\")}\n";
    let (_dir, path) = temp_policy(messy);
    let out = warden()
        .args(["fmt", "--check"])
        .arg(&path)
        .assert()
        .code(1);
    assert!(String::from_utf8_lossy(&out.get_output().stdout).contains("would reformat"));
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        messy,
        "--check changes nothing"
    );

    warden().arg("fmt").arg(&path).assert().code(0);
    let formatted = std::fs::read_to_string(&path).unwrap();
    assert_eq!(
        formatted,
        "# header\ndefault deny\n\nallow reads { # trailing\n  tool [\"get_*\", \"list_*\"]\n  when via agent and not user == \"x\"\n}\n"
    );
    warden()
        .args(["fmt", "--check"])
        .arg(&path)
        .assert()
        .code(0);
}

#[test]
fn fmt_leaves_a_broken_file_alone() {
    let broken = "default deny\ndeny x {\n  tool\n}\n";
    let (_dir, path) = temp_policy(broken);
    let out = warden().arg("fmt").arg(&path).assert().code(1);
    assert!(String::from_utf8_lossy(&out.get_output().stdout).contains("syntax-error"));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), broken);
}

#[test]
fn shipped_policies_are_formatted() {
    warden()
        .args(["fmt", "--check"])
        .arg(repo("policies"))
        .assert()
        .code(0);
}

#[test]
fn test_runs_the_shipped_policy_tests() {
    let out = warden().args(["test", "policies/"]).assert().code(0);
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).to_string();
    assert!(
        stdout.contains("ok      the fourth run in a row is capped"),
        "{stdout}"
    );
    let last = stdout.trim_end().lines().last().unwrap_or_default();
    assert!(last.ends_with(" passed, 0 failed"), "{last}");
}

#[test]
fn test_reports_a_wrong_expectation_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("p.policy"),
        "default allow\ndeny no-deletes {\n  tool \"delete_*\"\n  when via agent\n}\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("p.test.toml"),
        "[defaults]\nserver = \"s\"\nvia_agent = true\n\n[[case]]\nname = \"right\"\ntool = \"delete_x\"\nexpect = \"deny\"\n\n[[case]]\nname = \"wrong on purpose\"\ntool = \"delete_x\"\nexpect = \"allow\"\n",
    )
    .unwrap();
    let out = warden().arg("test").arg(dir.path()).assert().code(1);
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).to_string();
    assert!(stdout.contains("FAILED  wrong on purpose"), "{stdout}");
    assert!(stdout.contains("expected Allow, got Deny"), "{stdout}");
    assert!(
        stdout.trim_end().ends_with("1 passed, 1 failed"),
        "{stdout}"
    );
}

#[test]
fn test_rejects_misspelt_keys() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("p.policy"), "default allow\n").unwrap();
    std::fs::write(
        dir.path().join("p.test.toml"),
        "[[case]]\nserver = \"s\"\ntool = \"t\"\nexpect = \"allow\"\nmesage_contains = \"x\"\n",
    )
    .unwrap();
    let out = warden().arg("test").arg(dir.path()).assert().code(2);
    assert!(
        String::from_utf8_lossy(&out.get_output().stderr).contains("unknown key `mesage_contains`")
    );
}

#[test]
fn eval_shows_the_decision_and_uses_cedar_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let req = |name: &str, body: serde_json::Value| {
        let p = dir.path().join(name);
        std::fs::write(&p, body.to_string()).unwrap();
        p
    };
    let base = serde_json::json!({
        "identity": {"user": "alice", "agent": "claude-code"},
        "session": "s1",
        "provenance": {"via_agent": true, "via_server": "genomics"},
        "server": "genomics",
        "tool": "delete_sample",
        "arguments": {"sample_id": "S-9"}
    });
    let deny = req("deny.json", base.clone());
    let out = warden()
        .args([
            "eval",
            "--policies",
            "policies/genomics.policy",
            "--request",
        ])
        .arg(&deny)
        .assert()
        .code(2);
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).to_string();
    assert!(stdout.starts_with("DENY"), "{stdout}");
    assert!(
        stdout.contains("rule agents-never-delete (deny) at policies/genomics.policy:51:6"),
        "{stdout}"
    );
    assert!(stdout.contains("S-9"), "{stdout}");

    let mut list = base.clone();
    list["tool"] = "list_samples".into();
    let allow = req("allow.json", list);
    warden()
        .args([
            "eval",
            "--policies",
            "policies/genomics.policy",
            "--request",
        ])
        .arg(&allow)
        .assert()
        .code(0);

    let mut run = base.clone();
    run["tool"] = "start_pipeline_run".into();
    run["arguments"] =
        serde_json::json!({"pipeline": "wgs", "sample_id": "S-9", "estimated_cost": 600});
    let confirm = req("confirm.json", run);
    let out = warden()
        .args([
            "eval",
            "--policies",
            "policies/genomics.policy",
            "--format",
            "json",
            "--request",
        ])
        .arg(&confirm)
        .assert()
        .code(3);
    let v: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(v["decision"], "confirm");
    assert_eq!(v["rules"][0]["rule"], "pipeline-run-needs-confirmation");

    let bad = req("bad.json", serde_json::json!({"tool": 3}));
    let out = warden()
        .args([
            "eval",
            "--policies",
            "policies/genomics.policy",
            "--request",
        ])
        .arg(&bad)
        .assert()
        .code(1);
    assert!(String::from_utf8_lossy(&out.get_output().stderr).contains("is not a call request"));
}

/// Finding 18: `args.path matches "/restricted/*"` in the baseline was
/// bypassed by other spellings of the same path. Through `warden test`
/// (the baseline now says `under "/restricted"`), each spelling is denied
/// by `no-bulk-exports`, and a path outside is not.
#[test]
fn finding_18_restricted_path_spellings_are_denied_by_under() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        repo("policies/baseline.policy"),
        dir.path().join("baseline.policy"),
    )
    .unwrap();
    let mut cases = String::from(
        "policies = [\"baseline.policy\"]\n\n[defaults]\nserver = \"lims\"\nuser = \"ada\"\nagent = \"claude-code\"\nvia_agent = true\nvia_server = \"lims\"\nannotations = { readOnlyHint = true, openWorldHint = false }\n",
    );
    for path in [
        "//restricted/x",
        "/./restricted/x",
        "/data/../restricted/x",
        "/RESTRICTED/x",
        "/../restricted/x",
    ] {
        cases.push_str(&format!(
            "\n[[case]]\nname = \"{path} is denied\"\ntool = \"export_rows\"\nargs = {{ path = \"{path}\" }}\nexpect = \"deny\"\nrules = [\"no-bulk-exports\"]\n"
        ));
    }
    cases.push_str("\n[[case]]\nname = \"/data/restricted/x is outside\"\ntool = \"export_rows\"\nargs = { path = \"/data/restricted/x\" }\nexpect = \"allow\"\n");
    std::fs::write(dir.path().join("paths.test.toml"), cases).unwrap();
    let out = warden().arg("test").arg(dir.path()).assert().code(0);
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).to_string();
    assert!(
        stdout.trim_end().ends_with("6 passed, 0 failed"),
        "{stdout}"
    );
}

/// Finding 28: a tool declaring `readOnlyHint: true` and no
/// `destructiveHint` was `tool.destructive` (the default applied although
/// the spec makes destructiveHint meaningless for read-only tools), so
/// `deny ... when tool.destructive` refused every read.
#[test]
fn finding_28_read_only_tool_without_destructive_hint_is_not_destructive() {
    let (dir, policy) =
        temp_policy("default allow\ndeny destructive {\n  when tool.destructive\n}\n");
    let req = dir.path().join("req.json");
    let call = |annotations: serde_json::Value| {
        std::fs::write(
            &req,
            serde_json::json!({
                "identity": {"user": "alice"},
                "session": "s1",
                "server": "filesystem",
                "tool": "read_file",
                "annotations": annotations,
                "arguments": {"path": "/tmp/x"}
            })
            .to_string(),
        )
        .unwrap();
        warden()
            .args(["eval", "--policies"])
            .arg(&policy)
            .arg("--request")
            .arg(&req)
            .assert()
            .get_output()
            .status
            .code()
    };
    assert_eq!(call(serde_json::json!({"readOnlyHint": true})), Some(0));
    assert_eq!(
        call(serde_json::json!({"readOnlyHint": true, "destructiveHint": true})),
        Some(0)
    );
    assert_eq!(call(serde_json::json!({})), Some(2));
    assert_eq!(call(serde_json::json!({"readOnlyHint": false})), Some(2));
}

/// Finding 26: `warden lint` printed control characters from a policy as
/// they were, so `tool "\u{1b}[2J..."` cleared the reviewer's screen. Every
/// control character (escaped in the string or raw in the file) is shown
/// as its escape, in the message and in the quoted source.
#[test]
fn finding_26_lint_never_prints_control_characters_from_a_policy() {
    let (_dir, path) = temp_policy(
        "default allow\ndeny x {\n  tool \"\\u{1b}[2J\\u{1b}]0;pwned\\u{7}\"\n}\ndeny y {\n  tool \"raw\u{1b}[31m\u{9b}2J\"\n}\n",
    );
    let out = warden().arg("lint").arg(&path).assert().code(1);
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).to_string();
    for c in stdout.chars() {
        assert!(
            !c.is_control() || c == '\n',
            "control character {:?} printed:\n{stdout}",
            c
        );
    }
    assert!(stdout.contains("\\u{1b}[2J"), "{stdout}");
    assert!(stdout.contains("raw\\u{1b}[31m\\u{9b}2J"), "{stdout}");
}

/// Finding 26: SARIF `artifactLocation.uri` held file names as they were,
/// so `#`, `%` and spaces broke the URI.
#[test]
fn finding_26_sarif_artifact_uris_are_percent_encoded() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("odd dir#1");
    std::fs::create_dir(&sub).unwrap();
    std::fs::write(sub.join("100% sure.policy"), "deny x {\n  tool \"a\"\n}\n").unwrap();
    let out = warden()
        .current_dir(dir.path())
        .args(["lint", "--format", "sarif", "odd dir#1"])
        .assert()
        .code(1);
    let v: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    let uri =
        v["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
            .as_str()
            .unwrap()
            .to_string();
    assert_eq!(uri, "odd%20dir%231/100%25%20sure.policy");
}

/// Finding 22, end to end: a policy with 600 nested parentheses, saved
/// into the directory a running `warden proxy` watches, was parsed on the
/// notify debouncer's small stack and aborted the whole process (exit
/// 134). Now the reload fails with the limit, the proxy keeps running on
/// the last good set, and a later good save still reloads.
#[test]
fn finding_22_deep_policy_on_reload_keeps_the_proxy_running() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command as Std, Stdio};
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    let dir = tempfile::tempdir().unwrap();
    let pol = dir.path().join("pol");
    std::fs::create_dir(&pol).unwrap();
    std::fs::write(pol.join("base.policy"), "default allow\n").unwrap();
    let warden_bin = env!("CARGO_BIN_EXE_warden");
    let mut child = Std::new(warden_bin)
        .arg("proxy")
        .arg("--policies")
        .arg(&pol)
        .args(["--reload-debounce", "20", "--listen", "127.0.0.1:0", "--"])
        .arg(warden_bin)
        .arg("proxy-test-upstream")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let wait_for = |what: &str, pred: &dyn Fn(&str) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut seen = Vec::new();
        while Instant::now() < deadline {
            if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
                if pred(&line) {
                    return line;
                }
                seen.push(line);
            }
        }
        panic!("no {what} within 30 s; stderr: {seen:#?}");
    };
    // The watcher is set up before the listener says where it is.
    wait_for("the listener", &|l| l.starts_with("warden: MCP at "));
    let deep = format!(
        "deny deep {{\n  when {}via agent{}\n}}\n",
        "(".repeat(600),
        ")".repeat(600)
    );
    std::fs::write(pol.join("deep.policy"), deep).unwrap();
    let failed = wait_for("reload failure", &|l| l.contains("nests deeper than"));
    assert!(failed.starts_with("warden:"), "{failed}");
    assert!(child.try_wait().unwrap().is_none(), "warden exited");
    std::fs::write(
        pol.join("deep.policy"),
        "deny shallow {\n  when ((via agent))\n}\n",
    )
    .unwrap();
    wait_for("a reload of the fixed file", &|l| {
        l.starts_with("warden: policies reloaded")
    });
    assert!(child.try_wait().unwrap().is_none(), "warden exited");
    child.kill().unwrap();
    let _ = child.wait();
}
