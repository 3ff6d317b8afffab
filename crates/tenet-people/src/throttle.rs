//! Attempt limits: how many times a key (a person, a source address) may do something within
//! a window. Bounded memory: windows that ended are dropped, and at the cap the table starts
//! afresh (a flood can then only reset counts, never grow memory).
//!
//! A summarising throttle also remembers each window that went over its limit and by how
//! much, until [`Throttle::take_overflows`] takes them: what was held back is then reported
//! once instead of being lost.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use time::{Duration, OffsetDateTime};

/// Most keys tracked at once, and most ended windows kept for their summary.
const MAX_KEYS: usize = 100_000;

/// The key of the overflow that stands for windows whose own summary did not fit.
pub(crate) const MANY_KEYS: &str = "many";

/// A limit of `max` events per key within `window`.
#[derive(Debug)]
pub(crate) struct Throttle {
    max: u32,
    window: Duration,
    summarising: bool,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Per key: when its window started and how many events it saw.
    counts: HashMap<String, (OffsetDateTime, u32)>,
    /// Windows that ended over the limit, not taken yet (summarising throttles only).
    ended: Vec<Overflow>,
    /// Events over the limit of windows that ended when `ended` was full.
    unkept: u32,
}

/// What counting one event found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tally {
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
pub(crate) struct Overflow {
    /// The key ([`MANY_KEYS`] for windows of several keys whose summaries did not fit).
    pub(crate) key: String,
    /// When the window started.
    pub(crate) start: OffsetDateTime,
    /// When it ended (earlier than its full length when it was cut short).
    pub(crate) end: OffsetDateTime,
    /// How many events it saw beyond the limit.
    pub(crate) over: u32,
}

impl Throttle {
    pub(crate) fn new(max: u32, window: Duration) -> Self {
        Self {
            max,
            window,
            summarising: false,
            state: Mutex::new(State::default()),
        }
    }

    /// A throttle that keeps, for [`Throttle::take_overflows`], every window that went over.
    pub(crate) fn summarising(max: u32, window: Duration) -> Self {
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
    pub(crate) fn allows(&self, key: &str, now: OffsetDateTime) -> bool {
        let state = self.lock();
        match state.counts.get(key) {
            Some((start, n)) if now - *start < self.window => *n < self.max,
            _ => true,
        }
    }

    /// Counts one event of `key` at `now`; returns whether it was still within the limit.
    pub(crate) fn count(&self, key: &str, now: OffsetDateTime) -> bool {
        self.tally(key, now) == Tally::Within
    }

    /// Counts one event of `key` at `now`, saying whether and since when it is over the limit.
    pub(crate) fn tally(&self, key: &str, now: OffsetDateTime) -> Tally {
        let mut state = self.lock();
        if state.counts.len() >= MAX_KEYS && !state.counts.contains_key(key) {
            self.drop_windows(&mut state, now);
        }
        let window = self.window;
        let ended = match state.counts.get(key) {
            Some(&(start, n)) if now - start >= window => Some((start, n)),
            _ => None,
        };
        if let Some((start, n)) = ended {
            self.keep_overflow(&mut state, key, start, start + window, n);
        }
        let entry = state.counts.entry(key.to_owned()).or_insert((now, 0));
        if ended.is_some() {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
        if entry.1 <= self.max {
            Tally::Within
        } else {
            Tally::Over {
                first: entry.1 == self.max.saturating_add(1),
                until: entry.0 + window,
            }
        }
    }

    /// Forgets `key` (after a success).
    pub(crate) fn clear(&self, key: &str) {
        self.lock().counts.remove(key);
    }

    /// The windows that went over the limit and ended by `now`, and with `all` also those
    /// still open (ended at `now`: at shutdown). Taken windows are forgotten.
    pub(crate) fn take_overflows(&self, now: OffsetDateTime, all: bool) -> Vec<Overflow> {
        if !self.summarising {
            return Vec::new();
        }
        let mut state = self.lock();
        let window = self.window;
        let max = self.max;
        let mut taken = std::mem::take(&mut state.ended);
        state.counts.retain(|key, &mut (start, n)| {
            let ended = now - start >= window;
            if (ended || all) && n > max {
                taken.push(Overflow {
                    key: key.clone(),
                    start,
                    end: if ended { start + window } else { now },
                    over: n - max,
                });
                return false;
            }
            !ended
        });
        let unkept = std::mem::take(&mut state.unkept);
        if unkept > 0 {
            let start = taken.iter().map(|o| o.start).min().unwrap_or(now);
            taken.push(Overflow {
                key: MANY_KEYS.to_owned(),
                start,
                end: now,
                over: unkept,
            });
        }
        taken.sort_by(|a, b| a.start.cmp(&b.start).then_with(|| a.key.cmp(&b.key)));
        taken
    }

    /// Makes room in a full table: ended windows go, and if none had, every window does.
    fn drop_windows(&self, state: &mut State, now: OffsetDateTime) {
        let window = self.window;
        let doomed: Vec<(String, OffsetDateTime, u32)> = state
            .counts
            .iter()
            .filter(|(_, (start, _))| now - *start >= window)
            .map(|(key, &(start, n))| (key.clone(), start, n))
            .collect();
        if doomed.is_empty() {
            let cut: Vec<(String, OffsetDateTime, u32)> = state
                .counts
                .drain()
                .map(|(key, (start, n))| (key, start, n))
                .collect();
            for (key, start, n) in cut {
                self.keep_overflow(state, &key, start, now, n);
            }
            return;
        }
        for (key, start, n) in doomed {
            state.counts.remove(&key);
            self.keep_overflow(state, &key, start, start + window, n);
        }
    }

    /// Keeps a window of `key` that saw `n` events for its summary, if it went over the limit.
    fn keep_overflow(
        &self,
        state: &mut State,
        key: &str,
        start: OffsetDateTime,
        end: OffsetDateTime,
        n: u32,
    ) {
        if !self.summarising || n <= self.max {
            return;
        }
        let over = n - self.max;
        if state.ended.len() < MAX_KEYS {
            state.ended.push(Overflow {
                key: key.to_owned(),
                start,
                end,
                over,
            });
        } else {
            state.unkept = state.unkept.saturating_add(over);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

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
        let tallies: Vec<Tally> = (0..5).map(|_| t.tally("a", t0)).collect();
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
                over: 3
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
                over: 2
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
}
