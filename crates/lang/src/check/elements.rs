//! The checks of what the engine computes for Cedar: sizes and lengths,
//! `any`/`all` over list elements, and `ignoring case`.

use crate::ast::*;
use crate::diagnostic::Diagnostic;
use crate::lints;
use crate::source::Span;

/// `length of args.x > 10`, `size of args.x > 100 KB`: a whole number of
/// at least 0 (for sizes also a size with its unit, in range) compared.
pub(super) fn check_measure(subject: &Subject, lit: &Literal, diags: &mut Vec<Diagnostic>) {
    match (&lit.value, subject) {
        (Value::Int(n), _) if *n < 0 => {
            diags.push(lints::negative_measure_literal(lit.span, &n.to_string()))
        }
        (Value::Int(_), _) => {}
        (Value::Size(s), Subject::Size(..)) => {
            let bytes = s.amount.checked_mul(s.unit.bytes());
            if bytes.is_none_or(|b| i64::try_from(b).is_err()) {
                diags.push(lints::size_too_large(lit.span));
            }
        }
        (Value::Size(_), _) => diags.push(lints::unit_on_length(lit.span)),
        _ => diags.push(lints::measure_not_count(lit.span, lit.value.type_name())),
    }
}

/// `any`/`all` take a test that reads one argument, the list: not an
/// identity, not another quantifier. The inner test gets every check it
/// would get on its own.
pub(super) fn check_each(
    q: &Spanned<Quantifier>,
    inner: &Atom,
    span: Span,
    diags: &mut Vec<Diagnostic>,
) {
    let keyword = q.node.keyword();
    let test = match inner {
        Atom::IgnoringCase(t) => &**t,
        t => t,
    };
    let reads_list = match test {
        Atom::Exists(_) | Atom::CreatedByAgent(..) | Atom::Under(..) => true,
        Atom::Compare(s, ..) | Atom::In(s, _) | Atom::Matches(s, _) => match s {
            Subject::Identity(field) => {
                let reads = format!("`{}`", field.node.keyword());
                diags.push(lints::quantifier_without_list(field.span, keyword, &reads));
                return;
            }
            _ => true,
        },
        Atom::Each(..) => {
            diags.push(lints::nested_quantifier(span));
            return;
        }
        _ => false,
    };
    if !reads_list {
        diags.push(lints::quantifier_without_list(span, keyword, "no argument"));
        return;
    }
    super::check_expr(&Expr::Atom(inner.clone(), span), diags);
}

/// `ignoring case` on `==`, `!=`, `in` or `matches` between a string
/// argument and strings; anything else is refused rather than compiled to
/// a test that silently means something else.
pub(super) fn check_folded(inner: &Atom, span: Span, diags: &mut Vec<Diagnostic>) {
    let subject = match inner {
        Atom::Compare(s, ..) | Atom::In(s, _) | Atom::Matches(s, _) => s,
        _ => {
            diags.push(lints::ignoring_case_not_string(span, "this test"));
            return;
        }
    };
    match subject {
        Subject::Identity(field) => {
            let what = format!(
                "`{}` (identity names compare exactly)",
                field.node.keyword()
            );
            diags.push(lints::ignoring_case_not_string(field.span, &what));
            return;
        }
        Subject::Length(_, at) | Subject::Size(_, at) => {
            diags.push(lints::ignoring_case_not_string(*at, "a length or size"));
            return;
        }
        Subject::Arg(_) => {}
    }
    match inner {
        Atom::Compare(_, op, lit) => {
            if op.node.is_ordering() {
                let what = format!("an ordering (`{}`)", op.node.symbol());
                diags.push(lints::ignoring_case_not_string(op.span, &what));
                return;
            }
            if !matches!(lit.value, Value::String(_)) {
                let what = format!("a {}", lit.value.type_name());
                diags.push(lints::ignoring_case_not_string(lit.span, &what));
                return;
            }
        }
        Atom::In(_, lits) => {
            if let Some(lit) = lits.iter().find(|l| !matches!(l.value, Value::String(_))) {
                let what = format!("a {}", lit.value.type_name());
                diags.push(lints::ignoring_case_not_string(lit.span, &what));
                return;
            }
        }
        _ => {}
    }
    super::check_expr(&Expr::Atom(inner.clone(), span), diags);
}
