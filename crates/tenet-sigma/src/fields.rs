//! Field mappings: how a Sigma field name is read from each source's events.
//!
//! The mapping is applied on the event side rather than by rewriting rules: a rule is loaded
//! once and works on every source whose events carry its fields, and a correlation's
//! `group-by` fields read through the same mapping as the detections.
//!
//! Lookup order for a field name:
//! 1. the event's own field (dot paths descend into objects and fan out over arrays);
//! 2. the source's aliases: common Sigma names onto the source's paths (Tenet's OCSF shape);
//! 3. for Tenet events, the Tenet-native field under `unmapped` (`route`, `reasons`, ...);
//! 4. for CloudTrail, Kubernetes audit and Okta, the same path without regard to case.
//!
//! Step 4 is case folding decided on purpose: the vendors' JSON uses camelCase, SigmaHQ's rules
//! mostly do too, but exporters and some rules differ (Panther lowercases Okta keys,
//! `eventtype` vs `eventType`), and none of these schemas has two fields that differ only in
//! case. Folding applies only after an exact miss; at each level an exact key is followed in
//! preference to one in another case. It is ASCII folding for ASCII field names (all of
//! SigmaHQ's), Unicode lowercasing otherwise. Windows and unknown events are read exactly, as
//! Sigma's Windows taxonomy is case-exact.
//!
//! Steps 2 to 4 run once per event, before evaluation, for the fields the loaded rules read
//! (a [`FieldPlan`]) whose top-level key the event lacks exactly: what they find is laid over
//! the event as extra top-level fields named as the rules name them. rsigma then reads a plain
//! event, and its candidate index, which probes only the fields under an event's top-level
//! keys, still sees every field a rule can read. Finding the top-level keys in another case
//! costs one pass over the event's top-level keys; an event whose top-level keys are all
//! spelled as the rules spell them gets nothing laid over it. A key in another case below a
//! top-level key the event has exactly is found when the field is read: the exact lookup goes
//! on without regard to case from the level where it missed (the candidate index reaches such
//! a field through its top-level key). Where an event holds one key in two different non-exact
//! spellings, which one is read is unspecified (none of these schemas has such keys).
//!
//! Each field is looked up once per event: rsigma asks for a field from its candidate index
//! and again from every candidate rule that reads it, and the answers are kept for the event.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::BTreeSet;

use ahash::AHashMap as HashMap;

use rsigma_eval::event::{Event, EventValue, JsonEvent};
use rsigma_parser::fieldpath::unescape_brackets;
use rsigma_parser::{
    CorrelationCondition, CorrelationRule, Detection, Detections, Modifier, SigmaValue,
};
use serde_json::{Map, Value};

use crate::paths::{
    MAX_DEPTH, collected, lookup, lookup_folded, lookup_with, walk, with_lowercase,
};
use crate::source::Source;

/// A field name the rules read.
#[derive(Debug, Clone)]
struct PlanField {
    /// As the rules spell it, which is how rsigma asks for it.
    name: String,
    /// As an event key would spell it (`\[` and `\]` unescaped): the key rsigma's candidate
    /// index files the field under.
    key: String,
    /// The dot-separated segments of `name`.
    segments: Vec<String>,
}

impl PlanField {
    fn new(name: &str) -> PlanField {
        PlanField {
            name: name.to_owned(),
            key: unescape_brackets(name).into_owned(),
            segments: name.split('.').map(str::to_owned).collect(),
        }
    }
}

/// The first segment of a field path, as the lookup order above compares it.
fn first_segment(path: &str) -> &str {
    path.split(['.', '[']).next().unwrap_or(path)
}

/// The first segments of the rules' field paths (and each dotted path whole), for finding the
/// event's top-level keys that differ in case from what the rules read.
#[derive(Debug, Clone)]
struct TopLevel {
    /// Lowercased segment → segment.
    children: HashMap<String, usize>,
    /// Every spelling the rules use → segment, so that a key spelled as the rules spell it
    /// needs no lowercasing.
    spelled: HashMap<String, usize>,
    /// A bit per (length, first and last byte lowercased) of the children: a key whose bit is
    /// clear is no child in any case, which settles most keys without a lookup.
    shapes: Box<[u64; SHAPE_WORDS]>,
}

/// Words of [`TopLevel::shapes`] (4,096 bits).
const SHAPE_WORDS: usize = 64;

impl Default for TopLevel {
    fn default() -> Self {
        TopLevel {
            children: HashMap::default(),
            spelled: HashMap::default(),
            shapes: Box::new([0; SHAPE_WORDS]),
        }
    }
}

