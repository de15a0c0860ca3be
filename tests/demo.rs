//! `warden demo` runs on its own (nothing to set up) and shows every kind
//! of decision a reader of the README expects to see.

use assert_cmd::Command;

#[test]
fn the_demo_shows_allow_deny_confirmation_grant_four_eyes_cap_budget_and_labels_and_logs_every_call()
 {
    let out = Command::cargo_bin("warden")
        .expect("warden binary")
        .arg("demo")
        .timeout(std::time::Duration::from_secs(60))
        .output()
        .expect("warden demo runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    for expected in [
        "(delete_sample is hidden: rule agents-never-delete",
        "> list_samples {}\n    ALLOWED: 3 samples",
        "DENIED by at-most-3-runs-in-a-row",
        "? warden asks the person: start pipeline `variant-call` on sample S-0001? this uses paid compute\n    ? the person answers: accept\n    ALLOWED: run",
        // The yes on S-0001 covers the next paid run on S-0001: not asked.
        "{\"sample_id\":\"S-0001\",\"pipeline\":\"variant-call\",\"estimated_cost\":300}\n    ALLOWED: run",
        "? the person answers: decline\n    DENIED by pipeline-run-needs-confirmation",
        // A whole-genome run: the caller is never asked; her own approval
        // on the page is refused (four eyes), a lab lead's lets the retry
        // through.
        "\"wgs-align\",\"estimated_cost\":600}\n    DENIED by wgs-runs-need-a-lab-lead: `start_pipeline_run` was not called yet: it needs the approval of a member of group `lab-leads`",
        "! ada, the caller, herself a lab lead, approves on warden's approval page: refused: you made this call: it needs the approval of someone else (four eyes)",
        "! lena, a lab lead, approves on warden's approval page: Approved by lena.",
        "\"wgs-align\",\"estimated_cost\":600}\n    ALLOWED: run R-0007 of `wgs-align` on S-0001",
        // The declined run freed its 300 credits: the accepted 300, the
        // granted 300 and the approved 600 count, and the denial says what
        // is left of the day's 1500.
        "\"estimated_cost\":480}\n    DENIED by compute-per-person-per-day: ",
        "at most 1500 credits of paid compute per person a day; 1200 used in the last 24 hours, 300 left",
        "> delete_sample {\"sample_id\":\"S-0003\"}\n    DENIED by agents-never-delete",
        // The lethal trifecta: sharing goes out until the session reads
        // raw results.
        "> share_results {\"sample_id\":\"S-0001\",\"to\":\"collaborator@partner.org\"}\n    ALLOWED: results of S-0001 sent",
        "> read_results {\"sample_id\":\"S-0001\"}\n    ALLOWED",
        "collaborator@partner.org\"}\n    DENIED by no-way-out-after-raw-results: `share_results` was not called: this session read raw results",
        "17 lines (11 allow, 6 deny)",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
    // The demo runs on the real clock: none of its runs may meet the
    // working-hours rule, or its output would change with the time of day.
    assert!(
        !stdout.contains("by big-runs-only-in-working-hours"),
        "{stdout}"
    );
}

/// Keys of the decision log line that differ from run to run: the time,
/// ids, the latency, the policy version (a hash that covers the path of
/// the demo's temporary policy file), and the hash of the line before
/// (which holds all of those).
const VARIABLE_KEYS: [&str; 6] = [
    "prev",
    "time",
    "decision_id",
    "policy_version",
    "session",
    "latency_us",
];

/// A transcript line as compared: a JSON line with its variable values
/// blanked, any other line as it is (without trailing spaces) but for the
/// id of the pending approval, which is random.
fn comparable(line: &str) -> String {
    if let Some((before, rest)) = line.split_once("approval `")
        && let Some((id, after)) = rest.split_once('`')
        && id.len() == 32
        && id.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return format!("{before}approval `(id)`{after}")
            .trim_end()
            .to_string();
    }
    match serde_json::from_str::<serde_json::Value>(line) {
        Ok(serde_json::Value::Object(mut map)) => {
            for key in VARIABLE_KEYS {
                if map.contains_key(key) {
                    map.insert(key.into(), serde_json::Value::Null);
                }
            }
            serde_json::Value::Object(map).to_string()
        }
        _ => line.trim_end().to_string(),
    }
}

/// The first ```text block after the `## Try it` heading of README.md.
fn readme_transcript() -> String {
    let readme = include_str!("../README.md");
    let section = readme
        .split_once("\n## Try it\n")
        .expect("README has a `## Try it` section")
        .1;
    let block = section
        .split_once("```text\n")
        .expect("`## Try it` has a ```text block")
        .1;
    block
        .split_once("\n```")
        .expect("the ```text block is closed")
        .0
        .to_string()
}

#[test]
fn finding_21_the_readme_transcript_is_what_warden_demo_prints() {
    let out = Command::cargo_bin("warden")
        .expect("warden binary")
        .arg("demo")
        .timeout(std::time::Duration::from_secs(60))
        .output()
        .expect("warden demo runs");
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let printed: Vec<String> = stdout.trim_end().lines().map(comparable).collect();
    let readme_text = readme_transcript();
    let readme: Vec<String> = readme_text.lines().map(comparable).collect();
    for (i, (r, p)) in readme.iter().zip(&printed).enumerate() {
        assert_eq!(
            r,
            p,
            "README.md's demo transcript differs from `warden demo` at line {}; \
             paste the real output into README.md (## Try it):\n{stdout}",
            i + 1
        );
    }
    assert_eq!(
        readme.len(),
        printed.len(),
        "README.md's demo transcript has {} lines, `warden demo` printed {}:\n{stdout}",
        readme.len(),
        printed.len()
    );
}
