//! What makes `warden serve` read its config file again: a change in the
//! file's directory (debounced) or SIGHUP.
//!
//! The directory is watched, not the file: editors save by renaming a new
//! file into place and Kubernetes swaps a ConfigMap's `..data` symlink, and
//! neither changes the inode a file watch would follow. Whether anything
//! changed is decided by the reader, which compares the text with the one
//! running.

use notify_debouncer_full::notify::{EventKind, RecursiveMode};
use notify_debouncer_full::{
    DebounceEventResult, Debouncer, RecommendedCache, new_debouncer, notify::RecommendedWatcher,
};
use std::path::Path;
use std::time::Duration;
use tokio::sync::mpsc;

/// Why the config file is read again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Trigger {
    /// Something changed in the file's directory.
    Changed,
    /// SIGHUP: read it even if nothing seems to have changed.
    Hangup,
}

/// Watches the config file's directory until dropped.
pub(crate) struct ConfigWatch {
    _debouncer: Debouncer<RecommendedWatcher, RecommendedCache>,
}

/// Starts watching `file`'s directory; each burst of changes sends one
/// [`Trigger::Changed`].
pub(crate) fn watch_config(
    file: &Path,
    debounce: Duration,
    tx: mpsc::UnboundedSender<Trigger>,
) -> Result<ConfigWatch, String> {
    let dir = match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let name = file.file_name().map(|n| n.to_os_string());
    let handler = move |result: DebounceEventResult| {
        if let Ok(events) = result
            && events.iter().any(|e| {
                !matches!(e.event.kind, EventKind::Access(_))
                    && e.event
                        .paths
                        .iter()
                        .any(|p| concerns_config(p, name.as_deref()))
            })
        {
            let _ = tx.send(Trigger::Changed);
        }
    };
    let mut debouncer = new_debouncer(debounce, None, handler).map_err(|e| e.to_string())?;
    debouncer
        .watch(&dir, RecursiveMode::NonRecursive)
        .map_err(|e| format!("cannot watch `{}`: {e}", dir.display()))?;
    Ok(ConfigWatch {
        _debouncer: debouncer,
    })
}

/// Whether a change at `path` (in the config file's directory) can change
/// the config: the file itself (written in place or renamed into place), or
/// a Kubernetes ConfigMap's `..data` / `..<timestamp>` entries the file's
/// symlink goes through. Anything else in the directory (a decision log
/// written on every call, an editor's swap file) is not read for.
fn concerns_config(path: &Path, name: Option<&std::ffi::OsStr>) -> bool {
    match path.file_name() {
        Some(n) => Some(n) == name || n.to_string_lossy().starts_with(".."),
        None => true,
    }
}

/// Sends [`Trigger::Hangup`] on every SIGHUP until `tx` is closed.
#[cfg(unix)]
pub(crate) fn on_sighup(tx: mpsc::UnboundedSender<Trigger>) -> Result<(), String> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = signal(SignalKind::hangup()).map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            if tx.send(Trigger::Hangup).is_err() {
                break;
            }
        }
    });
    Ok(())
}

#[cfg(not(unix))]
pub(crate) fn on_sighup(_tx: mpsc::UnboundedSender<Trigger>) -> Result<(), String> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_config_file_and_configmap_entries_concern_it() {
        let name = Some(std::ffi::OsStr::new("warden.toml"));
        assert!(concerns_config(Path::new("/etc/w/warden.toml"), name));
        assert!(concerns_config(Path::new("/etc/w/..data"), name));
        assert!(concerns_config(
            Path::new("/etc/w/..2026_12_02_01_00_00.123"),
            name
        ));
        assert!(!concerns_config(Path::new("/etc/w/decisions.jsonl"), name));
        assert!(!concerns_config(Path::new("/etc/w/.warden.toml.swp"), name));
        assert!(!concerns_config(Path::new("/etc/w/state.sqlite-wal"), name));
    }

    #[tokio::test]
    async fn writes_beside_the_config_do_not_wake_it_and_a_save_does() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("warden.toml");
        std::fs::write(&file, "a").unwrap();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let _watch = watch_config(&file, Duration::from_millis(50), tx).unwrap();
        for i in 0..5 {
            std::fs::write(dir.path().join("decisions.jsonl"), format!("{i}")).unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let quiet = tokio::time::timeout(Duration::from_millis(400), rx.recv()).await;
        assert!(
            quiet.is_err(),
            "a log written beside the config woke the watch"
        );
        // Saved by renaming a new file into place, as editors do.
        let tmp = dir.path().join(".warden.toml.new");
        std::fs::write(&tmp, "b").unwrap();
        std::fs::rename(&tmp, &file).unwrap();
        let woke = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await;
        assert_eq!(woke.ok().flatten(), Some(Trigger::Changed));
    }
}
