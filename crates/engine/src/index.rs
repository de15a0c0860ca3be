//! A loaded policy set, indexed so that a decision evaluates only the
//! rules that can match its (server, tool): a rule whose `server` and
//! `tool` patterns exclude the call cannot be satisfied, so leaving it out
//! cannot change Cedar's answer (slicing is sound in Cedar). Slices are
//! built on first use and cached per (server, tool), up to a bound.

use crate::call::ResolvedAnnotations;
use cedar_policy::{
    Effect, Entities, Entity, EntityUid, Policy, PolicyId, PolicySet, RestrictedExpression,
};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, OnceLock, RwLock};
use warden_lang::compile::{COUNTING_SUFFIX, DEFAULT_POLICY_ID};
use warden_lang::glob::glob_matches;
use warden_lang::{ArgType, CompiledPolicySet, CompiledRule, CreatedArg};

/// Most distinct (server, tool) slices cached; an agent calling ever new
/// tool names cannot grow memory past this.
const MAX_CACHED_SLICES: usize = 4096;

/// The rules that can match one (server, tool), ready to evaluate.
#[derive(Debug)]
pub struct Slice {
    /// The enforced policies of the slice, as compiled (with matchers).
    pub enforced: PolicySet,
    /// The shadow-mode policies of the slice, as compiled.
    pub shadow: PolicySet,
    /// The counting policies of the slice's caps and rates, as compiled.
    pub counting: PolicySet,
    /// What the engine evaluates: every policy above once, as its core
    /// policy (without the `server`/`tool` matchers, which hold for every
    /// call of this slice) where that parsed, and all with effect `permit`,
    /// so that one evaluation reports every satisfied policy, whatever its
    /// kind (see [`crate::engine`] for how the decision is then combined).
    pub evaluated: PolicySet,
    /// How many policies of `evaluated` are core policies (the rest are
    /// compiled policies used because their core text did not parse).
    pub core_policies: usize,
    /// Indexes into [`PolicyBundle::rules`] of the rules in this slice.
    pub rules: Vec<usize>,
    /// Cap and rate rules of the slice (enforced and shadow).
    pub limited: Vec<usize>,
    /// The arguments the slice's rules read.
    pub arg_fields: BTreeMap<String, BTreeSet<ArgType>>,
    /// The arguments the slice's rules ask `created by agent` about, with
    /// the record kind each asks for; the engine looks their values up
    /// (server, kind, id) before deciding.
    pub created_args: BTreeSet<CreatedArg>,
    /// Whether an enforced rule of the slice asks `created by agent` (then
    /// a record store that cannot answer denies the call; shadow rules
    /// alone never change a decision).
    pub created_enforced: bool,
    /// The session labels the slice's rules ask about (`session has
    /// label`), sorted: the engine reads these from the state store.
    pub labels_read: Vec<String>,
    /// Whether an enforced rule of the slice reads a label (then a store
    /// that cannot say denies the call).
    pub labels_enforced: bool,
    /// Whether a `label` rule can match the slice's calls (then an
    /// allowed call's labels are written before it goes out).
    pub sets_labels: bool,
    /// What the operator says this tool is (annotation declarations; for
    /// each hint the first declaration covering the tool): rules read it
    /// instead of the upstream's claim.
    pub stated: crate::call::ToolAnnotations,
    /// The time zones the slice's `during` windows name, resolved once.
    pub clock: crate::clock_context::SliceZones,
    /// What the policies of `evaluated` read of the context: what the
    /// decision memo keys on ([`crate::memo`]).
    pub(crate) reads: crate::memo::SliceReads,
    /// Set when a rule of the slice has no policy to evaluate (which only
    /// a bug can cause): every call of the slice is then denied.
    pub(crate) broken: Option<String>,
    /// The resource of every call in this slice.
    pub(crate) tool_uid: Result<EntityUid, String>,
    pub(crate) server: String,
    pub(crate) tool: String,
    /// The tool entity, per combination of the four annotations.
    tool_entities: [OnceLock<Entity>; 16],
}