impl TopLevel {
    /// The bit of `key`'s shape: its length, first and last byte, ASCII-lowercased. Keys
    /// that are not ASCII all share bit 0, as their lowercase form may differ in length.
    fn shape(key: &str) -> (usize, u64) {
        let bytes = key.as_bytes();
        let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else {
            return (0, 1);
        };
        if !key.is_ascii() {
            return (0, 1);
        }
        let h = (bytes.len() & 0x3f) << 6
            ^ usize::from(first.to_ascii_lowercase() & 0x3f)
            ^ usize::from(last.to_ascii_lowercase() & 0x3f) << 3;
        let bit = h % (SHAPE_WORDS * 64);
        (bit / 64, 1u64 << (bit % 64))
    }

    fn may_hold(&self, key: &str) -> bool {
        let (word, mask) = TopLevel::shape(key);
        self.shapes.get(word).is_some_and(|w| w & mask != 0)
    }

    fn mark(&mut self, lower: &str) {
        let (word, mask) = TopLevel::shape(lower);
        if let Some(w) = self.shapes.get_mut(word) {
            *w |= mask;
        }
        // A non-ASCII spelling may fold to ASCII and back: keep the shared bit as well.
        if let Some(w) = self.shapes.get_mut(0) {
            *w |= 1;
        }
    }
}

/// A first segment of the rules' paths, or a dotted path whole, in [`TopLevel`].
#[derive(Debug, Clone, Default)]
struct Segment {
    /// The spellings the rules use for it; one, unless rules disagree on its case.
    spellings: Vec<String>,
    /// The fields whose path starts with this segment, or is it (indexes into `fields`).
    fields: Vec<usize>,
    /// Whether this is a whole dotted path (a flat key).
    whole: bool,
}

/// The fields a rule set reads, prepared for one source: which may be answered by an alias,
/// by a Tenet-native field, or by case folding. Built once per engine and source.
#[derive(Debug, Clone, Default)]
pub(crate) struct FieldPlan {
    fields: Vec<PlanField>,
    /// Fields with aliases on this source, with their alias paths in order.
    aliased: Vec<(usize, &'static [&'static str])>,
    /// Tenet: first segment → the fields under it, with their `unmapped.` path.
    unmapped: HashMap<String, Vec<(usize, String)>>,
    /// Case-folding sources: the rules' first segments and dotted paths; `None` for sources
    /// read exactly.
    top: Option<TopLevel>,
    segments: Vec<Segment>,
    /// Case-folding sources: fields with `[`/`\` path syntax, checked on every event.
    bracketed: Vec<usize>,
}

impl FieldPlan {
    /// The plan for `fields` (as [`detection_fields`] and [`correlation_fields`] collect
    /// them) on `source`.
    pub(crate) fn new(source: Source, fields: &BTreeSet<String>) -> FieldPlan {
        let mut plan = FieldPlan::default();
        let folds = matches!(
            source,
            Source::CloudTrail | Source::KubernetesAudit | Source::Okta
        );
        if folds {
            plan.top = Some(TopLevel::default());
        }
        for name in fields {
            let idx = plan.fields.len();
            plan.fields.push(PlanField::new(name));
            let targets = aliases(source, name);
            if !targets.is_empty() {
                plan.aliased.push((idx, targets));
            }
            if source == Source::Tenet {
                plan.unmapped
                    .entry(first_segment(name).to_owned())
                    .or_default()
                    .push((idx, format!("unmapped.{name}")));
            }
            if folds {
                plan.add_path(idx, name);
            }
        }
        plan
    }

    /// Whether the source's fields are read without regard to case after an exact miss.
    fn folds(&self) -> bool {
        self.top.is_some()
    }

    /// Files `name` (field `idx`) under its first segment, and whole when it is dotted.
    fn add_path(&mut self, idx: usize, name: &str) {
        if name.contains(['[', '\\']) {
            self.bracketed.push(idx);
            return;
        }
        let first = name.split('.').next().unwrap_or(name);
        let seg = self.segment(first);
        if let Some(s) = self.segments.get_mut(seg) {
            s.fields.push(idx);
        }
        if name.contains('.') {
            let seg = self.segment(name);
            if let Some(s) = self.segments.get_mut(seg) {
                s.fields.push(idx);
                s.whole = true;
            }
        }
    }

    /// The top-level segment `part`, added if new.
    fn segment(&mut self, part: &str) -> usize {
        let lower = part.to_lowercase();
        let next = self.segments.len();
        let Some(top) = self.top.as_mut() else {
            return next;
        };
        top.mark(&lower);
        let seg = *top.children.entry(lower).or_insert(next);
        top.spelled.entry(part.to_owned()).or_insert(seg);
        if seg == next {
            self.segments.push(Segment::default());
        }
        if let Some(s) = self.segments.get_mut(seg)
            && !s.spellings.iter().any(|p| p == part)
        {
            s.spellings.push(part.to_owned());
        }
        seg
    }

