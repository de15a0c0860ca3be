//! Helpers shared by the integration tests: loading policy text into a
//! source set and rendering diagnostics exactly as `warden lint` shows them
//! (without colour, at a fixed width, so snapshots are stable).

#![allow(dead_code)]

use warden_lang::{Diagnostic, Diagnostics, Sources};

pub fn sources(name: &str, text: &str) -> Sources {
    let mut s = Sources::new();
    s.add(name, text);
    s
}

pub fn render(diags: &Diagnostics) -> String {
    let handler =
        miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor())
            .with_width(100);
    let mut out = String::new();
    for d in diags.iter() {
        handler
            .render_report(&mut out, d as &dyn miette::Diagnostic)
            .expect("render");
        out.push('\n');
    }
    out
}

pub fn codes(diags: &Diagnostics) -> Vec<&'static str> {
    diags.iter().map(|d: &Diagnostic| d.code().id()).collect()
}

/// Every golden set (`test_data/ok`) and every shipped set (`policies/`),
/// one file per set, by file name, sorted.
pub fn golden_and_shipped_sets() -> Vec<(String, Sources)> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = Vec::new();
    for dir in [root.join("test_data/ok"), root.join("../../policies")] {
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.expect("dir entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "policy"))
            .collect();
        files.sort();
        for f in files {
            let mut sources = Sources::new();
            sources.add(
                f.display().to_string(),
                std::fs::read_to_string(&f).expect("readable"),
            );
            out.push((f.display().to_string(), sources));
        }
    }
    assert!(
        out.len() >= 10,
        "golden and shipped sets found: {}",
        out.len()
    );
    out
}
