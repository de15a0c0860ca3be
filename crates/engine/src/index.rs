//! A loaded policy set, indexed so that a decision evaluates only the
//! rules that can match its (server, tool): a rule whose `server` and
//! `tool` patterns exclude the call cannot be satisfied, so leaving it out
//! cannot change Cedar's answer (slicing is sound in Cedar). Slices are
//! built on first use and cached per (server, tool), up to a bound.

use cedar_policy::{Policy, PolicyId, PolicySet};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, RwLock};
use warden_lang::compile::{COUNTING_SUFFIX, DEFAULT_POLICY_ID};
use warden_lang::glob::glob_matches;
use warden_lang::{ArgType, CompiledPolicySet, CompiledRule};

/// Most distinct (server, tool) slices cached; an agent calling ever new
/// tool names cannot grow memory past this.
const MAX_CACHED_SLICES: usize = 4096;

/// The rules that can match one (server, tool), ready to evaluate.
#[derive(Debug)]
pub struct Slice {
    pub enforced: PolicySet,
    pub shadow: PolicySet,
    pub counting: PolicySet,
    /// Indexes into [`PolicyBundle::rules`] of the rules in this slice.
    pub rules: Vec<usize>,
    /// Cap and rate rules of the slice (enforced and shadow).
    pub limited: Vec<usize>,
    /// The arguments the slice's rules read.
    pub arg_fields: BTreeMap<String, BTreeSet<ArgType>>,
}

/// A compiled set plus what the engine derives from it once per load.
#[derive(Debug)]
pub struct PolicyBundle {
    compiled: CompiledPolicySet,
    by_id: HashMap<String, usize>,
    /// Hash of the sources, shown in status and decision logs.
    version: String,
    cache: RwLock<HashMap<(String, String), Arc<Slice>>>,
}

impl PolicyBundle {
    pub fn new(compiled: CompiledPolicySet, version: String) -> Self {
        let by_id = compiled
            .rules()
            .iter()
            .enumerate()
            .map(|(i, r)| (r.id.clone(), i))
            .collect();
        PolicyBundle {
            compiled,
            by_id,
            version,
            cache: RwLock::new(HashMap::new()),
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
        let key = (server.to_string(), tool.to_string());
        if let Ok(cache) = self.cache.read()
            && let Some(s) = cache.get(&key)
        {
            return Arc::clone(s);
        }
        let slice = Arc::new(self.build_slice(server, tool));
        if let Ok(mut cache) = self.cache.write() {
            if cache.len() >= MAX_CACHED_SLICES {
                cache.clear();
            }
            cache.insert(key, Arc::clone(&slice));
        }
        slice
    }

    fn build_slice(&self, server: &str, tool: &str) -> Slice {
        let matches = |patterns: &Option<Vec<String>>, name: &str| {
            patterns
                .as_ref()
                .is_none_or(|ps| ps.iter().any(|p| glob_matches(p, name)))
        };
        let mut slice = Slice {
            enforced: PolicySet::new(),
            shadow: PolicySet::new(),
            counting: PolicySet::new(),
            rules: Vec::new(),
            limited: Vec::new(),
            arg_fields: BTreeMap::new(),
        };
        let enforced = self.compiled.enforced_policies();
        if let Some(p) = enforced.policy(&PolicyId::new(DEFAULT_POLICY_ID)) {
            add(&mut slice.enforced, p);
        }
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
            if rule.limit.is_some() {
                slice.limited.push(i);
                let counting_id = PolicyId::new(format!("{}{COUNTING_SUFFIX}", rule.id));
                if let Some(p) = self.compiled.counting_policies().policy(&counting_id) {
                    add(&mut slice.counting, p);
                }
            }
            for (ptr, types) in &rule.arg_fields {
                slice
                    .arg_fields
                    .entry(ptr.clone())
                    .or_default()
                    .extend(types);
            }
        }
        slice
    }
}

fn add(set: &mut PolicySet, p: &Policy) {
    // Ids are unique in the compiled set, so adding to a fresh set cannot clash.
    let _ = set.add(p.clone());
}
