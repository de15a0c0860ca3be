//! The memo key of one call: an exact byte encoding of everything the
//! call's Cedar request holds that a policy of its slice can read (see
//! [`crate::memo`] for why that is complete). Every part is written with
//! its length, so two different inputs never encode the same bytes.

use super::reads::{LimitReads, SliceReads};
use crate::args::Projected;
use crate::call::CallContext;
use crate::clock_context::LocalTime;
use crate::elements::EachResult;
use crate::index::{Slice, annotation_bits};

/// Longest key kept; a call whose key is longer is decided without the
/// memo (long argument strings, many groups), so no entry is large.
pub(crate) const MAX_KEY_BYTES: usize = 2048;

/// A part of the key the tests can leave out, to show that a key missing
/// it is caught (see `crate::memo::tests`); never left out otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Part {
    User,
    Groups,
    Annotations,
    ViaAgent,
    Args,
    Counters,
    Budgets,
    Clock,
    Confirmed,
}

#[cfg(test)]
thread_local! {
    /// The part left out of keys built on this thread (tests only).
    pub(crate) static OMIT: std::cell::Cell<Option<Part>> = const { std::cell::Cell::new(None) };
}

#[cfg(test)]
fn omitted(part: Part) -> bool {
    OMIT.with(|o| o.get()) == Some(part)
}
#[cfg(not(test))]
#[inline(always)]
fn omitted(_: Part) -> bool {
    false
}

/// What a key is built from: the call and what the engine measured and
/// looked up for it before building its request.
#[derive(Clone, Copy)]
pub(crate) struct KeyInput<'a> {
    pub slice: &'a Slice,
    pub call: &'a CallContext,
    pub args: &'a [(&'a str, Projected<'a>)],
    pub counters: &'a [(String, u64)],
    pub budgets: &'a [(String, u64)],
    pub agent_created: &'a [String],
    /// The session's labels among those the slice's rules read, sorted.
    pub labels: &'a [String],
    pub each: &'a [EachResult],
    pub clock: &'a [Option<LocalTime>],
}

struct Writer(Vec<u8>);

impl Writer {
    fn tag(&mut self, t: u8) {
        self.0.push(t);
    }
    fn len(&mut self, n: usize) {
        self.0.extend_from_slice(&(n as u64).to_le_bytes());
    }
    fn bytes(&mut self, b: &[u8]) {
        self.len(b.len());
        self.0.extend_from_slice(b);
    }
    fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }
    fn opt_str(&mut self, s: Option<&str>) {
        match s {
            None => self.tag(0),
            Some(s) => {
                self.tag(1);
                self.str(s);
            }
        }
    }
    fn u64(&mut self, n: u64) {
        self.0.extend_from_slice(&n.to_le_bytes());
    }
    fn opt_u64(&mut self, n: Option<usize>) {
        match n {
            None => self.tag(0),
            Some(n) => {
                self.tag(1);
                self.u64(n as u64);
            }
        }
    }
    fn strs(&mut self, items: &[String]) {
        self.len(items.len());
        for s in items {
            self.str(s);
        }
    }
}

