//! `warden check --config FILE` on the real binary: the golden files under
//! tests/config (each `ok/*.toml` must exit 0 and print its `.stdout`, and
//! its `.stderr` if it has warnings; each `err/*.toml` must exit 1 and print
//! its `.stderr`), and the exit codes 0/1/2 with key files made here.
//!
//! `UPDATE_GOLDEN=1 cargo test --test config_check` rewrites the expected
//! output from what the binary prints; review the diff before committing.
//!
//! The binary runs in tests/config with a cleared environment (a fixed
//! PATH, NO_COLOR, and the `WARDEN_GOLDEN_*` variables the env cases use),
//! so the output does not depend on the machine.

use ed25519_dalek::pkcs8::{EncodePrivateKey, EncodePublicKey, spki::der::pem::LineEnding};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn config_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/config")
}

/// `warden check` with `args`, in `dir`, in a known environment.
fn check(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_warden"))
        .arg("check")
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("NO_COLOR", "1")
        .env("WARDEN_GOLDEN_NAME", "lims")
        .env("WARDEN_GOLDEN_TOKEN", "golden-token")
        .output()
        .expect("run warden")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Compares `actual` with the golden file `path` (missing: empty), or
/// rewrites it under UPDATE_GOLDEN. Returns a description of a mismatch.
fn golden(path: &Path, actual: &str) -> Option<String> {
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        if actual.is_empty() {
            let _ = std::fs::remove_file(path);
        } else {
            std::fs::write(path, actual).expect("write golden file");
        }
        return None;
    }
    let expected = std::fs::read_to_string(path).unwrap_or_default();
    (expected != actual).then(|| {
        format!(
            "{} differs\n--- expected\n{expected}\n--- actual\n{actual}",
            path.display()
        )
    })
}

/// The `.toml` files of `tests/config/<kind>`, sorted.
fn cases(kind: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(config_dir().join(kind))
        .expect("read tests/config")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

fn run_golden(kind: &str, code: i32) -> usize {
    let dir = config_dir();
    let mut failures = Vec::new();
    let files = cases(kind);
    for file in &files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let relative = format!("{kind}/{name}");
        let out = check(&dir, &["--config", &relative]);
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        if out.status.code() != Some(code) {
            failures.push(format!(
                "{relative}: exit {:?}, expected {code}\nstdout:\n{stdout}\nstderr:\n{stderr}",
                out.status.code()
            ));
            continue;
        }
        if code != 0 {
            // Only a valid file prints to stdout; every problem goes to stderr.
            if !stdout.is_empty() {
                failures.push(format!("{relative}: stdout not empty: {stdout}"));
            }
            // Each problem is shown at its file:line:col.
            if !stderr.contains(&format!("[{relative}:")) {
                failures.push(format!("{relative}: no location in\n{stderr}"));
            }
        } else {
            failures.extend(golden(&file.with_extension("stdout"), &stdout));
        }
        failures.extend(golden(&file.with_extension("stderr"), &stderr));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    files.len()
}

#[test]
fn golden_valid_configs_exit_0_with_their_summary() {
    assert!(run_golden("ok", 0) >= 3);
}

#[test]
fn golden_invalid_configs_exit_1_with_every_problem_located() {
    assert!(run_golden("err", 1) >= 12);
}

#[test]
fn the_minimal_config_is_valid_with_two_servers() {
    let out = check(&config_dir(), &["--config", "ok/minimal.toml"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with(
            "warden: ok/minimal.toml is valid: 2 servers (genomics, lims), policies version "
        ),
        "{stdout}"
    );
    assert!(stdout.trim_end().ends_with(", 2 rules"), "{stdout}");
    // genomics-mcp is not on the test's PATH: a warning, not an error.
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("the command `genomics-mcp` of server `genomics` is not found on PATH"),
        "{stderr}"
    );
}

#[test]
fn an_unreadable_file_or_bad_usage_exits_2() {
    let dir = config_dir();
    let out = check(&dir, &["--config", "ok/no-such-file.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("cannot read the config file `ok/no-such-file.toml`"),
        "{}",
        text(&out.stderr)
    );
    let out = check(&dir, &["--config", "ok"]);
    assert_eq!(out.status.code(), Some(2), "a directory");
    let out = check(&dir, &[]);
    assert_eq!(out.status.code(), Some(2), "no --config");
    assert!(
        text(&out.stderr).contains("--config"),
        "{}",
        text(&out.stderr)
    );
}

/// Writes an ed25519 key pair as PEM: (private PKCS#8, public SPKI).
fn key_pair(dir: &Path, seed: u8) -> (PathBuf, PathBuf) {
    let sk = ed25519_dalek::SigningKey::from_bytes(&[seed; 32]);
    let private = dir.join(format!("key{seed}.pem"));
    let public = dir.join(format!("key{seed}.pub.pem"));
    std::fs::write(
        &private,
        sk.to_pkcs8_pem(LineEnding::LF).unwrap().as_bytes(),
    )
    .unwrap();
    std::fs::write(
        &public,
        sk.verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap(),
    )
    .unwrap();
    (private, public)
}

#[test]
fn key_files_that_load_pass_and_swapped_ones_fail() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (signing, _) = key_pair(dir, 1);
    let (issuer_private, issuer_public) = key_pair(dir, 2);
    let policies = config_dir().join("ok/policies");
    let config = |signing: &Path, issuer: &Path| {
        format!(
            "listen = \"0.0.0.0:8443\"\npolicies = {policies:?}\nsigning_key = {:?}\n\
             [auth]\nissuer = \"https://id.example.com\"\naudiences = [\"https://warden.example.com/mcp\"]\nkeys = [{:?}]\n\
             [[server]]\nname = \"lims\"\nurl = \"https://lims.example.com/mcp\"\n",
            signing.file_name().unwrap(),
            issuer.file_name().unwrap(),
        )
    };
    std::fs::write(dir.join("good.toml"), config(&signing, &issuer_public)).unwrap();
    let out = check(dir, &["--config", "good.toml"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("good.toml is valid: 1 server (lims)"),
        "{}",
        text(&out.stdout)
    );
    // With [auth] but no [tls], listening beyond loopback is warned about
    // for the clear text only.
    let stderr = text(&out.stderr);
    assert!(stderr.contains("without TLS"), "{stderr}");
    assert!(
        !stderr.contains("without bearer authentication"),
        "{stderr}"
    );

    // The issuer's private key where its public key belongs, and a public
    // key as warden's signing key: both refused, both reported.
    std::fs::write(
        dir.join("swapped.toml"),
        config(&issuer_public, &issuer_private),
    )
    .unwrap();
    let out = check(dir, &["--config", "swapped.toml"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("is a private key"), "{stderr}");
    assert!(
        stderr.contains("`swapped.toml` names 2 files that do not load"),
        "{stderr}"
    );
    assert!(text(&out.stdout).is_empty());
}
