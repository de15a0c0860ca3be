//! Finding and reading .policy files: a path is a file, or a directory
//! whose .policy files (recursively, in sorted order) form one set, found
//! by the engine's walk. Also opening the decision log files that
//! `warden audit verify`, `replay` and `report` read.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use warden_lang::Sources;

/// The .policy files a path stands for, sorted so output is stable: the
/// engine's walk ([`warden_engine::store::walk_policy_files`]), so lint
/// reads exactly the set the proxy loads (links followed, each directory
/// and file once, loops skipped, ConfigMap `..` entries skipped).
pub(crate) fn policy_files(path: &Path) -> Result<Vec<PathBuf>, String> {
    warden_engine::store::walk_policy_files(path).map_err(|(at, e)| {
        if at == path {
            format!("cannot read `{}`: {e}", at.display())
        } else {
            format!("cannot list `{}`: {e}", at.display())
        }
    })
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

/// A decision log file: its name as given, for reports, and its content.
pub(crate) type LogFile = (String, Box<dyn BufRead>);

/// Opens each decision log file; a file that cannot be opened is
/// reported and is bad usage (exit 2).
pub(crate) fn open_log_files(paths: &[PathBuf]) -> Result<Vec<LogFile>, i32> {
    paths
        .iter()
        .map(|path| match std::fs::File::open(path) {
            Ok(f) => Ok((
                path.display().to_string(),
                Box::new(BufReader::new(f)) as Box<dyn BufRead>,
            )),
            Err(e) => {
                eprintln!("error: cannot read `{}`: {e}", path.display());
                Err(crate::exit::USAGE)
            }
        })
        .collect()
}