/// Entity sets by (server, tool), identity and annotations: an agent's
/// session calls the same tools as the same user again and again, and
/// building the set (Cedar computes its transitive closure) is a good part
/// of a decision.
#[derive(Debug, Default)]
pub(crate) struct EntityCache {
    /// By hash of the key; entries compare the key exactly.
    pub(crate) by_hash: HashMap<u64, Vec<CachedEntities>>,
    pub(crate) len: usize,
}

#[derive(Debug)]
pub(crate) struct CachedEntities {
    pub(crate) server: String,
    pub(crate) tool: String,
    pub(crate) user: String,
    pub(crate) groups: Vec<String>,
    pub(crate) annotations: usize,
    pub(crate) entities: Arc<Entities>,
}

/// Most entity sets a bundle keeps (a few KiB each at most).
pub(crate) const MAX_CACHED_ENTITY_SETS: usize = 4096;

/// The four annotations as bits, indexing per-combination caches.
pub(crate) fn annotation_bits(a: ResolvedAnnotations) -> usize {
    usize::from(a.read_only)
        | usize::from(a.destructive) << 1
        | usize::from(a.idempotent) << 2
        | usize::from(a.open_world) << 3
}

/// The operator's word on `tool` of `server`: per hint, the first
/// annotation declaration of the set that covers the tool and states it.
fn stated_for(set: &CompiledPolicySet, server: &str, tool: &str) -> crate::call::ToolAnnotations {
    let mut out = crate::call::ToolAnnotations::default();
    for a in set
        .stated_annotations()
        .iter()
        .filter(|a| a.covers(server, tool))
    {
        out.read_only_hint = out.read_only_hint.or(a.read_only);
        out.destructive_hint = out.destructive_hint.or(a.destructive);
        out.idempotent_hint = out.idempotent_hint.or(a.idempotent);
        out.open_world_hint = out.open_world_hint.or(a.open_world);
    }
    out
}

impl Slice {
    /// The annotations the slice's rules read for a call whose upstream
    /// reported `upstream`: the operator's word where given.
    pub fn annotations_of(&self, upstream: crate::call::ToolAnnotations) -> ResolvedAnnotations {
        upstream.stated_by(&self.stated).resolved()
    }

    /// The `Warden::Tool` entity of this slice's tool with annotations `a`,
    /// built once per combination.
    pub(crate) fn tool_entity(&self, a: ResolvedAnnotations) -> Result<Entity, String> {
        let i = annotation_bits(a);
        if let Some(e) = self.tool_entities[i].get() {
            return Ok(e.clone());
        }
        let attrs = HashMap::from([
            (
                "name".to_string(),
                RestrictedExpression::new_string(self.tool.clone()),
            ),
            (
                "server".to_string(),
                RestrictedExpression::new_string(self.server.clone()),
            ),
            (
                "read_only".to_string(),
                RestrictedExpression::new_bool(a.read_only),
            ),
            (
                "destructive".to_string(),
                RestrictedExpression::new_bool(a.destructive),
            ),
            (
                "idempotent".to_string(),
                RestrictedExpression::new_bool(a.idempotent),
            ),
            (
                "open_world".to_string(),
                RestrictedExpression::new_bool(a.open_world),
            ),
        ]);
        let e = Entity::new(self.tool_uid.clone()?, attrs, HashSet::new())
            .map_err(|e| e.to_string())?;
        Ok(self.tool_entities[i].get_or_init(|| e).clone())
    }
}

/// A rule's policies as the engine evaluates them (see [`Slice::evaluated`]).
#[derive(Debug)]
struct EvalPolicies {
    policy: Option<Policy>,
    counting: Option<Policy>,
    /// Whether `policy` is the core policy (not the compiled fallback).
    core: bool,
}

/// A compiled set plus what the engine derives from it once per load.
#[derive(Debug)]
pub struct PolicyBundle {
    compiled: CompiledPolicySet,
    by_id: HashMap<String, usize>,
    /// Hash of the sources, shown in status and decision logs.
    version: String,
    /// Per rule, parsed when a slice first needs it.
    eval: Vec<OnceLock<EvalPolicies>>,
    default_permit: Option<Policy>,
    cache: RwLock<SliceCache>,
    /// Entity sets (user, groups, tool) already built, by call.
    pub(crate) entity_cache: RwLock<EntityCache>,
    /// Cedar's answers per exact input; dropped with the bundle.
    pub(crate) memo: crate::memo::DecisionMemo,
    /// The row scopes some cap of the set measures streaks in.
    pub(crate) cap_rows: Vec<warden_lang::ast::ScopeSet>,
}

