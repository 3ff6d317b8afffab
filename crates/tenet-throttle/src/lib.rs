//! Attempt limits: how many times a key (a person, a source address) may do something within
//! a window. Bounded memory: windows that ended are dropped, and at the cap the table starts
//! afresh (a flood can then only reset counts, never grow memory).
//!
//! A summarising throttle also remembers each window that went over its limit and by how
//! much, until [`Throttle::take_overflows`] takes them: what was held back is then reported
//! once instead of being lost.
//!
//! A [`Pool`] is one limit shared by every key (so that many keys cannot add up to an
//! unbounded total); what goes past it is counted, with the keys it came from, until
//! [`Pool::take_spills`] takes it.
//!
//! The sign-in service limits the ledger events of refused requests that need no session
//! with these, and the gateway those of refused connections and requests.
#![forbid(unsafe_code)]
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Mutex, MutexGuard, PoisonError};

use time::{Duration, OffsetDateTime};

/// Most keys tracked at once, and most ended windows kept for their summary.
const MAX_KEYS: usize = 100_000;

/// The key of the overflow that stands for windows whose own summary did not fit.
pub const MANY_KEYS: &str = "many";

/// The source an event from `ip` is counted against: the address for IPv4 (an IPv4-mapped
/// IPv6 address included), the first address of its /64 for IPv6 (one host commonly holds a
/// whole /64).
pub fn source_network(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        v4 @ IpAddr::V4(_) => v4,
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() & !u128::from(u64::MAX))),
    }
}

/// [`source_network`] as text: `192.0.2.7`, or `2001:db8::/64`.
pub fn source_of(ip: IpAddr) -> String {
    match source_network(ip) {
        v4 @ IpAddr::V4(_) => v4.to_string(),
        v6 @ IpAddr::V6(_) => format!("{v6}/64"),
    }
}

/// A limit of `max` events per key within `window`.
#[derive(Debug)]
pub struct Throttle {
    max: u32,
    window: Duration,
    summarising: bool,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Per key: its open window.
    counts: HashMap<String, Count>,
    /// Windows that ended over the limit, not taken yet (summarising throttles only).
    ended: Vec<Overflow>,
    /// Events over the limit of windows that ended when `ended` was full, and how many
    /// windows they were.
    unkept: u32,
    unkept_windows: u32,
}

/// One key's open window.
#[derive(Debug, Clone, Copy)]
struct Count {
    /// When the window started (its first event).
    start: OffsetDateTime,
    /// How many events it saw.
    n: u32,
    /// When its first event past the limit came, if one did.
    first_over: Option<OffsetDateTime>,
    /// When its last event came.
    last: OffsetDateTime,
}

/// What counting one event found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tally {
    /// The key is within its limit.
    Within,
    /// The key is over its limit until `until`; `first` for the first event over it in this
    /// window.
    Over {
        /// Whether this is the first event over the limit in the window.
        first: bool,
        /// When the window ends.
        until: OffsetDateTime,
    },
}

/// A window of one key that went over the limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overflow {
    /// The key ([`MANY_KEYS`] for windows of several keys whose summaries did not fit).
    pub key: String,
    /// When the window started.
    pub start: OffsetDateTime,
    /// When it ended (earlier than its full length when it was cut short).
    pub end: OffsetDateTime,
    /// When its first event past the limit came (`start` for [`MANY_KEYS`]).
    pub first_over: OffsetDateTime,
    /// When its last event came (`end` for [`MANY_KEYS`]).
    pub last: OffsetDateTime,
    /// How many events it saw beyond the limit.
    pub over: u32,
    /// How many windows it stands for: 1, or more for [`MANY_KEYS`].
    pub windows: u32,
}

impl Throttle {
    pub fn new(max: u32, window: Duration) -> Self {
        Self {
            max,
            window,
            summarising: false,
            state: Mutex::new(State::default()),
        }
    }

