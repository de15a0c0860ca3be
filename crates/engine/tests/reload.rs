//! Hot reload against real files and a real file system watcher: a broken
//! save keeps the last good set, an editor's write-and-rename and a
//! Kubernetes ConfigMap swap are picked up, and reading the policies does
//! not wake the watcher into a loop. Waits poll with a deadline; nothing
//! asserts how fast a reload was.

use serde_json::json;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use warden_engine::{
    CallContext, Engine, EngineOptions, Identity, LoadError, OnReload, Outcome, PolicyReloader,
    ReloadEvent, load_bundle,
};

const DEBOUNCE: Duration = Duration::from_millis(50);

const V1: &str = "default allow\n";
const V2: &str =
    "default allow\n\ndeny no-deletes {\n  tool \"delete_*\"\n  reason \"no deleting\"\n}\n";
const V3: &str = "default deny\n";
const BROKEN: &str = "default allow\n\ndeny no-deletes {\n  tool \"delete_*\"\n";

fn delete_call() -> CallContext {
    CallContext {
        identity: Identity {
            user: "alice".into(),
            ..Identity::default()
        },
        session: "s1".into(),
        server: "files".into(),
        tool: "delete_file".into(),
        arguments: json!({"id": "f1"}),
        ..CallContext::default()
    }
}

fn allows_delete(engine: &Engine) -> bool {
    matches!(engine.decide(&delete_call()).outcome, Outcome::Allow { .. })
}

fn engine_from(path: &Path) -> Arc<Engine> {
    let bundle = load_bundle(path).expect("initial policies load");
    Arc::new(Engine::new(bundle, EngineOptions::default()))
}

/// Saves the way editors do: a new file beside the old, renamed over it.
fn save_by_rename(path: &Path, text: &str) {
    let tmp = path.with_file_name(format!(
        ".{}.tmp",
        path.file_name().unwrap().to_string_lossy()
    ));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Polls `done` until it holds, failing after five seconds.
fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

type Events = Arc<Mutex<Vec<ReloadEvent>>>;

fn recorder() -> (Events, Option<OnReload>) {
    let events: Events = Arc::default();
    let sink = events.clone();
    (
        events,
        Some(Box::new(move |e: &ReloadEvent| {
            sink.lock().unwrap().push(e.clone())
        })),
    )
}

#[test]
fn a_broken_file_keeps_the_last_good_set_until_fixed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.policy");
    std::fs::write(&path, V1).unwrap();
    let engine = engine_from(&path);
    let reloader = PolicyReloader::new(&path, engine.clone());
    let v1 = reloader.status().version;
    assert_eq!(v1, engine.policies().version());
    assert!(!reloader.reload_now().unwrap(), "nothing changed yet");

    std::fs::write(&path, BROKEN).unwrap();
    let err = reloader.reload_now().unwrap_err();
    assert!(matches!(err, LoadError::Invalid { .. }), "{err:?}");
    let status = reloader.status();
    let why = status
        .last_error
        .expect("the failure is kept in the status");
    assert!(!why.contains('\n'), "one line: {why}");
    assert!(why.contains("x.policy"), "names the file: {why}");
    assert!(why.contains("1 error"), "counts the errors: {why}");
    assert!(why.contains(&format!("keeping version {v1}")), "{why}");
    assert_eq!(status.version, v1);
    assert_eq!(status.failed_reloads, 1);
    assert_eq!(engine.policies().version(), v1);
    assert!(
        allows_delete(&engine),
        "still deciding with the last good set"
    );
    let report = reloader.last_error_report().expect("a full report");
    assert!(report.contains("x.policy"), "{report}");

    // The same broken file again: the same error, not counted twice.
    assert!(reloader.reload_now().is_err());
    assert_eq!(reloader.status().failed_reloads, 1);

    // A missing file is a failure too, and still keeps the set.
    std::fs::remove_file(&path).unwrap();
    assert!(matches!(
        reloader.reload_now().unwrap_err(),
        LoadError::Io { .. }
    ));
    assert_eq!(reloader.status().failed_reloads, 2);
    assert!(allows_delete(&engine));

    std::fs::write(&path, V2).unwrap();
    assert!(reloader.reload_now().unwrap());
    let status = reloader.status();
    assert_eq!(status.last_error, None);
    assert!(reloader.last_failure().is_none());
    assert_ne!(status.version, v1);
    assert_eq!(status.version, engine.policies().version());
    assert_eq!(
        (status.reloads, status.failed_reloads, status.rules),
        (1, 2, 1)
    );
    assert!(!allows_delete(&engine), "the new rule decides");
    assert!(!reloader.reload_now().unwrap());
}