    /// Steps 2 to 4 of the lookup order, ahead of evaluation, for every planned field the
    /// event lacks whose top-level key differs in case (or has an alias, or a Tenet-native
    /// field). A key in another case further down is found when the field is read (see
    /// [`lookup_with`]).
    ///
    /// Returns which of the event's top-level keys the rules spell exactly, as [`Spelled`].
    fn resolve<'a>(&'a self, event: &'a Value, out: &mut Vec<Mapped<'a>>) -> Spelled {
        let Some(root) = event.as_object() else {
            return Spelled::All;
        };
        for (idx, targets) in &self.aliased {
            if let Some(field) = self.fields.get(*idx)
                && lookup(event, &field.name).is_none()
                && let Some(v) = targets.iter().find_map(|t| lookup(event, t))
            {
                out.push(Mapped::new(field, v));
            }
        }

        if let Some(native) = root.get("unmapped").and_then(Value::as_object)
            && !self.unmapped.is_empty()
        {
            for key in native.keys() {
                for (idx, path) in self.unmapped.get(key).into_iter().flatten() {
                    let Some(field) = self.fields.get(*idx) else {
                        continue;
                    };
                    if is_mapped(out, field) || lookup(event, &field.name).is_some() {
                        continue;
                    }
                    if let Some(v) = lookup(event, path) {
                        out.push(Mapped::new(field, v));
                    }
                }
            }
        }

        let Some(top) = &self.top else {
            return Spelled::All;
        };
        let mut differing = Vec::new();
        let spelled = self.top_keys_in_other_case(top, root, &mut differing);
        differing.extend(self.bracketed.iter().map(|idx| (*idx, None)));
        for (idx, found) in differing {
            let Some(field) = self.fields.get(idx) else {
                continue;
            };
            if is_mapped(out, field) {
                continue;
            }
            let value = match found {
                Some((below, whole)) => {
                    let rest = match (whole, field.segments.split_first()) {
                        (false, Some((_, rest))) => rest,
                        _ => &[],
                    };
                    let mut values = Vec::new();
                    let mut exact = false;
                    walk(below, rest, true, false, MAX_DEPTH, &mut values, &mut exact);
                    collected(values)
                }
                None => lookup_folded(event, root, &field.name),
            };
            if let Some(v) = value {
                out.push(Mapped::new(field, v));
            }
        }
        // The candidate index also files a field with `[`/`\` syntax under the array it
        // indexes, which the plan does not work out.
        if self.bracketed.is_empty() {
            spelled
        } else {
            Spelled::All
        }
    }

    /// The fields under every top-level key of `root` whose case differs from a rule's
    /// spelling. Keys the rules spell the same way, and keys no rule reads, cost a length
    /// test or a lookup.
    ///
    /// A key in another case, with no key of the rules' spelling beside it, comes with its
    /// value (and whether it is a whole dotted path): the fields under it are read from
    /// there. Otherwise the field is read from the top without regard to case.
    ///
    /// Returns the keys spelled as a rule spells them.
    fn top_keys_in_other_case<'a>(
        &self,
        top: &TopLevel,
        root: &'a Map<String, Value>,
        out: &mut Vec<(usize, Found<'a>)>,
    ) -> Spelled {
        let mut exact = 0u64;
        for (position, (key, child)) in root.iter().enumerate() {
            if !top.may_hold(key) {
                continue;
            }
            let (seg, spelled) = match top.spelled.get(key.as_str()) {
                Some(seg) => {
                    exact |= Spelled::bit(position).unwrap_or(0);
                    (Some(*seg), true)
                }
                None => (with_lowercase(key, |k| top.children.get(k).copied()), false),
            };
            let Some(seg) = seg.and_then(|s| self.segments.get(s)) else {
                continue;
            };
            // Spelled as the rules spell it, and they all spell it so: nothing to lay over.
            if spelled && seg.spellings.len() == 1 {
                continue;
            }
            let alone = !seg.spellings.iter().any(|p| root.contains_key(p));
            let found = alone.then_some((child, seg.whole));
            out.extend(seg.fields.iter().map(|f| (*f, found)));
        }
        Spelled::Keys(exact)
    }
}

/// Which of an event's top-level keys some rule spells exactly. These are the only keys
/// rsigma's candidate index can file a field under (a field's first segment, or its whole
/// name), so the others need not be shown to it: each one it is shown costs it a hash lookup.
#[derive(Debug, Clone, Copy)]
enum Spelled {
    /// Every key counts.
    All,
    /// A bit per key by its position in the event's map; keys past the 64th all count.
    Keys(u64),
}

impl Spelled {
    /// The bit of the key at `position`, when it has one.
    fn bit(position: usize) -> Option<u64> {
        u32::try_from(position)
            .ok()
            .and_then(|p| 1u64.checked_shl(p))
    }

    fn counts(self, position: usize) -> bool {
        match self {
            Spelled::All => true,
            Spelled::Keys(mask) => Spelled::bit(position).is_none_or(|bit| mask & bit != 0),
        }
    }
}