    /// A throttle that keeps, for [`Throttle::take_overflows`], every window that went over.
    pub fn summarising(max: u32, window: Duration) -> Self {
        Self {
            summarising: true,
            ..Self::new(max, window)
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // INVARIANT: no code path panics while holding the lock.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether `key` is still under its limit at `now` (nothing is counted).
    pub fn allows(&self, key: &str, now: OffsetDateTime) -> bool {
        let state = self.lock();
        match state.counts.get(key) {
            Some(c) if now - c.start < self.window => c.n < self.max,
            _ => true,
        }
    }

    /// Counts one event of `key` at `now`; returns whether it was still within the limit.
    pub fn count(&self, key: &str, now: OffsetDateTime) -> bool {
        self.tally(key, now) == Tally::Within
    }

    /// Counts one event of `key` at `now`, saying whether and since when it is over the limit.
    pub fn tally(&self, key: &str, now: OffsetDateTime) -> Tally {
        let mut state = self.lock();
        if state.counts.len() >= MAX_KEYS && !state.counts.contains_key(key) {
            self.drop_windows(&mut state, now);
        }
        let window = self.window;
        let ended = match state.counts.get(key) {
            Some(&c) if now - c.start >= window => Some(c),
            _ => None,
        };
        if let Some(c) = ended {
            self.keep_overflow(&mut state, key, c, c.start + window);
        }
        let fresh = Count {
            start: now,
            n: 0,
            first_over: None,
            last: now,
        };
        let entry = state.counts.entry(key.to_owned()).or_insert(fresh);
        if ended.is_some() {
            *entry = fresh;
        }
        entry.n = entry.n.saturating_add(1);
        entry.last = now;
        if entry.n == self.max.saturating_add(1) {
            entry.first_over = Some(now);
        }
        if entry.n <= self.max {
            Tally::Within
        } else {
            Tally::Over {
                first: entry.n == self.max.saturating_add(1),
                until: entry.start + window,
            }
        }
    }

    /// Forgets `key` (after a success).
    pub fn clear(&self, key: &str) {
        self.lock().counts.remove(key);
    }

    /// The windows that went over the limit and ended by `now`, and with `all` also those
    /// still open (ended at `now`: at shutdown). Taken windows are forgotten.
    pub fn take_overflows(&self, now: OffsetDateTime, all: bool) -> Vec<Overflow> {
        if !self.summarising {
            return Vec::new();
        }
        let mut state = self.lock();
        let window = self.window;
        let max = self.max;
        let mut taken = std::mem::take(&mut state.ended);
        state.counts.retain(|key, &mut c| {
            let ended = now - c.start >= window;
            if (ended || all) && c.n > max {
                taken.push(Overflow {
                    key: key.clone(),
                    start: c.start,
                    end: if ended { c.start + window } else { now },
                    first_over: c.first_over.unwrap_or(c.start),
                    last: c.last,
                    over: c.n - max,
                    windows: 1,
                });
                return false;
            }
            !ended
        });
        let unkept = std::mem::take(&mut state.unkept);
        let windows = std::mem::take(&mut state.unkept_windows);
        if unkept > 0 {
            let start = taken.iter().map(|o| o.start).min().unwrap_or(now);
            taken.push(Overflow {
                key: MANY_KEYS.to_owned(),
                start,
                end: now,
                first_over: start,
                last: now,
                over: unkept,
                windows,
            });
        }
        taken.sort_by(|a, b| a.start.cmp(&b.start).then_with(|| a.key.cmp(&b.key)));
        taken
    }

    /// Makes room in a full table: ended windows go, and if none had, every window does.
    fn drop_windows(&self, state: &mut State, now: OffsetDateTime) {
        let window = self.window;
        let doomed: Vec<(String, Count)> = state
            .counts
            .iter()
            .filter(|(_, c)| now - c.start >= window)
            .map(|(key, &c)| (key.clone(), c))
            .collect();
        if doomed.is_empty() {
            let cut: Vec<(String, Count)> = state.counts.drain().collect();
            for (key, c) in cut {
                self.keep_overflow(state, &key, c, now);
            }
            return;
        }
        for (key, c) in doomed {
            state.counts.remove(&key);
            self.keep_overflow(state, &key, c, c.start + window);
        }
    }

    /// Keeps a window of `key` that ended at `end` for its summary, if it went over the limit.
    fn keep_overflow(&self, state: &mut State, key: &str, c: Count, end: OffsetDateTime) {
        if !self.summarising || c.n <= self.max {
            return;
        }
        let over = c.n - self.max;
        if state.ended.len() < MAX_KEYS {
            state.ended.push(Overflow {
                key: key.to_owned(),
                start: c.start,
                end,
                first_over: c.first_over.unwrap_or(c.start),
                last: c.last,
                over,
                windows: 1,
            });
        } else {
            state.unkept = state.unkept.saturating_add(over);
            state.unkept_windows = state.unkept_windows.saturating_add(1);
        }
    }
}

/// Most windows a [`Pool`] keeps ended and not taken (older ones are merged).
const MAX_ENDED_SPILLS: usize = 16;

/// One limit of `max` events per window shared by every key. Windows are fixed: one starts
/// with the first event after the last ended. What goes past the limit is counted into the
/// window's [`Spill`].
#[derive(Debug)]
pub struct Pool {
    max: u32,
    window: Duration,
    state: Mutex<PoolState>,
}

#[derive(Debug, Default)]
struct PoolState {
    /// The open window: when it started and how many events it let through.
    open: Option<(OffsetDateTime, u32)>,
    /// What went past the limit in the open window.
    spill: Option<Spill>,
    /// Windows that ended with a spill, not taken yet.
    ended: Vec<Spill>,
}

/// What went past a [`Pool`]'s limit in one window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spill {
    /// When the window started.
    pub start: OffsetDateTime,
    /// When it ended (earlier than its full length when it was cut short).
    pub end: OffsetDateTime,
    /// How many events went past the limit.
    pub events: u64,
    /// When the first and the last of them came (were counted, for those added as
    /// summaries); `None` while there are none.
    pub span: Option<(OffsetDateTime, OffsetDateTime)>,
    /// The keys they came from, up to [`MAX_KEYS`].
    named: HashSet<String>,
    /// Keys counted past [`MAX_KEYS`] or without a name (some may be among the others).
    unnamed: u64,
}

impl Spill {
    /// An empty spill of the window from `start` to `end`.
    pub fn new(start: OffsetDateTime, end: OffsetDateTime) -> Self {
        Self {
            start,
            end,
            events: 0,
            span: None,
            named: HashSet::new(),
            unnamed: 0,
        }
    }

