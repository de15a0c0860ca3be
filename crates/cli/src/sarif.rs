//! SARIF 2.1.0 output for `warden lint --format sarif`, the format GitHub
//! code scanning reads to show findings inline on pull requests.

use crate::lint::LintedSet;
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use serde_json::{Value, json};
use warden_lang::{Code, Diagnostic, Severity};

const SCHEMA: &str = "https://json.schemastore.org/sarif-2.1.0.json";

/// What a path segment of a URI reference may not hold as it is (RFC
/// 3986: everything but unreserved characters and sub-delims); non-ASCII
/// is always encoded.
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// A file name as the relative URI SARIF's `artifactLocation.uri` is:
/// each `/`-separated segment percent-encoded (`a b#1.policy` is
/// `a%20b%231.policy`), so viewers do not cut it at `#` or read `%` as
/// an escape.
pub(crate) fn file_uri(file: &str) -> String {
    file.split('/')
        .map(|seg| utf8_percent_encode(seg, SEGMENT).to_string())
        .collect::<Vec<_>>()
        .join("/")
}

fn level(s: Severity) -> &'static str {
    match s {
        Severity::Error => "error",
        Severity::Warning => "warning",
    }
}

fn location(d: &Diagnostic) -> Option<Value> {
    let loc = d.location()?;
    Some(json!({
        "physicalLocation": {
            "artifactLocation": { "uri": file_uri(&loc.file), "uriBaseId": "%SRCROOT%" },
            "region": {
                "startLine": loc.line,
                "startColumn": loc.column,
                "endLine": loc.end_line,
                "endColumn": loc.end_column,
            }
        },
        "message": { "text": d.labels().first().and_then(|l| l.text()).unwrap_or(d.message()) }
    }))
}

pub(crate) fn to_sarif(sets: &[LintedSet]) -> Value {
    let rules: Vec<Value> = Code::ALL
        .iter()
        .map(|c| {
            json!({
                "id": c.id(),
                "name": c.id(),
                "shortDescription": { "text": c.summary() },
                "defaultConfiguration": { "level": level(c.default_severity()) },
                "helpUri": format!("https://example.invalid/warden/docs/language.md#{}", c.id()),
            })
        })
        .collect();
    let mut results = Vec::new();
    for set in sets {
        for d in set.diagnostics.iter() {
            let rule_index = Code::ALL.iter().position(|c| *c == d.code()).unwrap_or(0);
            let mut text = d.message().to_string();
            if let Some(help) = d.help_text() {
                text.push_str("\nhelp: ");
                text.push_str(help);
            }
            let mut result = json!({
                "ruleId": d.code().id(),
                "ruleIndex": rule_index,
                "level": level(d.severity()),
                "message": { "text": text },
                "locations": location(d).into_iter().collect::<Vec<_>>(),
            });
            let related: Vec<Value> = d
                .related_notes()
                .iter()
                .filter_map(location)
                .chain(d.labels().iter().skip(1).filter_map(|l| {
                    let loc = d.location()?;
                    Some(json!({
                        "physicalLocation": {
                            "artifactLocation": { "uri": file_uri(&loc.file), "uriBaseId": "%SRCROOT%" },
                            "region": { "charOffset": l.span().start, "charLength": l.span().len() }
                        },
                        "message": { "text": l.text().unwrap_or_default() }
                    }))
                }))
                .enumerate()
                .map(|(i, mut v)| {
                    v["id"] = json!(i);
                    v
                })
                .collect();
            if !related.is_empty() {
                result["relatedLocations"] = json!(related);
            }
            results.push(result);
        }
    }
    json!({
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": {
                "name": "warden",
                "version": env!("CARGO_PKG_VERSION"),
                "informationUri": "https://example.invalid/warden",
                "rules": rules,
            }},
            "columnKind": "unicodeCodePoints",
            "results": results,
        }]
    })
}

#[cfg(test)]
mod tests {
    use super::file_uri;

    #[test]
    fn finding_26_sarif_uris_are_percent_encoded() {
        assert_eq!(file_uri("policies/base.policy"), "policies/base.policy");
        assert_eq!(file_uri("pol/a b#1%.policy"), "pol/a%20b%231%25.policy");
        assert_eq!(file_uri("pol/ü?.policy"), "pol/%C3%BC%3F.policy");
    }
}
