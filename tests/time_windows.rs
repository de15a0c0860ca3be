//! `warden test` with a set clock: a `during` rule decided at the time a
//! test file or case says, `advance` moving on from it, and a time that is
//! not an RFC 3339 instant refused.

use assert_cmd::Command;

fn warden() -> Command {
    let mut cmd = Command::cargo_bin("warden").expect("binary");
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("NO_COLOR", "1");
    cmd
}

const NIGHT_RUNS: &str = "default allow\n\
deny night-runs {\n  tool \"start_pipeline_run\"\n  when via agent and not during weekdays 08:00-18:00 \"Europe/Berlin\"\n  reason \"pipelines start in working hours (Berlin) only\"\n}\n";

const DEFAULTS: &str = "[defaults]\nserver = \"genomics\"\ntool = \"start_pipeline_run\"\nvia_agent = true\nagent = \"claude-code\"\n";

/// Runs `warden test` on the policy and the test file; returns the exit
/// code, stdout and stderr.
fn run(cases: &str) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("night.policy"), NIGHT_RUNS).unwrap();
    std::fs::write(dir.path().join("night.test.toml"), cases).unwrap();
    let out = warden().arg("test").arg(dir.path()).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn cases_are_decided_at_the_time_they_set() {
    let cases = format!(
        "time = \"2026-12-02T07:30:00Z\"\n\n{DEFAULTS}\n\
[[case]]\nname = \"wednesday 08:30 in Berlin\"\nexpect = \"allow\"\n\n\
[[case]]\nname = \"570 minutes later it is 18:00\"\nadvance = \"570m\"\nexpect = \"deny\"\nrules = [\"night-runs\"]\nmessage_contains = \"working hours (Berlin) only\"\n\n\
[[case]]\nname = \"a person at night\"\nvia_agent = false\nexpect = \"allow\"\n\n\
[[case]]\nname = \"saturday\"\ntime = \"2026-12-05T10:00:00+01:00\"\nexpect = \"deny\"\n\n\
[[case]]\nname = \"monday after the spring change, 08:30 CEST\"\ntime = \"2026-03-30T06:30:00Z\"\nexpect = \"allow\"\n\n\
[[case]]\nname = \"the friday before, 07:30 CET\"\ntime = \"2026-03-27T06:30:00Z\"\nexpect = \"deny\"\n"
    );
    let (code, stdout, stderr) = run(&cases);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.trim_end().ends_with("6 passed, 0 failed"),
        "{stdout}"
    );
}

#[test]
fn a_wrong_expectation_about_the_time_fails() {
    let cases = format!(
        "{DEFAULTS}\n[[case]]\nname = \"night, expected allowed on purpose\"\ntime = \"2026-12-02T23:00:00Z\"\nexpect = \"allow\"\n"
    );
    let (code, stdout, _) = run(&cases);
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stdout.contains("FAILED  night, expected allowed on purpose"),
        "{stdout}"
    );
}

#[test]
fn a_time_without_its_offset_is_refused() {
    let cases = format!(
        "{DEFAULTS}\n[[case]]\nname = \"local time\"\ntime = \"2026-12-02T08:30:00\"\nexpect = \"allow\"\n"
    );
    let (code, _, stderr) = run(&cases);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("local time: `time = \"2026-12-02T08:30:00\"` is not an RFC 3339 instant with its offset"),
        "{stderr}"
    );
    let (code, _, stderr) = run(&format!("time = \"noon\"\n{DEFAULTS}"));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("the file's `time = \"noon\"`"), "{stderr}");
}