    /// Counts `events` events of `key` that came between `first` and `last`.
    pub fn add(&mut self, key: &str, events: u64, (first, last): (OffsetDateTime, OffsetDateTime)) {
        self.events = self.events.saturating_add(events);
        self.widen(Some((first, last)));
        if self.named.len() < MAX_KEYS {
            self.named.insert(key.to_owned());
        } else if !self.named.contains(key) {
            self.unnamed = self.unnamed.saturating_add(1);
        }
    }

    /// Counts `events` events of `keys` keys not named that came between `first` and `last`.
    pub fn add_unnamed(
        &mut self,
        events: u64,
        keys: u64,
        (first, last): (OffsetDateTime, OffsetDateTime),
    ) {
        self.events = self.events.saturating_add(events);
        self.unnamed = self.unnamed.saturating_add(keys);
        self.widen(Some((first, last)));
    }

    fn widen(&mut self, span: Option<(OffsetDateTime, OffsetDateTime)>) {
        self.span = match (self.span, span) {
            (Some((a, b)), Some((c, d))) => Some((a.min(c), b.max(d))),
            (one, None) | (None, one) => one,
        };
    }

    /// Adds `other`'s events, keys and times to this one's.
    pub fn merge(&mut self, other: Spill) {
        self.start = self.start.min(other.start);
        self.end = self.end.max(other.end);
        self.widen(other.span);
        self.events = self.events.saturating_add(other.events);
        self.unnamed = self.unnamed.saturating_add(other.unnamed);
        for key in other.named {
            if self.named.len() < MAX_KEYS {
                self.named.insert(key);
            } else if !self.named.contains(&key) {
                self.unnamed = self.unnamed.saturating_add(1);
            }
        }
    }

    /// How many keys the events came from, and whether that is exact (otherwise it is at
    /// most that many: some keys counted without a name may be the same).
    pub fn keys(&self) -> (u64, bool) {
        let named = u64::try_from(self.named.len()).unwrap_or(u64::MAX);
        (named.saturating_add(self.unnamed), self.unnamed == 0)
    }
}

/// What taking from a [`Pool`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Share {
    /// Within the limit.
    Within,
    /// Past the limit and counted into the window's spill; `first` for the window's first.
    Over {
        /// Whether this is the first past the limit in the window.
        first: bool,
    },
}

