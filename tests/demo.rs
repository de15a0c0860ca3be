//! `warden demo` runs on its own (nothing to set up) and shows every kind
//! of decision a reader of the README expects to see.

use assert_cmd::Command;

#[test]
fn the_demo_shows_allow_deny_confirmation_and_cap_and_logs_every_call() {
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
        "? warden asks the person: start pipeline `wgs-align` on sample S-0001? this uses paid compute\n    ? the person answers: accept\n    ALLOWED: run",
        "? the person answers: decline\n    DENIED by pipeline-run-needs-confirmation",
        "> delete_sample {\"sample_id\":\"S-0003\"}\n    DENIED by agents-never-delete",
        "10 lines (7 allow, 3 deny)",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
}
