//! `warden-lang`: the .policy language. Parsing (pest) into an AST whose
//! every node carries its span, semantic checks that report every problem
//! at once, a canonical formatter, and the compiler to Cedar policies plus
//! a Cedar schema, validated in strict mode.
//!
//! No I/O happens here: callers hand in file names and texts as a
//! [`Sources`] set and get back values and [`Diagnostics`].
//!
//! ```
//! use warden_lang::{Sources, compile_policy_set};
//! let mut sources = Sources::new();
//! sources.add("genomics.policy", r#"
//!     default allow
//!     deny agents-never-delete {
//!       tool "delete_*"
//!       when via agent
//!       reason "agents may not delete {args.sample_id}"
//!     }
//! "#);
//! let out = compile_policy_set(&sources).expect("compiles");
//! assert_eq!(out.policy_set.rules().len(), 1);
//! assert!(out.policy_set.cedar_text().contains("forbid"));
//! ```

pub mod amount;
pub mod ast;
pub mod catalog_lints;
pub mod cedar;
pub mod check;
pub mod compile;
pub mod compiled;
pub mod diagnostic;
pub mod fmt;
pub mod glob;
pub mod limits;
pub mod lints;
pub mod parse;
pub mod paths;
mod record_kind;
pub mod rule_lints;
pub mod source;
pub mod template;
pub mod terminal;

pub use compile::{
    ArgType, CompiledAnnotation, CompiledApproval, CompiledApprover, CompiledGrant, CompiledLimit,
    CompiledPolicySet, CompiledRecords, CompiledRule, CreatedArg,
};
pub use diagnostic::{Code, Diagnostic, Diagnostics, Label, Location, Severity};
pub use source::{FileId, SourceFile, Sources, Span};

/// Parses every file of a set. Files that fail to parse contribute their
/// diagnostics and are left out of the returned ASTs.
pub fn parse_policy_set(sources: &Sources) -> (Vec<ast::PolicyFile>, Diagnostics) {
    let mut files = Vec::with_capacity(sources.len());
    let mut diags = Diagnostics::new();
    for (id, file) in sources.iter() {
        match parse::parse_file(id, file.text()) {
            Ok(f) => files.push(f),
            Err(errs) => diags.extend(errs),
        }
    }
    (files, diags)
}

/// The result of a successful compilation: the set and any warnings.
#[derive(Debug, Clone)]
pub struct CompileOutput {
    pub policy_set: CompiledPolicySet,
    pub warnings: Diagnostics,
}

/// Parses, checks and compiles a whole set; every error of every stage is
/// returned together.
pub fn compile_policy_set(sources: &Sources) -> Result<CompileOutput, Diagnostics> {
    let (files, parse_diags) = parse_policy_set(sources);
    let mut diags = parse_diags.resolve(sources);
    if diags.has_errors() {
        // Set-wide checks (a missing default, say) would be guesses when a
        // file is missing, but rule-level findings of the files that did
        // parse are still worth reporting.
        diags.extend(check::check_rules_only(&files, sources));
        return Err(diags);
    }
    let checked = check::check_policy_set(&files, sources);
    if checked.has_errors() {
        return Err(checked);
    }
    let policy_set = compile::compile_files(&files, sources)?;
    Ok(CompileOutput {
        policy_set,
        warnings: checked,
    })
}

/// What [`lint_policy_set`] reports, plus the findings of the set against
/// the servers and tools that exist (`warden lint --tools`): patterns that
/// match none of them.
pub fn lint_policy_set_against(sources: &Sources, catalog: &catalog_lints::Catalog) -> Diagnostics {
    let mut diags = lint_policy_set(sources);
    let (files, parsed) = parse_policy_set(sources);
    if !parsed.has_errors() {
        diags.extend(catalog_lints::check_against_catalog(
            &files, sources, catalog,
        ));
    }
    diags
}

/// Everything `warden lint` reports for a set: parse errors, check findings
/// and (when those are clean) any failure to compile or validate.
pub fn lint_policy_set(sources: &Sources) -> Diagnostics {
    match compile_policy_set(sources) {
        Ok(out) => out.warnings,
        Err(diags) => diags,
    }
}