/// Where a field in another case was found: the value of its top-level key and whether that
/// key is the whole dotted path, or `None` to read it from the top.
type Found<'a> = Option<(&'a Value, bool)>;

/// A planned field the event lacks, and the value the mapping found for it.
#[derive(Debug)]
struct Mapped<'a> {
    field: &'a PlanField,
    value: EventValue<'a>,
}

impl<'a> Mapped<'a> {
    fn new(field: &'a PlanField, value: EventValue<'a>) -> Self {
        Mapped { field, value }
    }
}

/// Whether `field` has a value in `mapped` already (a plan holds each field once).
fn is_mapped(mapped: &[Mapped<'_>], field: &PlanField) -> bool {
    mapped.iter().any(|m| std::ptr::eq(m.field, field))
}

/// Every field name the rules of `detections` read, including `|fieldref` targets, into
/// `out`. Fields inside an array block (`field[any]:`) are read from the array's members, not
/// from the event, so only the array's own path is taken.
pub(crate) fn detection_fields(detections: &Detections, out: &mut BTreeSet<String>) {
    for detection in detections.named.values() {
        collect_detection(detection, out);
    }
}

fn collect_detection(detection: &Detection, out: &mut BTreeSet<String>) {
    match detection {
        Detection::AllOf(items) => {
            for item in items {
                let Some(name) = &item.field.name else {
                    continue;
                };
                out.insert(name.clone());
                if item.field.modifiers.contains(&Modifier::FieldRef) {
                    for value in &item.values {
                        if let SigmaValue::String(s) = value
                            && let Some(other) = s.as_plain()
                        {
                            out.insert(other);
                        }
                    }
                }
            }
        }
        Detection::AnyOf(subs) | Detection::And(subs) => {
            for sub in subs {
                collect_detection(sub, out);
            }
        }
        Detection::ArrayMatch { field, .. } => {
            out.insert(field.clone());
        }
        Detection::Conditional { named, .. } => {
            for sub in named.values() {
                collect_detection(sub, out);
            }
        }
        Detection::Keywords(_) => {}
    }
}

/// The event fields a correlation reads: `group-by`, its aliases' per-rule fields, and the
/// condition's `field`.
pub(crate) fn correlation_fields(corr: &CorrelationRule, out: &mut BTreeSet<String>) {
    out.extend(corr.group_by.iter().cloned());
    for alias in &corr.aliases {
        out.extend(alias.mapping.values().cloned());
    }
    if let CorrelationCondition::Threshold {
        field: Some(fields),
        ..
    } = &corr.condition
    {
        out.extend(fields.iter().cloned());
    }
}

/// An event as rules see it: the raw JSON, plus the fields its source's mapping supplies.
pub(crate) struct SourceEvent<'a> {
    raw: JsonEvent<'a>,
    /// The event, when borrowed (all sources but Windows, whose records are flattened into
    /// `raw`): fields are read from it without rsigma's per-lookup allocations.
    borrowed: Option<&'a Value>,
    /// Sorted by field name.
    mapped: Vec<Mapped<'a>>,
    /// The top-level keys shown to rsigma's candidate index, besides the mapped fields.
    spelled: Spelled,
    plan: &'a FieldPlan,
    /// The fields read so far and what was found, absent ones included.
    read: RefCell<Read<'a>>,
}

/// The fields an event was asked for, so that each is looked up once per event. rsigma asks
/// for a field from its candidate index and again from every candidate rule that reads it
/// (about 15 reads of 6 distinct fields per event with SigmaHQ's cloud rules), and a lookup
/// costs a search of the event's map per path segment.
struct Read<'a> {
    /// The names read, one after the other.
    names: String,
    /// Per name: where it ends in `names`, its length, and the value found.
    entries: Vec<(usize, usize, Option<EventValue<'a>>)>,
}

impl Default for Read<'_> {
    /// Room for the usual number of fields, so that reading them does not grow the buffers,
    /// and small enough for the allocator's per-thread cache (under 1 KiB each).
    fn default() -> Self {
        Read {
            names: String::with_capacity(256),
            entries: Vec::with_capacity(16),
        }
    }
}

impl<'a> Read<'a> {
    fn get(&self, path: &str) -> Option<&Option<EventValue<'a>>> {
        self.entries
            .iter()
            .find(|(end, len, _)| {
                *len == path.len()
                    && end
                        .checked_sub(*len)
                        .and_then(|start| self.names.get(start..*end))
                        == Some(path)
            })
            .map(|(_, _, value)| value)
    }

    fn insert(&mut self, path: &str, value: Option<EventValue<'a>>) {
        self.names.push_str(path);
        self.entries.push((self.names.len(), path.len(), value));
    }
}

