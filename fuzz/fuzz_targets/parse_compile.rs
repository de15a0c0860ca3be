//! Any text: compiling it never panics, and when it parses, formatting is
//! stable (the formatted text parses again and formats to itself).

#![no_main]

use libfuzzer_sys::fuzz_target;
use warden_lang::fmt::format_policy_file;
use warden_lang::parse::parse_file;
use warden_lang::{FileId, Sources, compile_policy_set};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };

    let mut sources = Sources::new();
    sources.add("fuzz.policy", text);
    let _ = compile_policy_set(&sources);

    let Ok(file) = parse_file(FileId(0), text) else {
        return;
    };
    let formatted = format_policy_file(&file, text);
    let reparsed = match parse_file(FileId(0), &formatted) {
        Ok(f) => f,
        Err(errs) => panic!(
            "formatted text does not parse: {:?}\n--- input ---\n{text}\n--- formatted ---\n{formatted}",
            errs.iter()
                .map(|d| d.message().to_string())
                .collect::<Vec<_>>()
        ),
    };
    let again = format_policy_file(&reparsed, &formatted);
    assert_eq!(
        formatted, again,
        "formatting is not idempotent\n--- input ---\n{text}"
    );
});
