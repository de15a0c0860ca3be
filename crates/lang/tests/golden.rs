//! Golden tests: every `test_data/ok/*.policy` compiles (which includes
//! strict validation of the emitted Cedar against the generated schema) to
//! the Cedar in its snapshot; every `test_data/err/*.policy` gives the
//! diagnostics in its snapshot, rendered as `warden lint` renders them.

mod common;

use std::path::Path;
use warden_lang::{compile_policy_set, lint_policy_set};

fn policy_files(dir: &str) -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<_> = std::fs::read_dir(root.join(dir))
        .expect("test_data dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "policy"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no golden files in {dir}");
    files
        .into_iter()
        .map(|p| {
            let name = format!("{dir}/{}", p.file_name().unwrap().to_string_lossy());
            (name, std::fs::read_to_string(&p).expect("read"))
        })
        .collect()
}

#[test]
fn ok_files_compile_to_their_golden_cedar() {
    for (name, text) in policy_files("test_data/ok") {
        let sources = common::sources(&name, &text);
        let out = match compile_policy_set(&sources) {
            Ok(out) => out,
            Err(d) => panic!("{name} does not compile:\n{}", common::render(&d)),
        };
        assert!(
            out.warnings.is_empty(),
            "{name} has warnings:\n{}",
            common::render(&out.warnings)
        );
        let stem = Path::new(&name)
            .file_stem()
            .unwrap()
            .to_string_lossy()
            .to_string();
        insta::assert_snapshot!(format!("ok__{stem}"), out.policy_set.cedar_text());
    }
}

#[test]
fn generated_schema_matches_golden() {
    let (name, text) = policy_files("test_data/ok")
        .into_iter()
        .find(|(n, _)| n.ends_with("arguments.policy"))
        .expect("arguments.policy");
    let out = compile_policy_set(&common::sources(&name, &text)).expect("compiles");
    insta::assert_snapshot!("schema__arguments", out.policy_set.schema_text());
}

#[test]
fn err_files_report_their_golden_diagnostics() {
    for (name, text) in policy_files("test_data/err") {
        let diags = lint_policy_set(&common::sources(&name, &text));
        assert!(!diags.is_empty(), "{name} reports nothing");
        for d in diags.iter() {
            let loc = d
                .location()
                .unwrap_or_else(|| panic!("{name}: `{}` has no location", d.message()));
            assert!(loc.line >= 1 && loc.column >= 1);
            assert!(
                d.help_text().is_some(),
                "{name}: `{}` has no help",
                d.message()
            );
        }
        let stem = Path::new(&name)
            .file_stem()
            .unwrap()
            .to_string_lossy()
            .to_string();
        insta::assert_snapshot!(format!("err__{stem}"), common::render(&diags));
    }
}

#[test]
fn many_mistakes_are_all_reported_at_once() {
    let (name, text) = policy_files("test_data/err")
        .into_iter()
        .find(|(n, _)| n.ends_with("many_mistakes.policy"))
        .expect("many_mistakes.policy");
    let diags = lint_policy_set(&common::sources(&name, &text));
    let mut codes = common::codes(&diags);
    codes.sort();
    codes.dedup();
    assert_eq!(
        codes,
        vec![
            "duplicate-clause",
            "duplicate-rule-name",
            "glob-never-matches",
            "invalid-window",
            "misplaced-limit",
            "missing-default",
            "number-out-of-range",
            "type-mismatch",
            "unknown-placeholder",
            "zero-limit",
        ]
    );
    assert!(
        diags.error_count() >= 14,
        "only {} errors:\n{}",
        diags.error_count(),
        common::render(&diags)
    );
}

#[test]
fn every_example_policy_compiles_and_validates() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies");
    let mut sources = warden_lang::Sources::new();
    for entry in std::fs::read_dir(&root).expect("policies/") {
        let p = entry.expect("entry").path();
        if p.extension().is_some_and(|e| e == "policy") {
            sources.add(
                p.display().to_string(),
                std::fs::read_to_string(&p).expect("read"),
            );
        }
    }
    assert!(sources.len() >= 2);
    let out = compile_policy_set(&sources).unwrap_or_else(|d| panic!("{}", common::render(&d)));
    assert!(out.warnings.is_empty(), "{}", common::render(&out.warnings));
}

/// Issue 12's example, as the issue writes it, lints without errors; its
/// one warning is `per model` on a model name the client declares (the
/// CLI exits 0 on warnings unless `--deny-warnings`).
#[test]
fn the_issue_12_examples_lint_without_errors() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (file, warnings) in [
        ("issue12_example.policy", vec!["unverified-model-limit"]),
        (
            "issue12_full_example.policy",
            vec!["unverified-model-limit", "inferred-record-kind"],
        ),
    ] {
        let name = format!("test_data/{file}");
        let text = std::fs::read_to_string(root.join(&name)).expect("read");
        let sources = common::sources(&name, &text);
        let out = compile_policy_set(&sources)
            .unwrap_or_else(|d| panic!("{name} does not compile:\n{}", common::render(&d)));
        let mut got = common::codes(&out.warnings);
        got.sort_unstable();
        let mut want = warnings;
        want.sort_unstable();
        assert_eq!(got, want, "{name}:\n{}", common::render(&out.warnings));
        // The same text formats to itself: it is written canonically.
        let ast = warden_lang::parse::parse_file(warden_lang::FileId(0), &text).expect("parses");
        assert_eq!(
            warden_lang::fmt::format_policy_file(&ast, &text),
            text,
            "{name} is not in canonical form"
        );
    }
}

/// Issue 16's example rule lints as the issue writes it.
#[test]
fn the_issue_16_example_lints_as_written() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text =
        std::fs::read_to_string(root.join("test_data/issue16_example.policy")).expect("read");
    let diags = lint_policy_set(&common::sources("issue16_example.policy", &text));
    assert!(diags.is_empty(), "{}", common::render(&diags));
    let out =
        compile_policy_set(&common::sources("issue16_example.policy", &text)).expect("compiles");
    let rule = &out.policy_set.rules()[0];
    let approval = rule.approval.as_ref().expect("an approval");
    assert_eq!(
        approval.approver,
        Some(warden_lang::CompiledApprover::Group("lab-leads".into()))
    );
    assert_eq!(approval.grant, warden_lang::CompiledGrant::ForSecs(1800));
    assert!(
        rule.cedar.contains(r#"@approver("group:lab-leads")"#),
        "{}",
        rule.cedar
    );
    assert!(rule.cedar.contains(r#"@grant("1800s")"#), "{}", rule.cedar);
}