#[test]
fn reverting_a_broken_file_clears_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.policy");
    std::fs::write(&path, V1).unwrap();
    let reloader = PolicyReloader::new(&path, engine_from(&path));
    std::fs::write(&path, BROKEN).unwrap();
    assert!(reloader.reload_now().is_err());
    std::fs::write(&path, V1).unwrap();
    assert!(!reloader.reload_now().unwrap());
    assert_eq!(reloader.status().last_error, None);
}

#[test]
fn a_watched_save_by_rename_is_put_in_force() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.policy");
    std::fs::write(&path, V1).unwrap();
    let engine = engine_from(&path);
    let reloader = Arc::new(PolicyReloader::new(&path, engine.clone()));
    let (events, on_reload) = recorder();
    let handle = reloader.clone().watch(DEBOUNCE, on_reload).unwrap();
    let v1 = engine.policies().version().to_string();
    assert!(allows_delete(&engine));

    save_by_rename(&path, V2);
    eventually("the new version", || engine.policies().version() != v1);
    assert!(!allows_delete(&engine), "the new rule decides");
    let v2 = engine.policies().version().to_string();
    assert!(events.lock().unwrap().contains(&ReloadEvent::Reloaded {
        version: v2.clone(),
        rules: 1
    }));

    // A broken save is reported once and changes nothing.
    save_by_rename(&path, BROKEN);
    eventually("the failure", || reloader.status().last_error.is_some());
    assert_eq!(engine.policies().version(), v2);
    assert!(!allows_delete(&engine));
    {
        let events = events.lock().unwrap();
        let failed: Vec<_> = events
            .iter()
            .filter_map(|e| match e {
                ReloadEvent::Failed { message, keeping } => Some((message, keeping)),
                _ => None,
            })
            .collect();
        assert_eq!(failed.len(), 1, "{events:?}");
        assert!(failed[0].0.contains("x.policy"), "{}", failed[0].0);
        assert_eq!(failed[0].1, &v2);
    }

    // Saved in place (truncate and write) rather than renamed.
    std::fs::write(&path, V3).unwrap();
    eventually("the in-place save", || engine.policies().version() != v2);
    assert_eq!(reloader.status().last_error, None);
    let v3 = engine.policies().version().to_string();

    // Once the handle is gone, saves are not picked up.
    drop(handle);
    save_by_rename(&path, V1);
    std::thread::sleep(DEBOUNCE * 6);
    assert_eq!(engine.policies().version(), v3);
}

/// Builds a ConfigMap volume as the kubelet does: the files live in a
/// timestamped directory, `..data` links to it, and each top-level name
/// links into `..data`.
fn configmap(root: &Path, stamp: &str, text: &str) {
    let data = root.join(stamp);
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("x.policy"), text).unwrap();
    std::os::unix::fs::symlink(stamp, root.join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/x.policy", root.join("x.policy")).unwrap();
}

/// Updates a ConfigMap volume as the kubelet does: a new timestamped
/// directory, a new `..data_tmp` link renamed over `..data`, the old
/// directory removed.
fn configmap_update(root: &Path, old: &str, stamp: &str, text: &str) {
    let data = root.join(stamp);
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("x.policy"), text).unwrap();
    std::os::unix::fs::symlink(stamp, root.join("..data_tmp")).unwrap();
    std::fs::rename(root.join("..data_tmp"), root.join("..data")).unwrap();
    std::fs::remove_dir_all(root.join(old)).unwrap();
}

fn configmap_swap_is_picked_up(watch_the_directory: bool) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    configmap(root, "..2026_01_01", V1);
    let path = if watch_the_directory {
        root.to_path_buf()
    } else {
        root.join("x.policy")
    };
    let engine = engine_from(&path);
    assert_eq!(
        engine.policies().rules().len(),
        0,
        "loaded once, via the link"
    );
    let reloader = Arc::new(PolicyReloader::new(&path, engine.clone()));
    let _handle = reloader.clone().watch(DEBOUNCE, None).unwrap();
    let v1 = engine.policies().version().to_string();

    configmap_update(root, "..2026_01_01", "..2026_01_02", V2);
    eventually("the swapped ConfigMap", || {
        engine.policies().version() != v1
    });
    assert!(!allows_delete(&engine));
    assert_eq!(engine.policies().rules().len(), 1);

    configmap_update(root, "..2026_01_02", "..2026_01_03", V3);
    eventually("the second swap", || engine.policies().rules().is_empty());
    assert!(!allows_delete(&engine), "default deny now");
    let status = reloader.status();
    assert_eq!((status.reloads, status.failed_reloads), (2, 0));
}

#[test]
fn a_configmap_swap_is_picked_up_watching_the_file() {
    configmap_swap_is_picked_up(false);
}

#[test]
fn a_configmap_swap_is_picked_up_watching_the_directory() {
    configmap_swap_is_picked_up(true);
}