impl<'a> SourceEvent<'a> {
    /// Wraps `event` from `source`, mapping the fields of `plan` (the plan built for
    /// `source`). Windows records are flattened (`Event.EventData.*` and the useful
    /// `Event.System` fields at the top level, as Sigma's Windows taxonomy names them).
    pub(crate) fn new(event: &'a Value, source: Source, plan: &'a FieldPlan) -> Self {
        if source == Source::Windows {
            return SourceEvent {
                raw: JsonEvent::owned(flatten_windows(event)),
                borrowed: None,
                mapped: Vec::new(),
                spelled: Spelled::All,
                plan,
                read: RefCell::default(),
            };
        }
        let mut mapped = Vec::new();
        let spelled = plan.resolve(event, &mut mapped);
        mapped.sort_by(|a, b| a.field.name.cmp(&b.field.name));
        SourceEvent {
            raw: JsonEvent::borrow(event),
            borrowed: Some(event),
            mapped,
            spelled,
            plan,
            read: RefCell::default(),
        }
    }

    /// The value of `path` in a borrowed event: its own field, else what the mapping found
    /// ahead of evaluation, else a key in another case below a top-level key the event has
    /// exactly. With nothing mapped (an event whose top-level keys are spelled as the rules
    /// spell them) that is one walk down the path.
    fn find(&self, event: &'a Value, path: &str) -> Option<EventValue<'a>> {
        let fold = self.plan.folds();
        if self.mapped.is_empty() {
            return lookup_with(event, path, fold);
        }
        if let Some(own) = lookup(event, path) {
            return Some(own);
        }
        if let Ok(i) = self
            .mapped
            .binary_search_by(|m| m.field.name.as_str().cmp(path))
        {
            return self.mapped.get(i).map(|m| m.value.clone());
        }
        if fold {
            lookup_with(event, path, true)
        } else {
            None
        }
    }
}

impl Event for SourceEvent<'_> {
    fn get_field(&self, path: &str) -> Option<EventValue<'_>> {
        // A flattened Windows record is read by rsigma itself, once per call.
        let Some(event) = self.borrowed else {
            return self.raw.get_field(path);
        };
        if let Ok(read) = self.read.try_borrow()
            && let Some(value) = read.get(path)
        {
            return value.clone();
        }
        let value = self.find(event, path);
        if let Ok(mut read) = self.read.try_borrow_mut() {
            read.insert(path, value.clone());
        }
        value
    }

    fn any_string_value(&self, pred: &dyn Fn(&str) -> bool) -> bool {
        self.raw.any_string_value(pred)
    }

    fn all_string_values(&self) -> Vec<Cow<'_, str>> {
        self.raw.all_string_values()
    }

    fn visit_string_values(&self, visit: &mut dyn FnMut(&str)) {
        self.raw.visit_string_values(visit);
    }

    fn to_json(&self) -> Value {
        self.raw.to_json()
    }

    // The mapped fields are reported as top-level keys: rsigma's candidate index files a
    // field under its full (unescaped) name as well as its root, so it probes every mapped
    // field, and otherwise only the fields under the event's own keys. Of those, only the
    // keys a rule spells are reported where the plan knows them (see `Spelled`).
    fn top_level_keys(&self) -> Option<Vec<Cow<'_, str>>> {
        let mut keys = match (self.borrowed.and_then(Value::as_object), self.spelled) {
            (Some(root), Spelled::Keys(_)) => root
                .keys()
                .enumerate()
                .filter(|(position, _)| self.spelled.counts(*position))
                .map(|(_, key)| Cow::Borrowed(key.as_str()))
                .collect(),
            _ => self.raw.top_level_keys()?,
        };
        keys.extend(
            self.mapped
                .iter()
                .map(|m| Cow::Borrowed(m.field.key.as_str())),
        );
        Some(keys)
    }

    fn visit_top_level_keys(&self, visit: &mut dyn FnMut(&str)) -> bool {
        match (self.borrowed.and_then(Value::as_object), self.spelled) {
            (Some(root), Spelled::Keys(_)) => {
                for (position, key) in root.keys().enumerate() {
                    if self.spelled.counts(position) {
                        visit(key);
                    }
                }
            }
            _ => {
                if !self.raw.visit_top_level_keys(visit) {
                    return false;
                }
            }
        }
        for m in &self.mapped {
            visit(&m.field.key);
        }
        true
    }
}