#[derive(Debug, Default)]
struct SliceCache {
    /// server → tool → slice, so a lookup needs no allocation.
    slices: HashMap<String, HashMap<String, Arc<Slice>>>,
    len: usize,
}

impl PolicyBundle {
    pub fn new(compiled: CompiledPolicySet, version: String) -> Self {
        let by_id = compiled
            .rules()
            .iter()
            .enumerate()
            .map(|(i, r)| (r.id.clone(), i))
            .collect();
        let eval = compiled.rules().iter().map(|_| OnceLock::new()).collect();
        let default_permit = compiled
            .enforced_policies()
            .policy(&PolicyId::new(DEFAULT_POLICY_ID))
            .cloned();
        let mut cap_rows = Vec::new();
        for r in compiled.rules() {
            if r.kind == warden_lang::ast::RuleKind::CapConsecutive
                && let Some(l) = r.limit
                && !cap_rows.contains(&l.scope.row())
            {
                cap_rows.push(l.scope.row());
            }
        }
        PolicyBundle {
            compiled,
            by_id,
            version,
            eval,
            default_permit,
            cache: RwLock::new(SliceCache::default()),
            entity_cache: RwLock::new(EntityCache::default()),
            memo: Default::default(),
            cap_rows,
        }
    }

    pub fn compiled(&self) -> &CompiledPolicySet {
        &self.compiled
    }
    pub fn version(&self) -> &str {
        &self.version
    }
    pub fn rules(&self) -> &[CompiledRule] {
        self.compiled.rules()
    }
    pub fn rule_index(&self, id: &str) -> Option<usize> {
        self.by_id.get(id).copied()
    }

    /// The slice for a (server, tool), from cache or built now.
    pub fn slice(&self, server: &str, tool: &str) -> Arc<Slice> {
        if let Ok(cache) = self.cache.read()
            && let Some(s) = cache.slices.get(server).and_then(|t| t.get(tool))
        {
            return Arc::clone(s);
        }
        let slice = Arc::new(self.build_slice(server, tool));
        if let Ok(mut cache) = self.cache.write() {
            if cache.len >= MAX_CACHED_SLICES {
                cache.slices.clear();
                cache.len = 0;
            }
            let previous = cache
                .slices
                .entry(server.to_string())
                .or_default()
                .insert(tool.to_string(), Arc::clone(&slice));
            if previous.is_none() {
                cache.len += 1;
            }
        }
        slice
    }

    /// The policies rule `i` is evaluated with, parsed on first use.
    fn eval_policies(&self, i: usize) -> &EvalPolicies {
        self.eval[i].get_or_init(|| {
            let rule = &self.compiled.rules()[i];
            let id = PolicyId::new(&rule.id);
            let compiled = self
                .compiled
                .enforced_policies()
                .policy(&id)
                .or_else(|| self.compiled.shadow_policies().policy(&id))
                .or_else(|| self.compiled.label_policies().policy(&id));
            // Built from the compiler's tree, not re-parsed from its text:
            // `tests/pst_equivalence.rs` holds the two equal.
            let core = rule.core_policy().ok().and_then(as_permit);
            let is_core = core.is_some();
            let policy = core.or_else(|| compiled.cloned().and_then(as_permit));
            let counting = rule.limit.and_then(|_| {
                let id = PolicyId::new(format!("{}{COUNTING_SUFFIX}", rule.id));
                rule.core_counting_policy()
                    .and_then(Result::ok)
                    .or_else(|| self.compiled.counting_policies().policy(&id).cloned())
            });
            EvalPolicies {
                policy,
                counting,
                core: is_core,
            }
        })
    }

