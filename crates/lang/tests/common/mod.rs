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
