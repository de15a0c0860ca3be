//! `${VAR}` expansion in the config file's string values: `${NAME}` is the
//! environment variable's value (an error when it is not set),
//! `${NAME:-default}` its value or, when it is unset or empty, `default`
//! (as a POSIX shell reads it), and `$${` a literal `${`. Any other `$` is
//! itself. Names are `[A-Za-z_][A-Za-z0-9_]*`; a default runs to the first
//! `}` and is not expanded again (no nesting).
//!
//! Expansion is done once, when the file is read, on each string value
//! (never on keys), so a secret in the environment stays out of the file.

/// Why a string could not be expanded. Messages name the variable, never
/// its value (values are often secrets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ExpandError {
    pub message: String,
    pub help: String,
}

/// Expands `text`, looking variables up with `env`.
pub(super) fn expand(
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, ExpandError> {
    if !text.contains('$') {
        return Ok(text.to_string());
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i..];
        if let Some(tail) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = tail;
        } else if let Some(tail) = after.strip_prefix("${") {
            let Some(end) = tail.find('}') else {
                return Err(ExpandError {
                    message: "`${` without a closing `}`".into(),
                    help: "write `${NAME}` or `${NAME:-default}` for an environment variable, or `$${` for a literal `${`".into(),
                });
            };
            let inner = &tail[..end];
            let (name, default) = match inner.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (inner, None),
            };
            if !valid_name(name) {
                return Err(ExpandError {
                    message: format!("`${{{}}}` does not name an environment variable", inner),
                    help: "a variable name is letters, digits and `_`, not starting with a digit, e.g. `${LIMS_TOKEN}`; `${NAME:-default}` gives a default".into(),
                });
            }
            match (env(name), default) {
                (Some(v), Some(d)) if v.is_empty() => out.push_str(d),
                (Some(v), _) => out.push_str(&v),
                (None, Some(d)) => out.push_str(d),
                (None, None) => {
                    return Err(ExpandError {
                        message: format!("the environment variable `{name}` is not set"),
                        help: format!(
                            "set `{name}` in warden's environment, or give a default: `${{{name}:-default}}`"
                        ),
                    });
                }
            }
            rest = &tail[end + 1..];
        } else {
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "TOKEN" => Some("s3cret".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    fn ok(text: &str) -> String {
        expand(text, &env).unwrap()
    }

    #[test]
    fn plain_text_and_lone_dollars_stay() {
        assert_eq!(ok("no variables"), "no variables");
        assert_eq!(ok("costs $5 or $"), "costs $5 or $");
        assert_eq!(ok("$TOKEN"), "$TOKEN");
    }

    #[test]
    fn variables_and_defaults() {
        assert_eq!(ok("Bearer ${TOKEN}"), "Bearer s3cret");
        assert_eq!(ok("${TOKEN}${TOKEN}"), "s3crets3cret");
        assert_eq!(ok("${UNSET:-fallback}"), "fallback");
        assert_eq!(ok("${UNSET:-}"), "");
        assert_eq!(ok("${TOKEN:-fallback}"), "s3cret");
        // As a shell: `:-` also replaces an empty value; a bare `${}` of
        // an empty variable is empty.
        assert_eq!(ok("${EMPTY:-fallback}"), "fallback");
        assert_eq!(ok("[${EMPTY}]"), "[]");
    }

    #[test]
    fn escapes() {
        assert_eq!(ok("$${TOKEN}"), "${TOKEN}");
        // Only `$${` is an escape: `$$${` is a `$` and then a literal `${`.
        assert_eq!(ok("$$${TOKEN}"), "$${TOKEN}");
        // The default is not expanded again.
        assert_eq!(ok("${UNSET:-${TOKEN}"), "${TOKEN");
    }

    #[test]
    fn errors_name_the_variable_never_a_value() {
        let e = expand("${MISSING}", &env).unwrap_err();
        assert_eq!(e.message, "the environment variable `MISSING` is not set");
        assert!(e.help.contains("${MISSING:-default}"), "{}", e.help);
        let e = expand("${TOKEN", &env).unwrap_err();
        assert!(e.message.contains("without a closing"), "{}", e.message);
        assert!(!e.message.contains("s3cret"));
        for bad in ["${}", "${1X}", "${A-B}", "${ TOKEN}"] {
            let e = expand(bad, &env).unwrap_err();
            assert!(e.message.contains("does not name"), "{bad}: {}", e.message);
        }
    }
}
