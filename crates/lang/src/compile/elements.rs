//! Compiling what Cedar cannot compute itself: quantified tests over list
//! elements (`any`/`all`), case-folded comparisons, and sizes and lengths,
//! to guarded reads of what the engine supplies.

use super::{Emitter, Tri};
use crate::ast::{Atom, CmpOp, Quantifier, Subject, Value};
use crate::cedar::CExpr;

impl Emitter {
    /// Interim, fail-closed: unknown until the element results are emitted.
    pub(super) fn each(&mut self, _q: Quantifier, _test: &Atom) -> Tri {
        Tri::with_unknown(CExpr::Bool(false), CExpr::Bool(true))
    }

    /// Interim, fail-closed: unknown until the folded values are emitted.
    pub(super) fn ignoring_case(&mut self, _test: &Atom) -> Tri {
        Tri::with_unknown(CExpr::Bool(false), CExpr::Bool(true))
    }

    /// Interim, fail-closed: unknown until sizes are emitted.
    pub(super) fn measure(&mut self, _subject: &Subject, _op: CmpOp, _value: &Value) -> Tri {
        Tri::with_unknown(CExpr::Bool(false), CExpr::Bool(true))
    }
}
