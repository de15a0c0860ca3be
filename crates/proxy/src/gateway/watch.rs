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
    let handler = move |result: DebounceEventResult| {
        if let Ok(events) = result
            && events
                .iter()
                .any(|e| !matches!(e.event.kind, EventKind::Access(_)))
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
