//! Loading policy files from disk into a [`PolicyBundle`], and the reload
//! status an operator reads: which version is in force, since when, and
//! why the last reload failed if it did.

use crate::index::PolicyBundle;
use serde::Serialize;
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
/// recursively), sorted.
pub fn policy_files(path: &Path) -> Result<Vec<PathBuf>, LoadError> {
    let io = |e: std::io::Error| LoadError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if meta.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut out = Vec::new();
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).map_err(io)? {
            let p = entry.map_err(io)?.path();
            // Kubernetes ConfigMaps hold the real files under `..data` and
            // timestamped `..2024_...` directories; the top-level names are
            // links to them. Reading the links only avoids loading a set twice.
            let hidden = p
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(".."));
            if p.is_dir() {
                if !hidden {
                    stack.push(p);
                }
            } else if p.extension().is_some_and(|e| e == "policy") && !hidden {
                out.push(p);
            }
        }
    }
    out.sort();
    if out.is_empty() {
        return Err(LoadError::Io {
            path: path.to_path_buf(),
            message: "no .policy files found".into(),
        });
    }
    Ok(out)
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
