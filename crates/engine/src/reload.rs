//! Hot reload: [`PolicyReloader`] owns the policy path an [`Engine`] was
//! loaded from, re-reads it on request ([`PolicyReloader::reload_now`]) or
//! when the file system says something changed ([`PolicyReloader::watch`]),
//! and swaps a new set in only when it compiles. A set that does not
//! compile never replaces the last good one; the failure is kept in the
//! [`PolicyStatus`] an operator reads, and reported through the optional
//! `on_reload` callback (this crate never prints).
//!
//! Watching is deliberately coarse. The watcher follows the *directory*
//! that holds the policies, not the file: editors save by writing a new
//! file and renaming it over the old one (a new inode a file watch would
//! lose), and Kubernetes ConfigMaps swap a `..data` symlink beside the
//! files. Any event there other than an access re-reads the set and
//! compares its version hash; only a changed hash compiles and swaps. So
//! correctness does not hang on interpreting event kinds, and reading the
//! policies (which itself emits access events) cannot start a reload loop.
//!
//! A file caught mid-save must not drop its rules, even for a moment: a
//! non-atomic save first truncates the file. So a reload that finds any
//! policy file empty (nothing but whitespace) fails like one that does not
//! compile, and the last good set stays in force until the file has
//! content again; to remove a file's rules, delete the file. A reload that
//! succeeds but leaves out rules the set in force had is reported as
//! [`ReloadEvent::RulesRemoved`] (after `Reloaded`), which the CLI prints
//! as a warning naming them.

use crate::engine::Engine;
use crate::index::PolicyBundle;
use crate::store::{LoadError, PolicyStatus, read_policy_sources};
use notify_debouncer_full::notify::{EventKind, RecommendedWatcher, RecursiveMode};
use notify_debouncer_full::{DebounceEventResult, Debouncer, RecommendedCache, new_debouncer};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::thread::ThreadId;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use warden_lang::compile_policy_set;

/// The debounce [`PolicyReloader::watch`] callers should use unless they
/// have a reason not to: long enough to let an editor's write-and-rename
/// or a ConfigMap swap settle into one reload, short enough that a saved
/// policy is in force well within half a second.
pub const DEFAULT_DEBOUNCE: Duration = Duration::from_millis(100);

/// What a watched reload did, for the CLI or proxy to report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "event")]
pub enum ReloadEvent {
    /// A new set is in force.
    Reloaded { version: String, rules: usize },
    /// The set just put in force lacks rules the previous one had (their
    /// ids); reported after `Reloaded`, so that a removal is never quiet.
    RulesRemoved {
        version: String,
        removed: Vec<String>,
    },
    /// The policies on disk could not be loaded; `keeping` is the version
    /// still in force. `message` is one line, and says so.
    Failed { message: String, keeping: String },
    /// The file system watcher itself reported a problem; changes may go
    /// unnoticed until it recovers (or `reload_now` is called).
    WatchError { message: String },
}

/// Called after each watched reload that changed something or failed anew.
pub type OnReload = Box<dyn Fn(&ReloadEvent) + Send + Sync>;

type Report = dyn Fn(&ReloadEvent) + Send + Sync;

/// Why watching could not start.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("cannot watch `{}` for policy changes: {message}", dir.display())]
#[diagnostic(help(
    "check that the directory exists and is readable; on Linux, raise fs.inotify.max_user_watches if it is exhausted"
))]
pub struct WatchError {
    pub dir: PathBuf,
    pub message: String,
}

/// Keeps an engine's policies in step with a path on disk.
pub struct PolicyReloader {
    path: PathBuf,
    engine: Arc<Engine>,
    status: Mutex<PolicyStatus>,
    /// Held for a whole reload so that two reloads (the watcher's and a
    /// manual one) cannot interleave and put an older read in force last.
    /// Holds the latest failure, while it is the latest word on the path.
    attempt: Mutex<Option<Failure>>,
    checks: AtomicU64,
}