#[test]
fn reading_the_policies_does_not_wake_the_watcher() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.policy");
    std::fs::write(&path, V1).unwrap();
    let engine = engine_from(&path);
    let reloader = Arc::new(PolicyReloader::new(&path, engine.clone()));
    let _handle = reloader.clone().watch(DEBOUNCE, None).unwrap();
    let v1 = engine.policies().version().to_string();

    save_by_rename(&path, V2);
    eventually("the reload", || engine.policies().version() != v1);
    // Let the tail of the save's events (and the reload's own reads) settle:
    // the check count must hold still for a while.
    let mut last = reloader.checks();
    let mut still_since = Instant::now();
    eventually("the watcher to settle", || {
        let now = reloader.checks();
        if now != last {
            last = now;
            still_since = Instant::now();
        }
        still_since.elapsed() > DEBOUNCE * 4
    });

    let (reloads, checks) = (reloader.status().reloads, reloader.checks());
    assert_eq!(reloads, 1);
    for _ in 0..5 {
        std::fs::read_to_string(&path).unwrap();
        load_bundle(&path).unwrap();
    }
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(reloader.status().reloads, reloads, "no reload from reads");
    assert_eq!(
        reloader.checks(),
        checks,
        "reads (access events) do not even make the watcher look"
    );
}

#[test]
fn finding_11_a_file_truncated_mid_save_keeps_the_last_good_set_and_removals_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.policy"), V1).unwrap();
    let rules = dir.path().join("rules.policy");
    std::fs::write(&rules, V2.replace("default allow\n", "")).unwrap();
    let engine = engine_from(dir.path());
    let reloader = Arc::new(PolicyReloader::new(dir.path(), engine.clone()));
    assert!(!allows_delete(&engine));
    let v = engine.policies().version().to_string();

    // The first state of a non-atomic save: the file is empty.
    std::fs::write(&rules, "").unwrap();
    let err = reloader.reload_now().unwrap_err();
    assert!(err.to_string().contains("rules.policy"), "{err}");
    assert!(
        reloader
            .status()
            .last_error
            .is_some_and(|e| e.contains("empty")),
        "{:?}",
        reloader.status()
    );
    assert_eq!(engine.policies().version(), v, "the last good set stays");
    assert!(!allows_delete(&engine), "its rules still decide");

    // The save completes: the set is back.
    std::fs::write(&rules, V2.replace("default allow\n", "")).unwrap();
    assert!(!reloader.reload_now().unwrap(), "the same set as before");
    assert_eq!(reloader.status().last_error, None);

    // Rules removed on purpose (the file deleted) are reported loudly.
    let (events, on_reload) = recorder();
    let handle = reloader.clone().watch(DEBOUNCE, on_reload).unwrap();
    std::fs::remove_file(&rules).unwrap();
    eventually("the removal", || {
        events
            .lock()
            .unwrap()
            .iter()
            .any(|e| matches!(e, ReloadEvent::RulesRemoved { removed, .. } if removed == &["no-deletes".to_string()]))
    });
    assert!(allows_delete(&engine));
    drop(handle);
}

#[test]
fn finding_24_symlink_loops_end_and_a_directory_linked_twice_is_read_once() {
    let dir = tempfile::tempdir().unwrap();
    let pol = dir.path().join("pol");
    std::fs::create_dir_all(pol.join("sub")).unwrap();
    std::fs::write(pol.join("a.policy"), V1).unwrap();
    std::fs::write(pol.join("sub/b.policy"), V2.replace("default allow\n", "")).unwrap();
    std::os::unix::fs::symlink(&pol, pol.join("self")).unwrap();
    std::os::unix::fs::symlink(".", pol.join("cur")).unwrap();
    std::os::unix::fs::symlink("..", pol.join("sub/up")).unwrap();
    std::os::unix::fs::symlink("missing", pol.join("dangling.policy")).unwrap();

    let files = warden_engine::store::walk_policy_files(&pol).unwrap();
    assert_eq!(files, vec![pol.join("a.policy"), pol.join("sub/b.policy")]);
    // The set loads (no duplicate rules) and reloads.
    let engine = engine_from(&pol);
    assert!(!allows_delete(&engine));
    let reloader = PolicyReloader::new(&pol, engine.clone());
    assert!(!reloader.reload_now().unwrap());

    // A ConfigMap's `..data` link to a directory still works.
    let cm = dir.path().join("cm");
    std::fs::create_dir_all(cm.join("..2026_01_01")).unwrap();
    std::fs::write(cm.join("..2026_01_01/x.policy"), V1).unwrap();
    std::os::unix::fs::symlink("..2026_01_01", cm.join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/x.policy", cm.join("x.policy")).unwrap();
    assert_eq!(
        warden_engine::store::walk_policy_files(&cm).unwrap(),
        vec![cm.join("x.policy")]
    );
}
