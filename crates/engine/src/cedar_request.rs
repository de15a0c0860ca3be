//! The Cedar request of one call: the entities (its user, the user's
//! groups, the tool, cached per bundle) and the context (arguments,
//! identity, counters, agent-created records) the compiled policies read.
//! Built here and only here, so the decision code in `engine` does not
//! know Cedar's entity model.

use crate::args::args_expr;
use crate::call::CallContext;
use crate::index::{CachedEntities, MAX_CACHED_ENTITY_SETS, PolicyBundle, Slice, annotation_bits};
use crate::memo::KeyInput;
use cedar_policy::{
    Context, Entities, Entity, EntityId, EntityTypeName, EntityUid, Request, RestrictedExpression,
};
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::str::FromStr;
use std::sync::{Arc, LazyLock};

fn type_name(ty: &str) -> Result<EntityTypeName, String> {
    EntityTypeName::from_str(ty).map_err(|e| e.to_string())
}

// Parsed once: parsing a type name runs Cedar's parser.
static USER_TYPE: LazyLock<Result<EntityTypeName, String>> =
    LazyLock::new(|| type_name("Warden::User"));
static GROUP_TYPE: LazyLock<Result<EntityTypeName, String>> =
    LazyLock::new(|| type_name("Warden::Group"));
static TOOL_TYPE: LazyLock<Result<EntityTypeName, String>> =
    LazyLock::new(|| type_name("Warden::Tool"));
static ACTION: LazyLock<Result<EntityUid, String>> = LazyLock::new(|| {
    Ok(EntityUid::from_type_name_and_id(
        type_name("Warden::Action")?,
        EntityId::new(warden_lang::cedar::ACTION_CALL_TOOL),
    ))
});

fn uid(ty: &LazyLock<Result<EntityTypeName, String>>, id: &str) -> Result<EntityUid, String> {
    let ty = ty.as_ref().map_err(Clone::clone)?.clone();
    Ok(EntityUid::from_type_name_and_id(ty, EntityId::new(id)))
}

/// The `Warden::Tool` entity id of a (server, tool) is `server\0tool`.
pub(crate) fn tool_uid(tool_id: &str) -> Result<EntityUid, String> {
    uid(&TOOL_TYPE, tool_id)
}

/// The entities of a call (its user, the user's groups, the tool), from the
/// bundle's cache or built now.
fn entity_set(
    bundle: &PolicyBundle,
    slice: &Slice,
    call: &CallContext,
    user: &EntityUid,
) -> Result<Arc<Entities>, String> {
    let annotations = slice.annotations_of(call.annotations);
    let bits = annotation_bits(annotations);
    let id = &call.identity;
    let mut hasher = std::hash::DefaultHasher::new();
    (&slice.server, &slice.tool, &id.user, &id.groups, bits).hash(&mut hasher);
    let key = hasher.finish();
    let same = |c: &CachedEntities| {
        c.annotations == bits
            && c.user == id.user
            && c.groups == id.groups
            && c.tool == slice.tool
            && c.server == slice.server
    };
    if let Ok(cache) = bundle.entity_cache.read()
        && let Some(c) = cache
            .by_hash
            .get(&key)
            .and_then(|v| v.iter().find(|c| same(c)))
    {
        return Ok(Arc::clone(&c.entities));
    }

    let mut groups = HashSet::with_capacity(id.groups.len());
    let mut entities = Vec::with_capacity(2 + id.groups.len());
    for g in &id.groups {
        let g = uid(&GROUP_TYPE, g)?;
        // A group listed twice must not become a duplicate entity (an error).
        if groups.insert(g.clone()) {
            entities.push(Entity::new_no_attrs(g, HashSet::new()));
        }
    }
    let user_attrs = HashMap::from([(
        "name".to_string(),
        RestrictedExpression::new_string(id.user.clone()),
    )]);
    entities.push(Entity::new(user.clone(), user_attrs, groups).map_err(|e| e.to_string())?);
    entities.push(slice.tool_entity(annotations)?);
    let entities = Arc::new(Entities::from_entities(entities, None).map_err(|e| e.to_string())?);

    if let Ok(mut cache) = bundle.entity_cache.write() {
        if cache.len >= MAX_CACHED_ENTITY_SETS {
            cache.by_hash.clear();
            cache.len = 0;
        }
        let bucket = cache.by_hash.entry(key).or_default();
        if !bucket.iter().any(same) {
            bucket.push(CachedEntities {
                server: slice.server.clone(),
                tool: slice.tool.clone(),
                user: id.user.clone(),
                groups: id.groups.clone(),
                annotations: bits,
                entities: Arc::clone(&entities),
            });
            cache.len += 1;
        }
    }
    Ok(entities)
}

