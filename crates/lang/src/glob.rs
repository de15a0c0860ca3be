//! The one glob dialect of .policy files: `*` matches any run of characters
//! (including none); every other character matches itself. Cedar's `like`
//! has the same meaning, so the compiler emits globs as `like` patterns and
//! the engine and the checker use this module for the same question.

/// Whether `glob` matches `text`.
pub fn glob_matches(glob: &str, text: &str) -> bool {
    let parts: Vec<&str> = glob.split('*').collect();
    if parts.len() == 1 {
        return glob == text;
    }
    let (first, rest) = parts.split_first().expect("split yields one part at least");
    let (last, middle) = rest.split_last().expect("a star yields two parts");
    let Some(mut remaining) = text.strip_prefix(first) else {
        return false;
    };
    for part in middle {
        match remaining.find(part) {
            Some(i) => remaining = &remaining[i + part.len()..],
            None => return false,
        }
    }
    remaining.len() >= last.len() && remaining.ends_with(last)
}

/// Whether `glob` contains a wildcard.
pub fn is_glob(pattern: &str) -> bool {
    pattern.contains('*')
}

/// Whether every name `inner` matches is also matched by `outer`. Sound but
/// not complete: it answers `false` when unsure, so a warning built on it
/// never fires wrongly.
pub fn glob_covers(outer: &str, inner: &str) -> bool {
    if outer == inner || outer.chars().all(|c| c == '*') && !outer.is_empty() {
        return true;
    }
    if !is_glob(inner) {
        return glob_matches(outer, inner);
    }
    // `prefix*` covers anything that starts with `prefix` before its first star.
    if let Some(prefix) = outer.strip_suffix('*')
        && !is_glob(prefix)
    {
        let inner_prefix = inner.split('*').next().unwrap_or_default();
        return inner_prefix.starts_with(prefix);
    }
    // `*suffix` likewise with the text after the last star.
    if let Some(suffix) = outer.strip_prefix('*')
        && !is_glob(suffix)
    {
        let inner_suffix = inner.rsplit('*').next().unwrap_or_default();
        return inner_suffix.ends_with(suffix);
    }
    false
}

/// Why a tool-name pattern can never match a valid MCP tool name, if it can't.
/// MCP (2025-11-25) names tools with 1 to 128 characters of `A-Za-z0-9_-.`.
pub fn tool_glob_problem(glob: &str) -> Option<String> {
    if glob.is_empty() {
        return Some("an empty name matches no tool".to_string());
    }
    if let Some(bad) = glob
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '*')))
    {
        return Some(format!("tool names never contain {bad:?}"));
    }
    let fixed = glob.chars().filter(|c| *c != '*').count();
    if fixed > 128 {
        return Some(format!(
            "needs {fixed} characters; tool names have at most 128"
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching() {
        assert!(glob_matches("delete_*", "delete_sample"));
        assert!(glob_matches("delete_*", "delete_"));
        assert!(!glob_matches("delete_*", "undelete_sample"));
        assert!(glob_matches("*_sample", "get_sample"));
        assert!(glob_matches("a*b*c", "aXbYc"));
        assert!(!glob_matches("a*b*c", "aXcYb"));
        assert!(!glob_matches("ab*ba", "aba"));
        assert!(glob_matches("*", ""));
        assert!(glob_matches("exact", "exact"));
        assert!(!glob_matches("exact", "exactly"));
    }

    #[test]
    fn covering() {
        assert!(glob_covers("*", "anything_*"));
        assert!(glob_covers("delete_*", "delete_sample"));
        assert!(glob_covers("delete_*", "delete_sample_*"));
        assert!(!glob_covers("delete_sample_*", "delete_*"));
        assert!(glob_covers("*_run", "start_*_run"));
        assert!(!glob_covers("get", "get_*"));
    }

    #[test]
    fn tool_globs_that_never_match() {
        assert!(tool_glob_problem("delete_*").is_none());
        assert!(tool_glob_problem("").is_some());
        assert!(tool_glob_problem("delete sample").is_some());
        assert!(tool_glob_problem(&"a".repeat(129)).is_some());
        assert!(tool_glob_problem(&format!("{}*", "a".repeat(128))).is_none());
    }
}
