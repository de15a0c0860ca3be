//! Reason templates: the `{args.sample_id}` placeholders of a rule's
//! `reason`, parsed once at compile time so the engine only fills them in.
//! `{{` and `}}` stand for literal braces.

/// A parsed reason.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Template {
    pub parts: Vec<TemplatePart>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TemplatePart {
    Text(String),
    Placeholder(Placeholder),
}

/// A value a reason may show.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "path")]
pub enum Placeholder {
    /// `{args.a.b}`: an argument of the call, by its path.
    Arg(Vec<String>),
    User,
    Agent,
    Model,
    Tool,
    Server,
    Session,
    Rule,
    /// `{limit}`: the `max` of a cap or rate limit.
    Limit,
    /// `{window}`: the window of a rate limit or budget.
    Window,
    /// `{used}`: how much of a budget the scope used in the window, this
    /// call not included.
    Used,
    /// `{remaining}`: what is left of a budget (`limit - used`).
    Remaining,
}

impl Placeholder {
    pub const NAMES: &'static [&'static str] = &[
        "args.<name>",
        "user",
        "agent",
        "model",
        "tool",
        "server",
        "session",
        "rule",
        "limit",
        "window",
        "used",
        "remaining",
    ];

    fn from_name(name: &str) -> Option<Placeholder> {
        Some(match name {
            "user" => Placeholder::User,
            "agent" => Placeholder::Agent,
            "model" => Placeholder::Model,
            "tool" => Placeholder::Tool,
            "server" => Placeholder::Server,
            "session" => Placeholder::Session,
            "rule" => Placeholder::Rule,
            "limit" => Placeholder::Limit,
            "window" => Placeholder::Window,
            "used" => Placeholder::Used,
            "remaining" => Placeholder::Remaining,
            _ => {
                let path = name.strip_prefix("args.")?;
                // `{args."max-cost"}`: quotes group a segment, as in conditions.
                let segments: Vec<String> = path
                    .split('.')
                    .map(|s| {
                        s.strip_prefix('"')
                            .and_then(|s| s.strip_suffix('"'))
                            .unwrap_or(s)
                            .to_string()
                    })
                    .collect();
                if segments.iter().any(|s| s.is_empty()) {
                    return None;
                }
                Placeholder::Arg(segments)
            }
        })
    }
}

/// A problem in a template, with the byte range in the decoded string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    pub placeholder: String,
    pub start: usize,
    pub end: usize,
    pub unclosed: bool,
}

/// Parses a reason, returning every bad placeholder.
pub fn parse_template(text: &str) -> Result<Template, Vec<TemplateError>> {
    let mut parts = Vec::new();
    let mut errors = Vec::new();
    let mut buf = String::new();
    let mut rest = text.char_indices().peekable();
    while let Some((i, c)) = rest.next() {
        match c {
            '{' if rest.peek().map(|(_, c)| *c) == Some('{') => {
                rest.next();
                buf.push('{');
            }
            '}' if rest.peek().map(|(_, c)| *c) == Some('}') => {
                rest.next();
                buf.push('}');
            }
            '{' => match text[i + 1..].find('}') {
                Some(len) => {
                    let name = &text[i + 1..i + 1 + len];
                    match Placeholder::from_name(name.trim()) {
                        Some(p) => {
                            if !buf.is_empty() {
                                parts.push(TemplatePart::Text(std::mem::take(&mut buf)));
                            }
                            parts.push(TemplatePart::Placeholder(p));
                        }
                        None => errors.push(TemplateError {
                            placeholder: name.to_string(),
                            start: i,
                            end: i + len + 2,
                            unclosed: false,
                        }),
                    }
                    while rest.peek().is_some_and(|(j, _)| *j <= i + len + 1) {
                        rest.next();
                    }
                }
                None => {
                    errors.push(TemplateError {
                        placeholder: text[i..].to_string(),
                        start: i,
                        end: text.len(),
                        unclosed: true,
                    });
                    break;
                }
            },
            other => buf.push(other),
        }
    }
    if !buf.is_empty() {
        parts.push(TemplatePart::Text(buf));
    }
    if errors.is_empty() {
        Ok(Template { parts })
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_and_escaped_braces() {
        let t = parse_template("run {args.pipeline} on {{sample}} for {user}").unwrap();
        assert_eq!(
            t.parts,
            vec![
                TemplatePart::Text("run ".into()),
                TemplatePart::Placeholder(Placeholder::Arg(vec!["pipeline".into()])),
                TemplatePart::Text(" on {sample} for ".into()),
                TemplatePart::Placeholder(Placeholder::User),
            ]
        );
    }

    #[test]
    fn unknown_and_unclosed_placeholders_are_all_reported() {
        let errs = parse_template("{nope} and {args.} and {user").unwrap_err();
        let names: Vec<_> = errs.iter().map(|e| e.placeholder.as_str()).collect();
        assert_eq!(names, vec!["nope", "args.", "{user"]);
        assert!(errs[2].unclosed);
        assert_eq!((errs[0].start, errs[0].end), (0, 6));
    }
}