/// The request of one call, built from `input` and nothing else: the
/// decision memo keys on the same input (see [`crate::memo`]), so what is
/// read here and not keyed there is a memo bug.
pub(crate) fn build_request_at(
    bundle: &PolicyBundle,
    input: &KeyInput<'_>,
) -> Result<(Request, Arc<Entities>), String> {
    let KeyInput {
        slice,
        call,
        args,
        counters,
        budgets,
        agent_created,
        labels,
        each,
        clock,
    } = *input;
    let user = uid(&USER_TYPE, &call.identity.user)?;
    let tool = slice.tool_uid.clone()?;
    let action = ACTION.as_ref().map_err(Clone::clone)?.clone();

    let entities = entity_set(bundle, slice, call, &user)?;

    let mut pairs = Vec::with_capacity(16);
    pairs.push((
        "via_agent".to_string(),
        RestrictedExpression::new_bool(call.provenance.via_agent),
    ));
    pairs.push((
        "session".to_string(),
        RestrictedExpression::new_string(call.session.clone()),
    ));
    pairs.push((
        "confirmed".to_string(),
        RestrictedExpression::new_set(
            call.confirmed
                .iter()
                .map(|c| RestrictedExpression::new_string(c.clone())),
        ),
    ));
    pairs.push(("args".to_string(), args_expr(args)));
    pairs.push((
        "counters".to_string(),
        RestrictedExpression::new_record(counters.iter().map(|(id, n)| {
            (
                id.clone(),
                RestrictedExpression::new_long(i64::try_from(*n).unwrap_or(i64::MAX)),
            )
        }))
        .map_err(|e| e.to_string())?,
    ));
    // Used + this call's amount per budget, in units of 1/10,000 (a
    // `Long`: no decimal extension value to build per call); a budget
    // left out (not measured) reads as crossed.
    pairs.push((
        "budgets".to_string(),
        RestrictedExpression::new_record(budgets.iter().map(|(id, total)| {
            (
                id.clone(),
                RestrictedExpression::new_long(i64::try_from(*total).unwrap_or(i64::MAX)),
            )
        }))
        .map_err(|e| e.to_string())?,
    ));
    let verified = &call.identity.verified;
    pairs.push((
        "verified".to_string(),
        RestrictedExpression::new_record([
            (
                "user".to_string(),
                RestrictedExpression::new_bool(verified.user),
            ),
            (
                "groups".to_string(),
                RestrictedExpression::new_bool(verified.groups),
            ),
            (
                "agent".to_string(),
                RestrictedExpression::new_bool(verified.agent),
            ),
            (
                "model".to_string(),
                RestrictedExpression::new_bool(verified.model),
            ),
        ])
        .map_err(|e| e.to_string())?,
    ));
    pairs.push((
        "agent_created".to_string(),
        RestrictedExpression::new_set(
            agent_created
                .iter()
                .map(|p| RestrictedExpression::new_string(p.clone())),
        ),
    ));
    pairs.push((
        "labels".to_string(),
        RestrictedExpression::new_set(
            labels
                .iter()
                .map(|l| RestrictedExpression::new_string(l.clone())),
        ),
    ));
    // Local day and minute per zone of the slice; a zone left out reads
    // as an unknown local time.
    pairs.push(("clock".to_string(), slice.clock.record_of(clock.to_vec())?));
    // Per quantified test: definitely and possibly true. One left out
    // reads as unknown.
    let each = each.iter().map(|r| {
        let result = RestrictedExpression::new_record([
            ("t".to_string(), RestrictedExpression::new_bool(r.t)),
            ("p".to_string(), RestrictedExpression::new_bool(r.p)),
        ]);
        result.map(|e| (r.id.clone(), e))
    });
    let each = each
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    pairs.push((
        "each".to_string(),
        RestrictedExpression::new_record(each).map_err(|e| e.to_string())?,
    ));
    let optional = [
        ("via_server", &call.provenance.via_server),
        ("agent", &call.identity.agent),
        ("model", &call.identity.model),
    ];
    for (key, value) in optional {
        if let Some(s) = value {
            pairs.push((key.to_string(), RestrictedExpression::new_string(s.clone())));
        }
    }
    let context = Context::from_pairs(pairs).map_err(|e| e.to_string())?;
    // The request is built to the compiled contract; schema validation per
    // call would cost more than the decision. Any mismatch surfaces as an
    // evaluation error, which denies.
    let request = Request::new(user, action, tool, context, None).map_err(|e| e.to_string())?;
    Ok((request, entities))
}
