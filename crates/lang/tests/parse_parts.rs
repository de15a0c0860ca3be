//! A large file is parsed in parts, one per core (`parse::parts`): the
//! parts' items joined must be the file's items parsed whole, at the same
//! spans, and a file with an error must get exactly the errors a
//! whole-file parse gives.

mod generated;

use warden_lang::FileId;
use warden_lang::parse::parse_file_in_parts;

/// Parsed in 1 part and in 2 to 5: the same items at the same spans, or
/// the same errors.
fn same_in_parts(text: &str) {
    let whole = parse_file_in_parts(FileId(3), text, 1);
    for parts in 2..6 {
        let cut = parse_file_in_parts(FileId(3), text, parts);
        match (&whole, &cut) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "{parts} parts"),
            (Err(a), Err(b)) => assert_eq!(format!("{a:?}"), format!("{b:?}"), "{parts} parts"),
            _ => panic!("{parts} parts: one parse failed, the other did not"),
        }
    }
}

#[test]
fn a_file_parsed_in_parts_is_the_file_parsed_whole() {
    // The compile bench's set: every rule kind, lists, conditions, reasons,
    // limits; cut in many places.
    let text = generated::generate(2_000);
    same_in_parts(&text);
    assert!(parse_file_in_parts(FileId(3), &text, 4).is_ok());
    // Every golden file, good and bad.
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("test_data");
    let mut seen = 0;
    for dir in ["ok", "err"] {
        for entry in std::fs::read_dir(data.join(dir)).expect("test_data") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "policy") {
                same_in_parts(&std::fs::read_to_string(&path).expect("golden file"));
                seen += 1;
            }
        }
    }
    assert!(seen >= 20, "golden files read: {seen}");
}

#[test]
fn an_error_in_a_later_part_is_reported_as_a_whole_parse_reports_it() {
    // A syntax error, a bad escape (an error of the builder, not of pest)
    // and an unterminated string, each three quarters into the file.
    for broken in [
        "allow broken {\n  tool \"x\"\n  when args.a ==\n}\n",
        "deny escape {\n  tool \"x\"\n  reason \"bad \\q escape\"\n}\n",
        "deny open {\n  tool \"unterminated\n}\n",
    ] {
        let mut text = generated::generate(500);
        let at = text.len() * 3 / 4;
        let at = at + text[at..].find("\nallow ").map_or(0, |i| i + 1);
        text.insert_str(at, broken);
        same_in_parts(&text);
        assert!(
            parse_file_in_parts(FileId(3), &text, 4).is_err(),
            "{broken}"
        );
    }
}
