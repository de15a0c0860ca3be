//! The meaning of issue 12's argument measures, run through Cedar's
//! authorizer with `context.args.len` / `size` / `istr` projected as the
//! contract says (tests/support/semantics.rs): `length of` counts the
//! characters of a string or elements of a list, `size of` bytes,
//! `ignoring case` compares case-folded strings; a value the measure does
//! not apply to is unknown, which fires a restriction and grants nothing.

#[path = "support/semantics.rs"]
mod support;

use cedar_policy::Decision;
use serde_json::{Value, json};
use support::{Call, compile, decide};

/// Whether a call with these arguments is denied (by a rule or the default).
fn denied(policy: &str, args: Value) -> bool {
    let set = compile(policy);
    let call = Call {
        args,
        ..Call::default()
    };
    decide(&set, &call).0 == Decision::Deny
}

#[test]
fn size_of_counts_utf8_bytes_and_its_units() {
    let p = "default allow\ndeny big {\n  when size of args.content > 1 KB\n}\n";
    assert!(denied(p, json!({"content": "x".repeat(1001)})));
    assert!(!denied(p, json!({"content": "x".repeat(1000)})));
    // 334 three-byte characters are 1002 bytes.
    assert!(denied(p, json!({"content": "日".repeat(334)})));
    let kib = "default allow\ndeny big {\n  when size of args.content > 1 KiB\n}\n";
    assert!(!denied(kib, json!({"content": "x".repeat(1024)})));
    assert!(denied(kib, json!({"content": "x".repeat(1025)})));
    // Any other value: its compact JSON text.
    assert!(denied(p, json!({"content": vec![12345; 200]})));
    assert!(!denied(p, json!({"content": [1, 2, 3]})));
}

#[test]
fn length_of_counts_characters_and_elements_and_is_unknown_otherwise() {
    let p = "default allow\ndeny many {\n  when length of args.ids > 3\n}\n";
    assert!(denied(p, json!({"ids": ["a", "b", "c", "d"]})));
    assert!(!denied(p, json!({"ids": ["a", "b", "c"]})));
    assert!(denied(p, json!({"ids": "abcd"})));
    assert!(!denied(p, json!({"ids": "日本語"})));
    // A number has no length: unknown, and a restriction fires.
    assert!(denied(p, json!({"ids": 12})));
    let allow = "default deny\nallow few {\n  when length of args.ids <= 3\n}\n";
    assert!(denied(allow, json!({"ids": 12})));
    assert!(!denied(allow, json!({"ids": ["a"]})));
}

#[test]
fn ignoring_case_folds_both_sides() {
    let p = "default allow\ndeny drop-table {\n  when args.sql matches \"*drop table*\" ignoring case\n}\n";
    assert!(denied(p, json!({"sql": "DROP TABLE samples"})));
    assert!(denied(p, json!({"sql": "select 1; Drop Table x"})));
    assert!(!denied(p, json!({"sql": "select * from drop_tables"})));
    let eq = "default allow\ndeny admin {\n  when args.role == \"ADMIN\" ignoring case\n}\n";
    assert!(denied(eq, json!({"role": "Admin"})));
    assert!(!denied(eq, json!({"role": "admins"})));
}
