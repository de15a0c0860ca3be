//! Paths: the normal form `args.x under "/prefix"` compares. One function
//! for the engine (which normalises the argument of every call) and the
//! checker (which normalises the prefix a policy writes), so both sides of
//! the comparison always agree.
//!
//! A path is normalised the POSIX way, lexically (no file system is
//! consulted, so symbolic links are not resolved):
//!
//! - it must be a string starting with `/`;
//! - empty segments (`//`) and `.` segments are dropped, and `..` removes
//!   the segment before it;
//! - a trailing `/` is dropped (`/restricted/` is `/restricted`).
//!
//! Some strings have no single meaning, and [`normalize_path`] refuses
//! them. The compiled rule counts a refused value as *unknown*: inside for
//! restricting rules, outside for `allow` (fail closed both ways):
//!
//! - not absolute (`restricted/x`, `~/x`, `C:/x`): relative to a directory
//!   warden does not know;
//! - `..` above the root (`/../restricted/x`);
//! - a backslash: a separator on Windows, a name character on POSIX, and
//!   each reading can put the path on either side of the prefix;
//! - a percent escape `%XX`: an upstream that decodes it sees another path;
//! - NUL or any other control character.
//!
//! Letter case: file systems differ (case-insensitive on macOS and Windows
//! by default), so a restricting rule compares [`fold_case`] forms (Unicode
//! lowercase: `/RESTRICTED/x` is inside `/restricted`) and an `allow` rule
//! compares the exact case (`/DATA/x` is not granted by `under "/data"`).

/// The normal form of `raw`, or `None` when it has no single meaning.
pub fn normalize_path(raw: &str) -> Option<String> {
    if !raw.starts_with('/') || raw.contains('\\') || raw.chars().any(char::is_control) {
        return None;
    }
    if has_percent_escape(raw) {
        return None;
    }
    let mut segments: Vec<&str> = Vec::new();
    for seg in raw.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                segments.pop()?;
            }
            s => segments.push(s),
        }
    }
    let mut out = String::with_capacity(raw.len());
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    if out.is_empty() {
        out.push('/');
    }
    Some(out)
}

/// The case-folded form restricting rules compare.
pub fn fold_case(normal: &str) -> String {
    normal.to_lowercase()
}

/// Whether the normal path `path` is `prefix` or below it, segment-wise:
/// `/restricted/x` and `/restricted` are under `/restricted`,
/// `/restricted-2` is not. Both arguments must be in normal form.
pub fn is_under(path: &str, prefix: &str) -> bool {
    prefix == "/"
        || path == prefix
        || path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/'))
}

fn has_percent_escape(s: &str) -> bool {
    s.as_bytes()
        .windows(3)
        .any(|w| w[0] == b'%' && w[1].is_ascii_hexdigit() && w[2].is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_forms() {
        for (raw, normal) in [
            ("/", "/"),
            ("//", "/"),
            ("/restricted/x", "/restricted/x"),
            ("//restricted/x", "/restricted/x"),
            ("/./restricted/x", "/restricted/x"),
            ("/data/../restricted/x", "/restricted/x"),
            ("/restricted/", "/restricted"),
            ("/a/b/../../c/.", "/c"),
            ("/RESTRICTED/x", "/RESTRICTED/x"),
            ("/100%", "/100%"),
        ] {
            assert_eq!(normalize_path(raw).as_deref(), Some(normal), "{raw}");
        }
        for raw in [
            "",
            "restricted/x",
            "./x",
            "~/x",
            "/..",
            "/a/../../restricted",
            "/a\\..\\restricted",
            "/%72estricted/x",
            "/a\0b",
            "/a\nb",
        ] {
            assert_eq!(normalize_path(raw), None, "{raw:?}");
        }
    }

    #[test]
    fn under_compares_whole_segments() {
        assert!(is_under("/restricted", "/restricted"));
        assert!(is_under("/restricted/x", "/restricted"));
        assert!(!is_under("/restricted-2/x", "/restricted"));
        assert!(!is_under("/data", "/restricted"));
        assert!(is_under("/anything", "/"));
        assert_eq!(fold_case("/RESTRICTED/X"), "/restricted/x");
    }
}