    fn build_slice(&self, server: &str, tool: &str) -> Slice {
        let matches = |patterns: &Option<Vec<String>>, name: &str| {
            patterns
                .as_ref()
                .is_none_or(|ps| ps.iter().any(|p| glob_matches(p, name)))
        };
        let tool_id = format!("{server}\u{0}{tool}");
        let mut slice = Slice {
            enforced: PolicySet::new(),
            shadow: PolicySet::new(),
            counting: PolicySet::new(),
            evaluated: PolicySet::new(),
            core_policies: 0,
            broken: None,
            rules: Vec::new(),
            limited: Vec::new(),
            arg_fields: BTreeMap::new(),
            created_args: BTreeSet::new(),
            created_enforced: false,
            labels_read: Vec::new(),
            labels_enforced: false,
            sets_labels: false,
            stated: stated_for(&self.compiled, server, tool),
            clock: Default::default(),
            reads: Default::default(),
            tool_uid: crate::cedar_request::tool_uid(&tool_id),
            server: server.to_string(),
            tool: tool.to_string(),
            tool_entities: Default::default(),
        };
        if let Some(p) = &self.default_permit {
            add(&mut slice.enforced, p);
            add(&mut slice.evaluated, p);
        }
        let enforced = self.compiled.enforced_policies();
        let mut zones: BTreeSet<&String> = BTreeSet::new();
        for (i, rule) in self.compiled.rules().iter().enumerate() {
            if !(matches(&rule.servers, server) && matches(&rule.tools, tool)) {
                continue;
            }
            slice.rules.push(i);
            let id = PolicyId::new(&rule.id);
            if let Some(p) = enforced.policy(&id) {
                add(&mut slice.enforced, p);
            } else if let Some(p) = self.compiled.shadow_policies().policy(&id) {
                add(&mut slice.shadow, p);
            }
            let eval = self.eval_policies(i);
            match &eval.policy {
                Some(p) if slice.evaluated.add(p.clone()).is_ok() => {
                    slice.core_policies += usize::from(eval.core);
                }
                _ => slice.broken = Some(format!("rule `{}` could not be loaded", rule.id)),
            }
            if rule.limit.is_some() {
                slice.limited.push(i);
                let counting_id = PolicyId::new(format!("{}{COUNTING_SUFFIX}", rule.id));
                if let Some(p) = self.compiled.counting_policies().policy(&counting_id) {
                    add(&mut slice.counting, p);
                }
                match &eval.counting {
                    Some(p) if slice.evaluated.add(p.clone()).is_ok() => {}
                    _ => {
                        slice.broken = Some(format!(
                            "the count of rule `{}` could not be loaded",
                            rule.id
                        ));
                    }
                }
            }
            if !rule.labels_read.is_empty() {
                slice.labels_read.extend(rule.labels_read.iter().cloned());
                slice.labels_enforced |= rule.mode != warden_lang::ast::Mode::Shadow;
            }
            slice.sets_labels |= rule.kind == warden_lang::ast::RuleKind::Label;
            if !rule.created_args.is_empty() {
                slice.created_args.extend(rule.created_args.iter().cloned());
                slice.created_enforced |= rule.mode != warden_lang::ast::Mode::Shadow;
            }
            zones.extend(&rule.clock_zones);
            for (ptr, types) in &rule.arg_fields {
                slice
                    .arg_fields
                    .entry(ptr.clone())
                    .or_default()
                    .extend(types);
            }
        }
        slice.labels_read.sort_unstable();
        slice.labels_read.dedup();
        slice.clock = crate::clock_context::SliceZones::resolve(zones);
        slice.reads = crate::memo::SliceReads::of(slice.evaluated.policies());
        slice
    }
}

/// The same policy with effect `permit`: its condition, and so whether it
/// is satisfied, is unchanged.
fn as_permit(p: Policy) -> Option<Policy> {
    if p.effect() == Effect::Permit {
        return Some(p);
    }
    let mut json = p.to_json().ok()?;
    json.as_object_mut()?
        .insert("effect".to_string(), serde_json::json!("permit"));
    Policy::from_json(Some(p.id().clone()), json).ok()
}

fn add(set: &mut PolicySet, p: &Policy) {
    // Ids are unique in the compiled set, so adding to a fresh set cannot clash.
    let _ = set.add(p.clone());
}