struct Failure {
    /// The version hash that failed to compile, or the read error's text:
    /// the same failure seen again is not counted or reported again.
    fingerprint: String,
    error: LoadError,
}

/// The result of one look at the path.
enum Attempt {
    Unchanged,
    Reloaded {
        version: String,
        rules: usize,
        removed: Vec<String>,
    },
    /// `fresh` is false when this exact failure was already reported.
    Failed {
        error: LoadError,
        fresh: bool,
    },
}

impl std::fmt::Debug for PolicyReloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyReloader")
            .field("path", &self.path)
            .field("status", &self.status())
            .finish_non_exhaustive()
    }
}

impl PolicyReloader {
    /// A reloader for `engine`, whose policies are assumed to have been
    /// loaded from `path` just now (their version and rule count are taken
    /// from the engine, the load time is now).
    pub fn new(path: impl Into<PathBuf>, engine: Arc<Engine>) -> Self {
        let bundle = engine.policies();
        let status = PolicyStatus {
            path: path.into(),
            version: bundle.version().to_string(),
            loaded_at: unix_now(),
            rules: bundle.rules().len(),
            last_error: None,
            reloads: 0,
            failed_reloads: 0,
        };
        PolicyReloader {
            path: status.path.clone(),
            engine,
            status: Mutex::new(status),
            attempt: Mutex::new(None),
            checks: AtomicU64::new(0),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// What is in force, since when, and why the last reload failed if the
    /// latest attempt did.
    pub fn status(&self) -> PolicyStatus {
        lock(&self.status).clone()
    }

    /// How many times the policies were read to look for a change (reloads
    /// or not). Shows whether something keeps waking the watcher.
    pub fn checks(&self) -> u64 {
        self.checks.load(Ordering::Relaxed)
    }

    /// The error behind [`PolicyStatus::last_error`], with every diagnostic,
    /// for callers that render it themselves (the CLI's graphical report).
    pub fn last_failure(&self) -> Option<LoadError> {
        lock(&self.attempt).as_ref().map(|f| clone_error(&f.error))
    }

    /// The error behind [`PolicyStatus::last_error`] as plain text, every
    /// diagnostic with its source excerpt and help; no colours, so it can
    /// go to a log.
    pub fn last_error_report(&self) -> Option<String> {
        self.last_failure().map(|e| render_plain(&e))
    }

    /// Reads the policies and, if their version hash differs from the set
    /// in force, compiles them and swaps them in. `Ok(true)`: a new set is
    /// in force; `Ok(false)`: the files hold the set in force already.
    ///
    /// On failure the set in force is kept, `last_error` says why in one
    /// line, and the error is returned. Asking again while the files are
    /// unchanged returns the same error without counting it again in
    /// `failed_reloads`.
    pub fn reload_now(&self) -> Result<bool, LoadError> {
        match self.attempt() {
            Attempt::Unchanged => Ok(false),
            Attempt::Reloaded { .. } => Ok(true),
            Attempt::Failed { error, .. } => Err(error),
        }
    }

    fn attempt(&self) -> Attempt {
        let mut failure = lock(&self.attempt);
        self.checks.fetch_add(1, Ordering::Relaxed);
        let (sources, version) = match read_policy_sources(&self.path) {
            Ok(read) => read,
            Err(error) => return self.failed(&mut failure, error.to_string(), error),
        };
        // Compared with the engine rather than our status: whatever put the
        // set in force, the files are what should be.
        if version == self.engine.policies().version() {
            // Back to (or still at) the set in force: an earlier failure
            // no longer describes the files.
            if failure.take().is_some() {
                lock(&self.status).last_error = None;
            }
            return Attempt::Unchanged;
        }
        if let Some(f) = failure.as_ref()
            && f.fingerprint == version
        {
            return Attempt::Failed {
                error: clone_error(&f.error),
                fresh: false,
            };
        }
        if let Some((_, empty)) = sources.iter().find(|(_, f)| f.text().trim().is_empty()) {
            let error = LoadError::Io {
                path: PathBuf::from(empty.name()),
                message: "the file is empty (perhaps caught mid-save); the last good set stays in force until it has content again (delete the file to remove its rules)".into(),
            };
            return self.failed(&mut failure, version, error);
        }
        match compile_policy_set(&sources) {
            Ok(out) => {
                let rules = out.policy_set.rules().len();
                let old = self.engine.policies();
                let bundle = PolicyBundle::new(out.policy_set, version.clone());
                // Through the new bundle's id index, not every old rule
                // against every new one (up to 10^8 comparisons at 10,000).
                let removed: Vec<String> = old
                    .rules()
                    .iter()
                    .filter(|r| bundle.rule_index(&r.id).is_none())
                    .map(|r| r.id.clone())
                    .collect();
                self.engine.swap_policies(bundle);
                *failure = None;
                let mut status = lock(&self.status);
                status.version = version.clone();
                status.loaded_at = unix_now();
                status.rules = rules;
                status.last_error = None;
                status.reloads += 1;
                Attempt::Reloaded {
                    version,
                    rules,
                    removed,
                }
            }
            Err(diagnostics) => {
                let error = LoadError::Invalid {
                    path: self.path.clone(),
                    diagnostics,
                };
                self.failed(&mut failure, version, error)
            }
        }
    }

    fn failed(
        &self,
        failure: &mut MutexGuard<'_, Option<Failure>>,
        fingerprint: String,
        error: LoadError,
    ) -> Attempt {
        if failure
            .as_ref()
            .is_some_and(|f| f.fingerprint == fingerprint)
        {
            return Attempt::Failed {
                error,
                fresh: false,
            };
        }
        let keeping = self.engine.policies().version().to_string();
        let mut status = lock(&self.status);
        status.last_error = Some(one_line(&error, &keeping));
        status.failed_reloads += 1;
        **failure = Some(Failure {
            fingerprint,
            error: clone_error(&error),
        });
        Attempt::Failed { error, fresh: true }
    }

    /// One watched check: reloads if needed and reports what is news.
    fn check_and_report(&self, on_reload: Option<&Report>) {
        let mut removal = None;
        let event = match self.attempt() {
            Attempt::Unchanged | Attempt::Failed { fresh: false, .. } => return,
            Attempt::Reloaded {
                version,
                rules,
                removed,
            } => {
                if !removed.is_empty() {
                    removal = Some(ReloadEvent::RulesRemoved {
                        version: version.clone(),
                        removed,
                    });
                }
                ReloadEvent::Reloaded { version, rules }
            }
            Attempt::Failed { .. } => {
                let status = self.status();
                ReloadEvent::Failed {
                    message: status.last_error.unwrap_or_default(),
                    keeping: self.engine.policies().version().to_string(),
                }
            }
        };
        if let Some(report) = on_reload {
            report(&event);
            if let Some(removal) = removal {
                report(&removal);
            }
        }
    }

    /// Watches the policies' directory (the path itself if it is a
    /// directory, recursively; else the file's parent) and reloads after
    /// changes, `debounce` after the last event of a burst. The path is
    /// also checked once right after the watch starts, so a change made
    /// between the initial load and now is not missed.
    ///
    /// Watching stops when the returned handle is dropped. Do not drop it
    /// from inside `on_reload`.
    pub fn watch(
        self: Arc<Self>,
        debounce: Duration,
        on_reload: Option<OnReload>,
    ) -> Result<WatchHandle, WatchError> {
        let (dir, mode) = watch_target(&self.path);
        let watch_error = |e: notify_debouncer_full::notify::Error| WatchError {
            dir: dir.clone(),
            message: e.to_string(),
        };
        let on_reload: Option<Arc<Report>> = on_reload.map(Arc::from);
        let handler_thread = Arc::new(OnceLock::new());
        let reloader = Arc::clone(&self);
        let report_to = on_reload.clone();
        let seen_thread = Arc::clone(&handler_thread);
        let handler = move |result: DebounceEventResult| {
            let _ = seen_thread.set(std::thread::current().id());
            match result {
                // Reading the policies emits Access(Open) events in the
                // directory; reacting to them would re-read forever.
                Ok(events) => {
                    if events
                        .iter()
                        .any(|e| !matches!(e.event.kind, EventKind::Access(_)))
                    {
                        reloader.check_and_report(report_to.as_deref());
                    }
                }
                Err(errors) => {
                    if let Some(report) = &report_to {
                        let message = errors
                            .iter()
                            .map(|e| e.to_string())
                            .collect::<Vec<_>>()
                            .join("; ");
                        report(&ReloadEvent::WatchError { message });
                    }
                }
            }
        };
        let mut debouncer = new_debouncer(debounce, None, handler).map_err(watch_error)?;
        debouncer.watch(&dir, mode).map_err(watch_error)?;
        let handle = WatchHandle {
            debouncer: Some(debouncer),
            handler_thread,
        };
        // Anything written between the initial load and this point made no
        // event we could see.
        self.check_and_report(on_reload.as_deref());
        Ok(handle)
    }
}

/// Stops watching when dropped (waiting for a reload in progress to end).
pub struct WatchHandle {
    debouncer: Option<Debouncer<RecommendedWatcher, RecommendedCache>>,
    handler_thread: Arc<OnceLock<ThreadId>>,
}

impl std::fmt::Debug for WatchHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchHandle").finish_non_exhaustive()
    }
}