impl Pool {
    pub fn new(max: u32, window: Duration) -> Self {
        Self {
            max,
            window,
            state: Mutex::new(PoolState::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, PoolState> {
        // INVARIANT: no code path panics while holding the lock.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes one from the pool at `now` for something of `key` that stands for `events`
    /// events (1 for one event, more for a summary of several): within the limit, or past it
    /// and then counted, as `events` events of `key`, into the window's spill.
    pub fn take(&self, key: &str, events: u64, now: OffsetDateTime) -> Share {
        let mut state = self.lock();
        let start = self.open(&mut state, now);
        if let Some((_, used)) = state.open.as_mut()
            && *used < self.max
        {
            *used += 1;
            return Share::Within;
        }
        let first = state.spill.is_none();
        let end = start + self.window;
        state
            .spill
            .get_or_insert_with(|| Spill::new(start, end))
            .add(key, events, (now, now));
        Share::Over { first }
    }

    /// Takes one from the pool at `now` if the window has room left; past the limit nothing
    /// is counted (the caller accounts for what it could not record itself).
    pub fn take_if_room(&self, now: OffsetDateTime) -> bool {
        let mut state = self.lock();
        self.open(&mut state, now);
        match state.open.as_mut() {
            Some((_, used)) if *used < self.max => {
                *used += 1;
                true
            }
            _ => false,
        }
    }

    /// Counts `events` events from `keys` keys not named into the spill of the window open at
    /// `now`, without taking from the pool.
    pub fn spill_unnamed(&self, events: u64, keys: u64, now: OffsetDateTime) {
        let mut state = self.lock();
        let start = self.open(&mut state, now);
        let end = start + self.window;
        let spill = state.spill.get_or_insert_with(|| Spill::new(start, end));
        spill.add_unnamed(events, keys, (now, now));
    }

    /// The spills of windows that ended by `now`, and with `all` also the open window's (cut
    /// at `now`: at shutdown). Taken spills are forgotten.
    pub fn take_spills(&self, now: OffsetDateTime, all: bool) -> Vec<Spill> {
        let mut state = self.lock();
        self.close_ended(&mut state, now);
        if all && let Some(mut spill) = state.spill.take() {
            spill.end = now;
            state.ended.push(spill);
        }
        std::mem::take(&mut state.ended)
    }

    /// The start of the window open at `now`, opening one if need be.
    fn open(&self, state: &mut PoolState, now: OffsetDateTime) -> OffsetDateTime {
        self.close_ended(state, now);
        state.open.get_or_insert((now, 0)).0
    }

    /// Closes the open window if it ended by `now`, keeping its spill.
    fn close_ended(&self, state: &mut PoolState, now: OffsetDateTime) {
        let Some((start, _)) = state.open else { return };
        if now - start < self.window {
            return;
        }
        state.open = None;
        let Some(spill) = state.spill.take() else {
            return;
        };
        if state.ended.len() < MAX_ENDED_SPILLS {
            state.ended.push(spill);
        } else if let Some(last) = state.ended.last_mut() {
            last.merge(spill);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn sources_are_addresses_or_their_slash_64() {
        assert_eq!(source_of("192.0.2.7".parse().unwrap()), "192.0.2.7");
        assert_eq!(source_of("::ffff:192.0.2.7".parse().unwrap()), "192.0.2.7");
        assert_eq!(
            source_of("2001:db8:1:2:3:4:5:6".parse().unwrap()),
            "2001:db8:1:2::/64"
        );
    }

    #[test]
    fn limits_per_key_and_window() {
        let t = Throttle::new(3, Duration::minutes(10));
        let t0 = datetime!(2026-12-01 09:00 UTC);
        for _ in 0..3 {
            assert!(t.allows("a", t0));
            assert!(t.count("a", t0));
        }
        assert!(!t.allows("a", t0));
        assert!(!t.count("a", t0 + Duration::minutes(9)));
        assert!(t.allows("b", t0));
        assert!(t.allows("a", t0 + Duration::minutes(10)));
        assert!(t.count("a", t0 + Duration::minutes(10)));
        t.clear("a");
        assert!(t.allows("a", t0 + Duration::minutes(10)));
    }

    #[test]
    fn a_summarising_throttle_reports_each_window_that_went_over() {
        let t = Throttle::summarising(2, Duration::minutes(10));
        let t0 = datetime!(2026-12-01 09:00 UTC);
        let tallies: Vec<Tally> = (0..5)
            .map(|i| t.tally("a", t0 + Duration::minutes(i)))
            .collect();
        let until = t0 + Duration::minutes(10);
        assert_eq!(
            tallies,
            [
                Tally::Within,
                Tally::Within,
                Tally::Over { first: true, until },
                Tally::Over {
                    first: false,
                    until
                },
                Tally::Over {
                    first: false,
                    until
                },
            ]
        );
        t.tally("b", t0);
        t.tally("b", t0);
        // Nothing has ended yet.
        assert!(
            t.take_overflows(t0 + Duration::minutes(9), false)
                .is_empty()
        );
        // A new window of `a` keeps the old one's overflow; `b` never went over.
        assert_eq!(t.tally("a", until), Tally::Within);
        let taken = t.take_overflows(until, false);
        assert_eq!(
            taken,
            [Overflow {
                key: "a".into(),
                start: t0,
                end: until,
                first_over: t0 + Duration::minutes(2),
                last: t0 + Duration::minutes(4),
                over: 3,
                windows: 1
            }]
        );
        assert!(t.take_overflows(until, false).is_empty());

        // At shutdown, open windows over the limit are reported up to now.
        for _ in 0..4 {
            t.tally("c", until);
        }
        let now = until + Duration::minutes(1);
        let taken = t.take_overflows(now, true);
        assert_eq!(
            taken,
            [Overflow {
                key: "c".into(),
                start: until,
                end: now,
                first_over: until,
                last: until,
                over: 2,
                windows: 1
            }]
        );
    }

    #[test]
    fn a_plain_throttle_keeps_no_overflows() {
        let t = Throttle::new(1, Duration::minutes(10));
        let t0 = datetime!(2026-12-01 09:00 UTC);
        for _ in 0..3 {
            t.count("a", t0);
        }
        t.count("a", t0 + Duration::minutes(10));
        assert!(t.take_overflows(t0 + Duration::hours(1), true).is_empty());
    }

    #[test]
    fn a_pool_takes_if_room_without_spilling() {
        let t0 = datetime!(2026-03-01 00:00 UTC);
        let pool = Pool::new(2, Duration::minutes(1));
        assert!(pool.take_if_room(t0));
        assert_eq!(pool.take("a", 1, t0), Share::Within);
        assert!(!pool.take_if_room(t0));
        assert!(pool.take_spills(t0, true).is_empty(), "nothing spilled");
        assert!(pool.take_if_room(t0 + Duration::minutes(1)), "a new window");
    }

    #[test]
    fn a_pool_limits_all_keys_together_and_counts_what_went_past_with_its_keys() {
        let pool = Pool::new(3, Duration::minutes(10));
        let t0 = datetime!(2026-12-01 09:00 UTC);
        let shares: Vec<Share> = ["a", "b", "c", "d", "e", "d"]
            .iter()
            .map(|key| pool.take(key, 1, t0))
            .collect();
        assert_eq!(
            shares,
            [
                Share::Within,
                Share::Within,
                Share::Within,
                Share::Over { first: true },
                Share::Over { first: false },
                Share::Over { first: false },
            ]
        );
        // A summary standing for several events counts them all.
        assert_eq!(pool.take("f", 40, t0), Share::Over { first: false });
        assert!(
            pool.take_spills(t0 + Duration::minutes(9), false)
                .is_empty()
        );

        // The window ends 10 minutes after its first event; the next one starts afresh.
        let later = t0 + Duration::minutes(10);
        assert_eq!(pool.take("g", 1, later), Share::Within);
        let spills = pool.take_spills(later, false);
        assert_eq!(spills.len(), 1);
        let spill = &spills[0];
        assert_eq!((spill.start, spill.end), (t0, later));
        assert_eq!(spill.events, 43);
        assert_eq!(spill.keys(), (3, true));
        assert!(pool.take_spills(later, false).is_empty());

        // At shutdown the open window's spill is cut at now; unnamed keys make the count
        // an upper bound.
        pool.take("h", 1, later);
        pool.take("i", 1, later);
        assert_eq!(pool.take("j", 1, later), Share::Over { first: true });
        pool.spill_unnamed(7, 2, later);
        let now = later + Duration::minutes(1);
        let spills = pool.take_spills(now, true);
        assert_eq!(spills.len(), 1);
        assert_eq!((spills[0].start, spills[0].end), (later, now));
        assert_eq!(spills[0].events, 8);
        assert_eq!(spills[0].keys(), (3, false));
    }

    #[test]
    fn a_pool_keeps_few_ended_spills_however_long_they_are_not_taken() {
        let pool = Pool::new(1, Duration::minutes(10));
        let t0 = datetime!(2026-12-01 09:00 UTC);
        for w in 0..40 {
            let at = t0 + Duration::minutes(10 * w);
            pool.take("a", 1, at);
            pool.take(&format!("k{w}"), 2, at);
        }
        let spills = pool.take_spills(t0 + Duration::days(1), false);
        assert_eq!(spills.len(), MAX_ENDED_SPILLS);
        let events: u64 = spills.iter().map(|s| s.events).sum();
        assert_eq!(events, 80);
        let last = spills.last().unwrap();
        assert_eq!(last.end, t0 + Duration::minutes(400));
        assert_eq!(last.keys(), (40 - 15, true));
    }
}
