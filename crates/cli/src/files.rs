//! Finding and reading .policy files: a path is a file, or a directory
//! whose .policy files (recursively, in sorted order) form one set.

use std::path::{Path, PathBuf};
use warden_lang::Sources;

/// The .policy files a path stands for, sorted so output is stable.
pub(crate) fn policy_files(path: &Path) -> Result<Vec<PathBuf>, String> {
    let meta =
        std::fs::metadata(path).map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    if meta.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut out = Vec::new();
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries =
            std::fs::read_dir(&dir).map_err(|e| format!("cannot list `{}`: {e}", dir.display()))?;
        for entry in entries {
            let entry = entry.map_err(|e| format!("cannot list `{}`: {e}", dir.display()))?;
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e == "policy") {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Reads files into a source set, naming each by the path as given.
pub(crate) fn read_sources(files: &[PathBuf]) -> Result<Sources, String> {
    let mut sources = Sources::new();
    for f in files {
        let text = std::fs::read_to_string(f)
            .map_err(|e| format!("cannot read `{}`: {e}", f.display()))?;
        sources.add(display_path(f), text);
    }
    Ok(sources)
}

/// A path as reports show it: relative as given, with `/` separators.
pub(crate) fn display_path(p: &Path) -> String {
    let s = p.display().to_string().replace('\\', "/");
    s.strip_prefix("./").map(str::to_string).unwrap_or(s)
}