/// The key of `input`, or `None` when it would be longer than
/// [`MAX_KEY_BYTES`].
pub(crate) fn key(input: &KeyInput<'_>) -> Option<Vec<u8>> {
    let reads: &SliceReads = &input.slice.reads;
    let call = input.call;
    let mut w = Writer(Vec::with_capacity(256));
    // The slice: its policies, and the tool entity's name and server.
    w.str(&input.slice.server);
    w.str(&input.slice.tool);
    // The principal (`principal == User::"x"`, `principal.name`,
    // `principal in Group::"g"`) and the tool's annotations.
    if !omitted(Part::User) {
        w.str(&call.identity.user);
    }
    if !omitted(Part::Groups) {
        w.strs(&call.identity.groups);
    }
    if !omitted(Part::Annotations) {
        w.tag(annotation_bits(input.slice.annotations_of(call.annotations)) as u8);
    }
    // The context, attribute by attribute, each only when read.
    let read = |name: &str| reads.reads(name);
    if read("via_agent") && !omitted(Part::ViaAgent) {
        w.tag(b'a');
        w.tag(u8::from(call.provenance.via_agent));
    }
    if read("via_server") {
        w.tag(b'v');
        w.opt_str(call.provenance.via_server.as_deref());
    }
    if read("agent") {
        w.tag(b'g');
        w.opt_str(call.identity.agent.as_deref());
    }
    if read("model") {
        w.tag(b'm');
        w.opt_str(call.identity.model.as_deref());
    }
    if read("session") {
        w.tag(b's');
        w.str(&call.session);
    }
    if read("confirmed") && !omitted(Part::Confirmed) {
        w.tag(b'c');
        w.strs(&call.confirmed);
    }
    if read("verified") {
        let v = call.identity.verified;
        w.tag(b'V');
        w.tag(
            u8::from(v.user)
                | u8::from(v.groups) << 1
                | u8::from(v.agent) << 2
                | u8::from(v.model) << 3,
        );
    }
    if read("args") && !omitted(Part::Args) {
        w.tag(b'A');
        w.len(input.args.len());
        for (ptr, p) in input.args {
            w.str(ptr);
            projected(&mut w, p);
        }
    }
    if read("counters") && !omitted(Part::Counters) {
        w.tag(b'C');
        limits(&mut w, &reads.counters, input.counters);
    }
    if read("budgets") && !omitted(Part::Budgets) {
        w.tag(b'B');
        limits(&mut w, &reads.budgets, input.budgets);
    }
    if read("agent_created") {
        w.tag(b'r');
        w.strs(input.agent_created);
    }
    if read("labels") {
        w.tag(b'l');
        w.strs(input.labels);
    }
    if read("each") {
        w.tag(b'e');
        w.len(input.each.len());
        for e in input.each {
            w.str(&e.id);
            w.tag(u8::from(e.t) | u8::from(e.p) << 1);
        }
    }
    if read("clock") && !omitted(Part::Clock) {
        w.tag(b'k');
        w.len(input.clock.len());
        for local in input.clock {
            match local {
                None => w.tag(0),
                Some(t) => {
                    w.tag(t.day);
                    w.0.extend_from_slice(&t.minute.to_le_bytes());
                }
            }
        }
    }
    (w.0.len() <= MAX_KEY_BYTES).then_some(w.0)
}

fn projected(w: &mut Writer, p: &Projected<'_>) {
    w.tag(u8::from(p.present) | u8::from(p.null) << 1);
    match &p.path {
        None => w.tag(0),
        Some((normal, folded)) => {
            w.tag(1);
            w.str(normal);
            w.str(folded);
        }
    }
    w.opt_str(p.istr.as_deref());
    w.opt_u64(p.len);
    w.opt_u64(p.size);
    w.opt_str(p.str_);
    match p.bool_ {
        None => w.tag(0),
        Some(b) => w.tag(1 + u8::from(b)),
    }
    w.opt_str(p.num.as_deref());
}

/// A record of limit entries: each entry present, by id, with the outcome
/// of every comparison a policy makes on it, or its exact value when the
/// record is read in a way that is not only comparisons with constants.
/// An entry left out (not measured) is absent from the sequence.
fn limits(w: &mut Writer, reads: &LimitReads, entries: &[(String, u64)]) {
    w.len(entries.len());
    for (id, value) in entries {
        w.str(id);
        // As the request holds it (`build_request_at`).
        let value = i64::try_from(*value).unwrap_or(i64::MAX);
        if reads.exact {
            w.u64(value as u64);
        } else if let Some(cmps) = reads.compared.get(id) {
            for c in cmps {
                w.tag(u8::from(c.holds(value)));
            }
        }
    }
}
