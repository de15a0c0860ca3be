//! The checks of what the engine computes for Cedar: sizes and lengths,
//! `any`/`all` over list elements, and `ignoring case`.

use crate::ast::*;
use crate::diagnostic::Diagnostic;
use crate::lints;

/// `length of args.x > 10`, `size of args.x > 100 KB`: a whole number (or
/// for sizes a size) compared.
pub(super) fn check_measure(
    subject: &Subject,
    op: &Spanned<CmpOp>,
    lit: &Literal,
    diags: &mut Vec<Diagnostic>,
) {
    let _ = op;
    match (&lit.value, subject) {
        (Value::Int(n), _) if *n >= 0 => {}
        (Value::Size(_), Subject::Size(..)) => {}
        _ => diags.push(lints::measure_not_count(lit.span, lit.value.type_name())),
    }
}
