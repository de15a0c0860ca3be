//! `warden fmt`: rewrite files in canonical form, or with `--check` only
//! report which ones are not.

use crate::{exit, files};
use std::path::PathBuf;
use warden_lang::{FileId, fmt::format_policy_file, parse::parse_file};

pub(crate) fn run(paths: Vec<PathBuf>, check: bool) -> i32 {
    let mut all = Vec::new();
    for p in &paths {
        match files::policy_files(p) {
            Ok(f) => all.extend(f),
            Err(e) => {
                eprintln!("error: {e}");
                return exit::USAGE;
            }
        }
    }
    let sources = match files::read_sources(&all) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::USAGE;
        }
    };
    let mut failed = false;
    let mut unformatted = 0;
    for ((id, source), path) in sources.iter().zip(&all) {
        let ast = match parse_file(id, source.text()) {
            Ok(a) => a,
            Err(diags) => {
                let diags: Vec<_> = diags.into_iter().collect();
                crate::lint::print_human_list(&diags, &sources);
                failed = true;
                continue;
            }
        };
        let _: FileId = id;
        let formatted = format_policy_file(&ast, source.text());
        if formatted == source.text() {
            continue;
        }
        unformatted += 1;
        if check {
            outln!("would reformat {}", files::display_path(path));
        } else if let Err(e) = std::fs::write(path, formatted) {
            eprintln!("error: cannot write `{}`: {e}", path.display());
            return exit::USAGE;
        } else {
            outln!("formatted {}", files::display_path(path));
        }
    }
    if failed || (check && unformatted > 0) {
        exit::FAILURE
    } else {
        exit::OK
    }
}