impl WatchHandle {
    /// Stops watching; the same as dropping the handle.
    pub fn stop(self) {}
}

impl Drop for WatchHandle {
    fn drop(&mut self) {
        if let Some(d) = self.debouncer.take() {
            // Joining waits for a running reload, so no callback comes
            // after the drop; but the handler's own thread cannot join
            // itself, so there it only signals the stop.
            if self.handler_thread.get() == Some(&std::thread::current().id()) {
                d.stop_nonblocking();
            } else {
                d.stop();
            }
        }
    }
}

/// The directory to watch for a policy path, and how.
fn watch_target(path: &Path) -> (PathBuf, RecursiveMode) {
    if path.is_dir() {
        return (path.to_path_buf(), RecursiveMode::Recursive);
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    (parent, RecursiveMode::NonRecursive)
}

/// `last_error`: one line naming the path, the problem and the version kept.
fn one_line(error: &LoadError, keeping: &str) -> String {
    let mut line = format!("reload failed: {error}");
    if let LoadError::Invalid { diagnostics, .. } = error
        && let Some(first) = diagnostics.iter().find(|d| d.is_error())
    {
        line.push_str("; first: ");
        if let Some(at) = first.location() {
            line.push_str(&format!("{}:{}:{}: ", at.file, at.line, at.column));
        }
        line.push_str(first.message());
    }
    line.push_str(&format!("; keeping version {keeping}"));
    // Messages can quote source text; a status line must stay one line.
    line.replace(['\n', '\r'], " ")
}

fn render_plain(error: &LoadError) -> String {
    let handler = miette::NarratableReportHandler::new();
    let mut out = String::new();
    let _ = handler.render_report(&mut out, error);
    if let LoadError::Invalid { diagnostics, .. } = error {
        for d in diagnostics {
            out.push('\n');
            let _ = handler.render_report(&mut out, d);
        }
    }
    out
}

fn clone_error(e: &LoadError) -> LoadError {
    match e {
        LoadError::Io { path, message } => LoadError::Io {
            path: path.clone(),
            message: message.clone(),
        },
        LoadError::Invalid { path, diagnostics } => LoadError::Invalid {
            path: path.clone(),
            diagnostics: diagnostics.clone(),
        },
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A poisoned lock only means a panic elsewhere mid-update; the status is
/// plain data and still the best account there is.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
