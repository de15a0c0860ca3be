//! From the emitted trees to checked Cedar: each policy built through
//! Cedar's policy tree, and the set validated strictly against the
//! generated schema. On a large set these two are most of the compiler's
//! time (Cedar parses each annotation key as it converts a tree, and
//! type-checks each policy), and both work policy by policy, so a large set
//! is cut into one part per core. Results come back in the set's order.

use crate::cedar::{BuildError, CPolicy, PolicyBuilder};
use crate::source::Span;
use cedar_policy::{Policy, PolicySet, Schema, ValidationMode, Validator};

/// Sets at least this large are built and validated on several threads.
const PARALLEL_FROM: usize = 512;

/// `work` over `items`, on one thread per core when there are many: the
/// results of each part, in order.
fn in_parts<T: Sync, R: Send>(items: &[T], work: impl Fn(&[T]) -> Vec<R> + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
    if threads < 2 || items.len() < PARALLEL_FROM {
        return work(items);
    }
    let run = items.len().div_ceil(threads);
    let work = &work;
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(run)
            .map(|part| scope.spawn(move || work(part)))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| match h.join() {
                Ok(done) => done,
                // A panic here is a compiler bug: carry it on.
                Err(panic) => std::panic::resume_unwind(panic),
            })
            .collect()
    })
}

/// Every policy built, in order.
pub(super) fn build_policies(
    builder: &PolicyBuilder,
    policies: &[(CPolicy, Span, String)],
) -> Vec<Result<Policy, BuildError>> {
    in_parts(policies, |part| {
        let mut b = builder.clone();
        part.iter().map(|(p, _, id)| b.policy(p, id)).collect()
    })
}

/// Cedar's strict validation of every policy against the schema, as
/// (policy id, error). Cedar validates each policy on its own (what it
/// checks across a set are warnings, which the compiler does not read), so
/// validating the parts finds the same errors as validating the whole.
pub(super) fn validate_strictly(schema: &Schema, all: &[Policy]) -> Vec<(String, String)> {
    let validator = Validator::new(schema.clone());
    in_parts(all, |part| {
        let mut set = PolicySet::new();
        let mut errors = Vec::new();
        for p in part {
            if let Err(e) = set.add(p.clone()) {
                errors.push((p.id().to_string(), e.to_string()));
            }
        }
        let result = validator.validate(&set, ValidationMode::Strict);
        errors.extend(
            result
                .validation_errors()
                .map(|e| (e.policy_id().to_string(), e.to_string())),
        );
        errors
    })
}
