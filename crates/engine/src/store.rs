//! Loading policy files from disk into a [`PolicyBundle`], and the reload
//! status an operator reads: which version is in force, since when, and
//! why the last reload failed if it did.

use crate::index::PolicyBundle;
use serde::Serialize;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use warden_lang::{Diagnostics, Sources, compile_policy_set};

/// Why policies could not be loaded.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum LoadError {
    #[error("cannot read policies at `{}`: {message}", path.display())]
    #[diagnostic(help("check that the path exists and holds .policy files"))]
    Io { path: PathBuf, message: String },
    #[error("the policies at `{}` do not compile ({} error(s))", path.display(), diagnostics.error_count())]
    #[diagnostic(help("run `warden lint {}` to see each problem", path.display()))]
    Invalid {
        path: PathBuf,
        diagnostics: Diagnostics,
    },
}

/// The .policy files a path stands for (a file, or a directory's files
/// recursively), sorted. See [`walk_policy_files`].
pub fn policy_files(path: &Path) -> Result<Vec<PathBuf>, LoadError> {
    let out = walk_policy_files(path).map_err(|(_, e)| LoadError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    if out.is_empty() {
        return Err(LoadError::Io {
            path: path.to_path_buf(),
            message: "no .policy files found".into(),
        });
    }
    Ok(out)
}

/// Most directory levels below the root a walk descends.
pub const MAX_WALK_DEPTH: usize = 64;

/// The one directory walk behind reload, `warden lint` and every command
/// that reads a set: a file stands for itself; a directory for its
/// `.policy` files, recursively, sorted. It may be empty. On an error,
/// the path that could not be read.
///
/// Symbolic links are followed (Kubernetes ConfigMaps are links to files
/// under a `..data` link to a directory), but every directory and file is
/// visited once, known by its device and inode: a link back to an
/// ancestor (`self -> .`, `loop -> ..`) is skipped, so a walk always
/// ends, and a file reached twice (`cur -> .`) is read once, under its
/// first name in sorted order. Names starting with `..` (ConfigMap's
/// `..data` and timestamped directories) are skipped: the top-level links
/// already name each file once. Deeper than [`MAX_WALK_DEPTH`] levels
/// nothing more is read.
pub fn walk_policy_files(path: &Path) -> Result<Vec<PathBuf>, (PathBuf, std::io::Error)> {
    let meta = std::fs::metadata(path).map_err(|e| (path.to_path_buf(), e))?;
    if meta.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut dirs_seen = HashSet::from([file_id(path, &meta)]);
    let mut found = Vec::new();
    let mut stack = vec![(path.to_path_buf(), 0usize)];
    while let Some((dir, depth)) = stack.pop() {
        for entry in std::fs::read_dir(&dir).map_err(|e| (dir.clone(), e))? {
            let p = entry.map_err(|e| (dir.clone(), e))?.path();
            if p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(".."))
            {
                continue;
            }
            // Follows a link; a dangling one is no policy file.
            let Ok(meta) = std::fs::metadata(&p) else {
                continue;
            };
            if meta.is_dir() {
                if depth < MAX_WALK_DEPTH && dirs_seen.insert(file_id(&p, &meta)) {
                    stack.push((p, depth + 1));
                }
            } else if p.extension().is_some_and(|e| e == "policy") {
                found.push((p.clone(), file_id(&p, &meta)));
            }
        }
    }
    found.sort();
    let mut files_seen = HashSet::new();
    Ok(found
        .into_iter()
        .filter(|(_, id)| files_seen.insert(id.clone()))
        .map(|(p, _)| p)
        .collect())
}

/// What a file or directory is, whatever the path that reached it.
#[cfg(unix)]
fn file_id(_: &Path, meta: &std::fs::Metadata) -> (u64, u64, PathBuf) {
    use std::os::unix::fs::MetadataExt;
    (meta.dev(), meta.ino(), PathBuf::new())
}

#[cfg(not(unix))]
fn file_id(path: &Path, _: &std::fs::Metadata) -> (u64, u64, PathBuf) {
    (
        0,
        0,
        std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf()),
    )
}

/// Reads the files of a path into sources, and a version hash over names
/// and contents (FNV-1a, 64 bits: a change detector, not a signature).
pub fn read_policy_sources(path: &Path) -> Result<(Sources, String), LoadError> {
    let mut sources = Sources::new();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            hash ^= u64::from(*b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    };
    for f in policy_files(path)? {
        let text = std::fs::read_to_string(&f).map_err(|e| LoadError::Io {
            path: f.clone(),
            message: e.to_string(),
        })?;
        let name = f.display().to_string();
        feed(name.as_bytes());
        feed(&[0]);
        feed(text.as_bytes());
        feed(&[0]);
        sources.add(name, text);
    }
    Ok((sources, format!("{hash:016x}")))
}

/// Reads and compiles the policies at `path`.
pub fn load_bundle(path: &Path) -> Result<PolicyBundle, LoadError> {
    let (sources, version) = read_policy_sources(path)?;
    let out = compile_policy_set(&sources).map_err(|diagnostics| LoadError::Invalid {
        path: path.to_path_buf(),
        diagnostics,
    })?;
    Ok(PolicyBundle::new(out.policy_set, version))
}

/// What an operator sees about the policies in force.
#[derive(Debug, Clone, Serialize)]
pub struct PolicyStatus {
    pub path: PathBuf,
    /// Version hash of the set in force.
    pub version: String,
    /// When the set in force was loaded (seconds since the Unix epoch).
    pub loaded_at: u64,
    pub rules: usize,
    /// The last failed reload, if the latest attempt failed; the set in
    /// force is then still the last good one.
    pub last_error: Option<String>,
    pub reloads: u64,
    pub failed_reloads: u64,
}
