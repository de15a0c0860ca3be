//! Compiling `during` windows to tests on `context.clock`, the local day
//! and minute the engine supplies for each zone a rule names.

use super::{Emitter, Tri};
use crate::ast::During;
use crate::cedar::CExpr;

impl Emitter {
    /// Interim, fail-closed: unknown (restrictions fire, allows never
    /// grant) until the clock context is emitted.
    pub(super) fn during(&mut self, _d: &During) -> Tri {
        Tri::with_unknown(CExpr::Bool(false), CExpr::Bool(true))
    }
}