/// Sigma field names for Tenet's OCSF events, tried in order. Proxy names (`c-ip`, `cs-method`,
/// `c-uri`, `cs-host`, `sc-status`) follow Sigma's proxy taxonomy so that SigmaHQ's generic
/// proxy rules read Tenet's gateway events.
fn aliases(source: Source, field: &str) -> &'static [&'static str] {
    match source {
        Source::Tenet => tenet_aliases(field),
        Source::CloudTrail => match field {
            "SourceIp" | "src_ip" | "ClientIp" => &["sourceIPAddress"],
            "User" | "user" => &["userIdentity.userName", "userIdentity.arn"],
            _ => &[],
        },
        Source::KubernetesAudit => match field {
            "User" | "user" => &["user.username"],
            "SourceIp" | "src_ip" => &["sourceIPs"],
            _ => &[],
        },
        Source::Okta => match field {
            "User" | "user" => &["actor.alternateId"],
            "SourceIp" | "src_ip" => &["client.ipAddress"],
            _ => &[],
        },
        Source::Windows | Source::Unknown => &[],
    }
}

fn tenet_aliases(field: &str) -> &'static [&'static str] {
    match field {
        "c-ip" | "SourceIp" | "src_ip" | "ClientIp" | "ClientIP" | "IpAddress" => {
            &["src_endpoint.ip"]
        }
        "c-port" | "SourcePort" | "src_port" => &["src_endpoint.port"],
        "cs-method" | "method" | "http_method" | "HttpMethod" => &["http_request.http_method"],
        "c-uri" | "c-uri-stem" | "uri" | "url" | "uri_path" | "UrlPath" => {
            &["http_request.url.path"]
        }
        "cs-host" | "Host" | "dest_host" | "hostname" => &["http_request.url.hostname"],
        "sc-status" | "status_code" | "StatusCode" => &["http_response.code"],
        "cs-version" | "http_version" => &["http_request.version"],
        "User" | "user" | "principal" | "SubjectUserName" => {
            &["actor.app_name", "unmapped.actor", "unmapped.spiffe_id"]
        }
        "request_id" => &["http_request.uid", "unmapped.request_id"],
        "operation" | "EventName" | "eventName" => &["api.operation"],
        "tls_version" => &["tls.version"],
        "client_serial" => &["tls.certificate.serial_number"],
        "reason" | "detail" => &["status_detail", "unmapped.detail"],
        _ => &[],
    }
}

/// `Event.EventData.*` and the `Event.System` fields Sigma names, at the top level.
fn flatten_windows(event: &Value) -> Value {
    let mut out = Map::new();
    let system = event.pointer("/Event/System");
    if let Some(system) = system.and_then(Value::as_object) {
        for (key, value) in system {
            if !value.is_object() {
                out.insert(key.clone(), value.clone());
            }
        }
        if let Some(id) = system
            .get("EventID")
            .and_then(crate::source::event_id_number)
        {
            out.insert("EventID".into(), Value::from(id));
        }
        if let Some(name) = event.pointer("/Event/System/Provider/#attributes/Name") {
            out.insert("Provider_Name".into(), name.clone());
        }
        if let Some(t) = event.pointer("/Event/System/TimeCreated/#attributes/SystemTime") {
            out.insert("TimeCreated".into(), t.clone());
        }
    }
    let data = event
        .pointer("/Event/EventData")
        .or_else(|| event.pointer("/Event/UserData"));
    if let Some(data) = data.and_then(Value::as_object) {
        for (key, value) in data {
            if key == "Data" {
                named_data(value, &mut out);
            } else if key != "#attributes" {
                out.insert(key.clone(), value.clone());
            }
        }
    }
    Value::Object(out)
}

