//! The chain as an attacker with write access to the log file would test
//! it: each way of tampering (a line removed, altered, moved, inserted; the
//! chain written anew after an alteration) is found at the first line it
//! breaks; restarts, rotation, a torn write and a log begun before chaining
//! are told apart from tampering.

use super::super::chain::{CheckpointSigner, CheckpointVerifier, hex, line_hash};
use super::super::{DecisionLog, LogOptions};
use super::{BreakKind, Verification, verify_chain};
use crate::call::CallContext;
use crate::engine::{Engine, EngineOptions};
use crate::index::PolicyBundle;
use serde_json::{Value, json};
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use warden_lang::{Sources, compile_policy_set};

/// A keyed hash standing in for warden's Ed25519 key (the proxy's tests
/// and tests/audit.rs use the real one).
struct TestKey(&'static [u8]);

impl TestKey {
    fn mac(&self, message: &[u8]) -> String {
        hex(&line_hash(&[self.0, message].concat()))
    }
}

impl CheckpointSigner for TestKey {
    fn sign_checkpoint(&self, message: &[u8]) -> Result<String, String> {
        Ok(self.mac(message))
    }
}

impl CheckpointVerifier for TestKey {
    fn verify_checkpoint(&self, message: &[u8], signature: &str) -> bool {
        self.mac(message) == signature
    }
}

const KEY: TestKey = TestKey(b"warden test key");

fn engine() -> Engine {
    let mut s = Sources::new();
    s.add("t.policy", "default allow\n");
    let set = compile_policy_set(&s).expect("compiles").policy_set;
    Engine::new(
        PolicyBundle::new(set, "v1".into()),
        EngineOptions::default(),
    )
}

/// Writes `n` decisions to `path` (checkpoints every `every` lines), then
/// closes the log (a last checkpoint).
fn write_log(path: &Path, from: usize, n: usize, every: u64, rotate_bytes: Option<u64>) {
    let e = engine();
    let log = DecisionLog::open_with(
        path,
        LogOptions {
            fsync: false,
            rotate_bytes,
        },
    )
    .unwrap()
    .sealed_by(Arc::new(TestKey(KEY.0)), every);
    for i in from..from + n {
        let call = CallContext {
            server: "files".into(),
            tool: "read_file".into(),
            arguments: json!({"n": i}),
            ..CallContext::default()
        };
        log.write_decision(&call, &e.decide(&call)).unwrap();
    }
}

fn verify(paths: &[PathBuf], key: Option<&TestKey>) -> Verification {
    let files = paths
        .iter()
        .map(|p| {
            let reader: Box<dyn std::io::BufRead> =
                Box::new(BufReader::new(std::fs::File::open(p).unwrap()));
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                reader,
            )
        })
        .collect();
    verify_chain(files, key.map(|k| k as &dyn CheckpointVerifier)).unwrap()
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

fn put_lines(path: &Path, lines: &[String]) {
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

fn parsed(line: &str) -> Value {
    serde_json::from_str(line).unwrap()
}

/// A log of 10 decisions with a checkpoint every 4 lines: seq 0-3
/// decisions, 4 a checkpoint, 5-8, 9 a checkpoint, 10-11, 12 the closing
/// checkpoint.
fn sample() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("decisions.log");
    write_log(&path, 0, 10, 4, None);
    (dir, path)
}

fn broken(v: &Verification) -> (BreakKind, u64, String) {
    let b = v.broken.as_ref().unwrap_or_else(|| panic!("intact: {v:?}"));
    (b.kind, b.place.line, b.message.clone())
}

#[test]
fn an_intact_log_verifies_with_its_checkpoints_every_n_lines_and_at_close() {
    let (_dir, path) = sample();
    let all = lines(&path);
    assert_eq!(all.len(), 13);
    for (i, line) in all.iter().enumerate() {
        assert_eq!(parsed(line)["seq"], i, "{line}");
    }
    let events: Vec<Value> = all.iter().map(|l| parsed(l)["event"].clone()).collect();
    for i in [4, 9, 12] {
        assert_eq!(events[i], "checkpoint", "line {i}");
        assert_eq!(parsed(&all[i])["alg"], "EdDSA");
    }
    assert_eq!(events.iter().filter(|e| **e == "checkpoint").count(), 3);
    let v = verify(std::slice::from_ref(&path), Some(&KEY));
    assert_eq!(v.broken, None);
    assert_eq!((v.lines, v.checkpoints, v.signatures_checked), (13, 3, 3));
    assert_eq!(v.unsealed, 0);
    assert!(v.notes.is_empty(), "{:?}", v.notes);
}

#[test]
fn without_the_key_the_chain_is_checked_and_the_report_says_the_signatures_were_not() {
    let (_dir, path) = sample();
    let v = verify(&[path], None);
    assert_eq!(v.broken, None);
    assert_eq!(v.signatures_checked, 0);
    assert!(
        v.notes
            .iter()
            .any(|n| n.contains("3 checkpoint signature(s) not checked"))
    );
}

#[test]
fn a_line_removed_from_the_middle_is_found_at_its_successor() {
    let (_dir, path) = sample();
    let mut all = lines(&path);
    all.remove(2);
    put_lines(&path, &all);
    let v = verify(&[path], Some(&KEY));
    let (kind, line, message) = broken(&v);
    assert_eq!((kind, line), (BreakKind::Removed, 3));
    assert!(message.contains("seq 2 to 2 are missing"), "{message}");
}

#[test]
fn lines_removed_from_the_start_are_found() {
    let (_dir, path) = sample();
    let all = lines(&path);
    put_lines(&path, &all[2..]);
    let (kind, line, message) = broken(&verify(&[path], Some(&KEY)));
    assert_eq!((kind, line), (BreakKind::Removed, 1));
    assert!(message.contains("starts at seq 2"), "{message}");
}

#[test]
fn an_altered_line_is_found_by_the_next_lines_prev() {
    let (_dir, path) = sample();
    let mut all = lines(&path);
    assert!(all[3].contains(r#""n":3"#));
    all[3] = all[3].replace(r#""n":3"#, r#""n":33"#);
    put_lines(&path, &all);
    let v = verify(&[path], Some(&KEY));
    let (kind, line, message) = broken(&v);
    assert_eq!((kind, line), (BreakKind::Altered, 4));
    assert!(message.contains("(seq 3) was altered"), "{message}");
}

#[test]
fn an_altered_checkpoint_signature_is_found() {
    let (_dir, path) = sample();
    let mut all = lines(&path);
    let mut last = parsed(&all[12]);
    last["signature"] = json!(KEY.mac(b"something else"));
    // Keep the field order: rebuild the line by replacing the value only.
    let old = parsed(&all[12])["signature"].as_str().unwrap().to_string();
    all[12] = all[12].replace(&old, last["signature"].as_str().unwrap());
    put_lines(&path, &all);
    let (kind, line, message) = broken(&verify(&[path], Some(&KEY)));
    assert_eq!((kind, line), (BreakKind::Altered, 13));
    assert!(message.contains("does not verify"), "{message}");
}

/// Writes each line's `prev` anew from `from` on, as an attacker who
/// altered line `from` and knows the format would.
fn rechain(all: &mut [String], from: usize) {
    for i in from..all.len() {
        let prev = hex(&line_hash(all[i - 1].as_bytes()));
        let at = all[i].find(r#""prev":""#).unwrap() + 8;
        all[i].replace_range(at..at + 64, &prev);
    }
}

#[test]
fn an_alteration_with_the_chain_written_anew_is_found_by_the_next_checkpoint() {
    let (_dir, path) = sample();
    let mut all = lines(&path);
    all[6] = all[6].replace(r#""n":5"#, r#""n":55"#);
    rechain(&mut all, 7);
    put_lines(&path, &all);
    let (kind, line, message) = broken(&verify(std::slice::from_ref(&path), Some(&KEY)));
    assert_eq!((kind, line), (BreakKind::Altered, 10));
    assert!(
        message.contains("between the checkpoint at decisions.log:5 and here"),
        "{message}"
    );
    // Without the key nothing shows it, and the report says why.
    let v = verify(&[path], None);
    assert_eq!(v.broken, None);
    assert!(v.notes.iter().any(|n| n.contains("not checked")));
}

#[test]
fn two_lines_swapped_are_reported_as_reordered() {
    let (_dir, path) = sample();
    let mut all = lines(&path);
    all.swap(1, 2);
    put_lines(&path, &all);
    let (kind, line, message) = broken(&verify(&[path], Some(&KEY)));
    assert_eq!((kind, line), (BreakKind::Reordered, 2));
    assert!(
        message.contains("comes before decisions.log:3 (seq 1)"),
        "{message}"
    );
}

#[test]
fn a_line_moved_later_is_reported_as_reordered_where_it_was_taken_from() {
    let (_dir, path) = sample();
    let mut all = lines(&path);
    let moved = all.remove(1);
    all.insert(7, moved);
    put_lines(&path, &all);
    let (kind, line, _) = broken(&verify(&[path], Some(&KEY)));
    assert_eq!((kind, line), (BreakKind::Reordered, 2));
}

#[test]
fn an_inserted_unchained_line_is_found() {
    let (_dir, path) = sample();
    let mut all = lines(&path);
    all.insert(
        3,
        r#"{"time":"2026-12-01T00:00:00.000Z","decision":"allow","tool":"read_file"}"#.into(),
    );
    put_lines(&path, &all);
    let (kind, line, message) = broken(&verify(&[path], Some(&KEY)));
    assert_eq!((kind, line), (BreakKind::Inserted, 4));
    assert!(message.contains("no `seq` and `prev`"), "{message}");
}

#[test]
fn an_inserted_copy_of_an_earlier_line_is_found() {
    let (_dir, path) = sample();
    let mut all = lines(&path);
    let copy = all[2].clone();
    all.insert(6, copy);
    put_lines(&path, &all);
    let (kind, line, message) = broken(&verify(&[path], Some(&KEY)));
    assert_eq!((kind, line), (BreakKind::Inserted, 7));
    assert!(
        message.contains("seq 2, which an earlier line already had"),
        "{message}"
    );
}

#[test]
fn an_inserted_line_that_is_not_json_is_found() {
    let (_dir, path) = sample();
    let mut all = lines(&path);
    all.insert(5, "rm -rf / was allowed".into());
    put_lines(&path, &all);
    let (kind, line, _) = broken(&verify(&[path], Some(&KEY)));
    assert_eq!((kind, line), (BreakKind::Inserted, 6));
}

#[test]
fn a_restart_continues_the_chain_of_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("decisions.log");
    write_log(&path, 0, 3, 100, None);
    write_log(&path, 3, 2, 100, None);
    let all = lines(&path);
    let seqs: Vec<Value> = all.iter().map(|l| parsed(l)["seq"].clone()).collect();
    assert_eq!(seqs, (0..7).map(|i| json!(i)).collect::<Vec<_>>());
    assert_eq!(parsed(&all[3])["event"], "checkpoint");
    assert_eq!(parsed(&all[6])["event"], "checkpoint");
    let v = verify(&[path], Some(&KEY));
    assert_eq!((v.broken, v.signatures_checked), (None, 2));
}

#[test]
fn rotation_continues_the_chain_into_the_next_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("decisions.log");
    write_log(&path, 0, 12, 1000, Some(1000));
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p != &path)
        .collect();
    files.sort();
    assert!(files.len() >= 2, "rotated {files:?}");
    assert!(files[0].to_string_lossy().ends_with("decisions.log.000001"));
    // Each rotated file ends with a checkpoint; each later file starts by
    // naming the one before it.
    for (i, f) in files.iter().enumerate() {
        let all = lines(f);
        assert_eq!(parsed(all.last().unwrap())["event"], "checkpoint", "{f:?}");
        if i > 0 {
            assert_eq!(parsed(&all[0])["event"], "rotated");
            let before = files[i - 1].file_name().unwrap().to_string_lossy();
            assert_eq!(parsed(&all[0])["previous_file"], before.as_ref());
        }
    }
    let first_of_current = parsed(&lines(&path)[0]);
    assert_eq!(first_of_current["event"], "rotated");
    let mut in_order = files.clone();
    in_order.push(path.clone());
    let v = verify(&in_order, Some(&KEY));
    assert_eq!(v.broken, None, "{v:?}");
    assert!(v.notes.is_empty(), "{:?}", v.notes);
    // The current file alone: its start is a join not checked, not a break.
    let v = verify(std::slice::from_ref(&path), Some(&KEY));
    assert_eq!(v.broken, None);
    assert!(
        v.notes
            .iter()
            .any(|n| n.contains("continues the rotated file"))
    );
    // A rotated file left out of the middle is lines removed.
    if files.len() >= 2 {
        let mut gap = vec![files[0].clone()];
        gap.extend(files[2..].iter().cloned());
        gap.push(path.clone());
        let v = verify(&gap, Some(&KEY));
        assert_eq!(broken(&v).0, BreakKind::Removed);
    }
}

#[test]
fn a_torn_last_line_is_reported_and_the_chain_goes_on_after_the_last_whole_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("decisions.log");
    write_log(&path, 0, 2, 100, None);
    // A crash halfway through a line.
    let mut content = std::fs::read(&path).unwrap();
    content.extend_from_slice(br#"{"seq":3,"prev":"ab"#);
    std::fs::write(&path, &content).unwrap();
    write_log(&path, 2, 1, 100, None);
    let all = lines(&path);
    assert_eq!(
        all[3], r#"{"seq":3,"prev":"ab"#,
        "the fragment ends its own line"
    );
    assert_eq!(parsed(&all[4])["seq"], 3, "the chain goes on after seq 2");
    let (kind, line, message) = broken(&verify(&[path], Some(&KEY)));
    assert_eq!((kind, line), (BreakKind::Inserted, 4));
    assert!(message.contains("failed halfway"), "{message}");
}

#[test]
fn lines_written_before_chaining_are_noted_and_a_new_chain_starts_after_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("decisions.log");
    std::fs::write(&path, "{\"decision\":\"allow\"}\n{\"decision\":\"deny\"}\n").unwrap();
    write_log(&path, 0, 2, 100, None);
    let v = verify(&[path], Some(&KEY));
    assert_eq!(v.broken, None);
    assert_eq!(v.unchained_prefix, 2);
    assert!(
        v.notes
            .iter()
            .any(|n| n.contains("the first 2 line(s) carry no chain fields"))
    );
}

#[test]
fn a_tail_after_the_last_checkpoint_is_reported_as_unsealed() {
    let (_dir, path) = sample();
    let all = lines(&path);
    put_lines(&path, &all[..12]);
    let v = verify(&[path], Some(&KEY));
    assert_eq!((v.broken, v.unsealed), (None, 2));
    assert!(
        v.notes
            .iter()
            .any(|n| n.contains("the last 2 line(s) come after the last checkpoint"))
    );
}

#[test]
fn a_log_without_checkpoints_says_it_proves_less() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("decisions.log");
    let log = DecisionLog::open(&path).unwrap();
    let e = engine();
    let call = CallContext::default();
    log.write_decision(&call, &e.decide(&call)).unwrap();
    drop(log);
    let v = verify(&[path], Some(&KEY));
    assert_eq!(v.broken, None);
    assert!(v.notes.iter().any(|n| n.contains("no checkpoints")));
}
