//! Attempt limits: how many times a key (a person, a source address) may do something within
//! a window. Bounded memory: windows that ended are dropped, and at the cap the table starts
//! afresh (a flood can then only reset counts, never grow memory).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use time::{Duration, OffsetDateTime};

/// Most keys tracked at once.
const MAX_KEYS: usize = 100_000;

/// A limit of `max` events per key within `window`.
#[derive(Debug)]
pub(crate) struct Throttle {
    max: u32,
    window: Duration,
    counts: Mutex<HashMap<String, (OffsetDateTime, u32)>>,
}

impl Throttle {
    pub(crate) fn new(max: u32, window: Duration) -> Self {
        Self {
            max,
            window,
            counts: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `key` is still under its limit at `now` (nothing is counted).
    pub(crate) fn allows(&self, key: &str, now: OffsetDateTime) -> bool {
        let counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        match counts.get(key) {
            Some((start, n)) if now - *start < self.window => *n < self.max,
            _ => true,
        }
    }

    /// Counts one event of `key` at `now`; returns whether it was still within the limit.
    pub(crate) fn count(&self, key: &str, now: OffsetDateTime) -> bool {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        if counts.len() >= MAX_KEYS {
            let window = self.window;
            counts.retain(|_, (start, _)| now - *start < window);
            if counts.len() >= MAX_KEYS {
                counts.clear();
            }
        }
        let entry = counts.entry(key.to_owned()).or_insert((now, 0));
        if now - entry.0 >= self.window {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
        entry.1 <= self.max
    }

    /// Forgets `key` (after a success).
    pub(crate) fn clear(&self, key: &str) {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        counts.remove(key);
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
}