/// `Data: [{"#attributes": {"Name": "X"}, "#text": "v"}, ...]`, the other evtx dump shape.
fn named_data(value: &Value, out: &mut Map<String, Value>) {
    let items = match value {
        Value::Array(items) => items.as_slice(),
        other => std::slice::from_ref(other),
    };
    for item in items {
        if let Some(name) = item.pointer("/#attributes/Name").and_then(Value::as_str) {
            let text = item.get("#text").cloned().unwrap_or(Value::Null);
            out.insert(name.to_owned(), text);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn plan(source: Source, fields: &[&str]) -> FieldPlan {
        let fields = fields.iter().map(|f| (*f).to_owned()).collect();
        FieldPlan::new(source, &fields)
    }

    fn text(event: &SourceEvent<'_>, field: &str) -> Option<String> {
        event
            .get_field(field)
            .and_then(|v| v.as_str().map(|s| s.into_owned()))
    }

    fn keys(event: &SourceEvent<'_>) -> Vec<String> {
        let mut out = Vec::new();
        assert!(event.visit_top_level_keys(&mut |k| out.push(k.to_owned())));
        out
    }

    #[test]
    fn okta_fields_fold_case_both_ways() {
        let p = plan(
            Source::Okta,
            &[
                "eventType",
                "debugContext.debugData.requestUri",
                "eventtype",
                "nosuch",
            ],
        );
        let lower = json!({"eventtype": "user.mfa.factor.deactivate",
                           "debugcontext": {"debugdata": {"requesturi": "/admin"}}});
        let e = SourceEvent::new(&lower, Source::Okta, &p);
        assert_eq!(
            text(&e, "eventType").as_deref(),
            Some("user.mfa.factor.deactivate")
        );
        assert_eq!(
            text(&e, "debugContext.debugData.requestUri").as_deref(),
            Some("/admin")
        );
        // The mapped names are visible to rsigma's candidate index.
        let k = keys(&e);
        assert!(k.contains(&"eventType".to_owned()), "{k:?}");
        assert!(k.contains(&"debugContext.debugData.requestUri".to_owned()));
        let camel = json!({"eventType": "x", "displayMessage": "y"});
        let e = SourceEvent::new(&camel, Source::Okta, &p);
        assert_eq!(text(&e, "eventtype").as_deref(), Some("x"));
        assert_eq!(text(&e, "eventType").as_deref(), Some("x"));
        assert_eq!(text(&e, "nosuch"), None);
        // Nothing to map when the event already has the exact field; `displayMessage`, which
        // no rule reads, is not shown to the candidate index. (Key order follows serde_json's
        // map, which a feature elsewhere in a build may change: compare sorted.)
        let mut k = keys(&e);
        k.sort();
        assert_eq!(k, vec!["eventType", "eventtype"]);
    }

    #[test]
    fn nested_case_differences_fold_under_an_exact_root() {
        let p = plan(Source::CloudTrail, &["requestParameters.bucketName"]);
        let v = json!({"eventSource": "s3.amazonaws.com",
                       "requestParameters": {"BucketName": "b"}});
        let e = SourceEvent::new(&v, Source::CloudTrail, &p);
        assert_eq!(
            text(&e, "requestParameters.bucketName").as_deref(),
            Some("b")
        );
    }

    #[test]
    fn a_field_read_again_gives_what_it_gave_first() {
        let p = plan(
            Source::CloudTrail,
            &["a.b1", "a.b2", "a.B3", "list.k", "nosuch"],
        );
        let v = json!({"a": {"b1": "one", "b2": "two", "b3": "three"},
                       "list": [{"k": "x"}, {"K": "y"}]});
        let e = SourceEvent::new(&v, Source::CloudTrail, &p);
        for _ in 0..2 {
            // Same length, different fields: each keeps its own value.
            assert_eq!(text(&e, "a.b1").as_deref(), Some("one"));
            assert_eq!(text(&e, "a.b2").as_deref(), Some("two"));
            assert_eq!(text(&e, "a.B3").as_deref(), Some("three"));
            assert_eq!(e.get_field("nosuch"), None);
            // An exact key in one member: the other member's key in another case is not read.
            assert_eq!(text(&e, "list.k").as_deref(), Some("x"));
        }
    }

    /// Over Panther's CloudTrail, Kubernetes audit and Okta test events, as exported and with
    /// every key in capitals, every field SigmaHQ's cloud, identity and Kubernetes rules read
    /// is what the documented lookup order gives: the exact field, else an alias, else the
    /// same path without regard to case.
    #[test]
    fn corpus_fields_follow_the_lookup_order() {
        let corpus =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus");
        let sigma = corpus.join("sigma/rules");
        let set = crate::RuleSet::load_paths(&[
            sigma.join("cloud"),
            sigma.join("identity"),
            sigma.join("application/kubernetes"),
        ]);
        let mut fields = BTreeSet::new();
        for rule in set.rules() {
            detection_fields(&rule.detection, &mut fields);
        }
        assert!(fields.len() >= 100, "only {} fields", fields.len());

        let mut files = Vec::new();
        let panther = corpus.join("panther-analysis/rules");
        for dir in std::fs::read_dir(&panther).unwrap() {
            for f in std::fs::read_dir(dir.unwrap().path()).unwrap() {
                files.push(f.unwrap().path());
            }
        }
        files.sort();
        let mut events = Vec::new();
        for f in files
            .iter()
            .filter(|f| f.extension().is_some_and(|e| e == "yml"))
        {
            let doc: yaml_serde::Value =
                yaml_serde::from_str(&std::fs::read_to_string(f).unwrap()).unwrap();
            for t in doc["Tests"].as_sequence().into_iter().flatten() {
                let Some(log) = t.get("Log") else { continue };
                let v: Value = match log.as_str() {
                    Some(s) => serde_json::from_str(s).unwrap(),
                    None => serde_json::to_value(log).unwrap(),
                };
                events.push(v);
            }
        }

        let plans: Vec<(Source, FieldPlan)> =
            [Source::CloudTrail, Source::KubernetesAudit, Source::Okta]
                .into_iter()
                .map(|s| (s, FieldPlan::new(s, &fields)))
                .collect();
        let (mut checked, mut found, mut folded) = (0, 0, 0);
        for raw in &events {
            let source = Source::recognise(raw);
            let Some((_, plan)) = plans.iter().find(|(s, _)| *s == source) else {
                continue;
            };
            for event in [raw.clone(), upper_keys(raw)] {
                let root = event.as_object().unwrap();
                let view = SourceEvent::new(&event, source, plan);
                for name in &fields {
                    let exact = lookup(&event, name);
                    let expected = exact
                        .clone()
                        .or_else(|| aliases(source, name).iter().find_map(|t| lookup(&event, t)))
                        .or_else(|| lookup_folded(&event, root, name));
                    assert_eq!(view.get_field(name), expected, "{name} in {event}");
                    checked += 1;
                    found += usize::from(expected.is_some());
                    folded += usize::from(exact.is_none() && expected.is_some());
                }
            }
        }
        assert!(checked >= 80_000, "only {checked} reads");
        assert!(
            found >= 5_000 && folded >= 2_500,
            "{found} found, {folded} folded"
        );
    }

    fn upper_keys(v: &Value) -> Value {
        match v {
            Value::Object(m) => Value::Object(
                m.iter()
                    .map(|(k, v)| (k.to_uppercase(), upper_keys(v)))
                    .collect(),
            ),
            Value::Array(a) => Value::Array(a.iter().map(upper_keys).collect()),
            other => other.clone(),
        }
    }

    #[test]
    fn an_alias_comes_before_case_folding() {
        let p = plan(Source::CloudTrail, &["user"]);
        let v = json!({"USER": "folded", "userIdentity": {"userName": "alias"}});
        let e = SourceEvent::new(&v, Source::CloudTrail, &p);
        assert_eq!(text(&e, "user").as_deref(), Some("alias"));
    }

    #[test]
    fn windows_and_unknown_are_case_exact() {
        let p = plan(Source::Unknown, &["image", "Image"]);
        let v = json!({"Image": "a"});
        assert_eq!(
            text(&SourceEvent::new(&v, Source::Unknown, &p), "image"),
            None
        );
        let win = json!({"Event": {"System": {"EventID": 1, "Channel": "c",
            "Provider": {"#attributes": {"Name": "p"}}},
            "EventData": {"Image": "C:\\x.exe"}}});
        let p = plan(Source::Windows, &["image", "Image"]);
        let e = SourceEvent::new(&win, Source::Windows, &p);
        assert_eq!(text(&e, "Image").as_deref(), Some("C:\\x.exe"));
        assert_eq!(text(&e, "image"), None);
        assert_eq!(text(&e, "EventID").as_deref(), Some("1"));
        assert_eq!(text(&e, "Provider_Name").as_deref(), Some("p"));
    }

    #[test]
    fn tenet_names_map_onto_ocsf_paths() {
        let p = plan(
            Source::Tenet,
            &["c-ip", "cs-method", "c-uri", "User", "route"],
        );
        let v = json!({"class_uid": 4002, "metadata": {"product": {"name": "Tenet"}},
            "src_endpoint": {"ip": "10.0.0.1"}, "actor": {"app_name": "spiffe://t/a"},
            "http_request": {"http_method": "GET", "url": {"path": "/x", "hostname": "h"}},
            "unmapped": {"route": "r1"}});
        let e = SourceEvent::new(&v, Source::Tenet, &p);
        assert_eq!(text(&e, "c-ip").as_deref(), Some("10.0.0.1"));
        assert_eq!(text(&e, "cs-method").as_deref(), Some("GET"));
        assert_eq!(text(&e, "c-uri").as_deref(), Some("/x"));
        assert_eq!(text(&e, "User").as_deref(), Some("spiffe://t/a"));
        assert_eq!(text(&e, "route").as_deref(), Some("r1"));
    }

    #[test]
    fn windows_named_data_is_flattened() {
        let win = json!({"Event": {"System": {"EventID": {"#text": "4688"}},
            "EventData": {"Data": [{"#attributes": {"Name": "NewProcessName"}, "#text": "a"}]}}});
        let p = FieldPlan::default();
        let e = SourceEvent::new(&win, Source::Windows, &p);
        assert_eq!(text(&e, "NewProcessName").as_deref(), Some("a"));
        assert_eq!(text(&e, "EventID").as_deref(), Some("4688"));
    }

    #[test]
    fn rule_fields_include_fieldref_targets_and_array_paths() {
        let set = crate::RuleSet::from_yaml(
            "t.yml",
            "title: t\nid: t\nlogsource: {product: x}\ndetection:\n  sel:\n    \
             a|fieldref: b\n    c.d: x\n  kw: [evil]\n  condition: sel or kw\n",
        );
        assert!(set.problems().is_empty(), "{:?}", set.problems());
        let mut out = BTreeSet::new();
        for rule in set.rules() {
            detection_fields(&rule.detection, &mut out);
        }
        let got: Vec<&str> = out.iter().map(String::as_str).collect();
        assert_eq!(got, vec!["a", "b", "c.d"]);
    }
}
