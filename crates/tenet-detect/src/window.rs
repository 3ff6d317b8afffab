//! Sliding windows: failure bursts and distinct services reached.

use std::collections::VecDeque;

/// What kind of failure a burst counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// A request denied by policy (403).
    Denied,
    /// A request that matched no route (404).
    NoRoute,
    /// A refused TLS handshake; the index into the configured `tls_kinds`.
    Tls(u16),
    /// A failed sign-in step of a person or device (provider, second factor, enrolment).
    SignIn,
}

/// The last failures of one principal or source, at most `threshold` of them: enough to
/// know exactly whether `threshold` happened within the window.
#[derive(Debug, Default)]
pub(crate) struct Burst {
    failures: VecDeque<(i64, Failure)>,
    alerted_at: Option<i64>,
}

/// A burst that reached its threshold.
#[derive(Debug)]
pub(crate) struct BurstSeen {
    /// Failures within the window (the threshold).
    pub(crate) count: usize,
    /// Milliseconds from the first to the last of them.
    pub(crate) span_ms: i64,
    /// The failures, oldest first.
    pub(crate) kinds: Vec<Failure>,
}

impl Burst {
    /// Count one failure at `now`; `Some` when `threshold` failures fell within `window_ms`
    /// and no burst was reported within the last window.
    pub(crate) fn record(
        &mut self,
        now: i64,
        failure: Failure,
        threshold: u32,
        window_ms: i64,
    ) -> Option<BurstSeen> {
        let threshold = usize::try_from(threshold).unwrap_or(usize::MAX).max(1);
        self.failures.push_back((now, failure));
        while self.failures.len() > threshold {
            self.failures.pop_front();
        }
        let start = now.saturating_sub(window_ms);
        while self.failures.front().is_some_and(|(t, _)| *t <= start) {
            self.failures.pop_front();
        }
        if self.failures.len() < threshold {
            return None;
        }
        if self
            .alerted_at
            .is_some_and(|at| now.saturating_sub(at) < window_ms)
        {
            return None;
        }
        self.alerted_at = Some(now);
        let first = self.failures.front().map_or(now, |(t, _)| *t);
        Some(BurstSeen {
            count: self.failures.len(),
            span_ms: now.saturating_sub(first),
            kinds: self.failures.iter().map(|(_, f)| *f).collect(),
        })
    }
}

/// Distinct services reached recently: service id and the last time it was reached.
#[derive(Debug, Default)]
pub(crate) struct FanOut {
    recent: Vec<(u32, i64)>,
    alerted_at: Option<i64>,
}

impl FanOut {
    /// Record `service` at `now`, forget services not reached within `window_ms`, and return
    /// how many distinct services remain. At most `cap` are kept (the stalest is dropped).
    pub(crate) fn record(&mut self, service: u32, now: i64, window_ms: i64, cap: usize) -> usize {
        let start = now.saturating_sub(window_ms);
        self.recent.retain(|(_, t)| *t > start);
        if let Some(entry) = self.recent.iter_mut().find(|(s, _)| *s == service) {
            entry.1 = entry.1.max(now);
        } else {
            if self.recent.len() >= cap.max(1)
                && let Some(stalest) = (0..self.recent.len())
                    .min_by_key(|&i| self.recent.get(i).map_or(i64::MAX, |(_, t)| *t))
            {
                self.recent.swap_remove(stalest);
            }
            self.recent.push((service, now));
        }
        self.recent.len()
    }

    /// The services in the window.
    pub(crate) fn services(&self) -> impl Iterator<Item = u32> + '_ {
        self.recent.iter().map(|(s, _)| *s)
    }

    /// Whether an alert may fire at `now` (none within the last window); marks it fired.
    pub(crate) fn may_alert(&mut self, now: i64, window_ms: i64) -> bool {
        if self
            .alerted_at
            .is_some_and(|at| now.saturating_sub(at) < window_ms)
        {
            return false;
        }
        self.alerted_at = Some(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_fires_once_per_window_at_the_threshold() {
        let mut b = Burst::default();
        for i in 0..4 {
            assert!(b.record(i * 1000, Failure::Denied, 5, 60_000).is_none());
        }
        let seen = b.record(4000, Failure::NoRoute, 5, 60_000).unwrap();
        assert_eq!(seen.count, 5);
        assert_eq!(seen.span_ms, 4000);
        assert_eq!(seen.kinds.last(), Some(&Failure::NoRoute));
        // Still bursting, but already reported within this window.
        assert!(b.record(5000, Failure::Denied, 5, 60_000).is_none());
        // A window later, a new burst is reported again.
        for i in 0..4 {
            assert!(b.record(70_000 + i, Failure::Denied, 5, 60_000).is_none());
        }
        assert!(b.record(70_004, Failure::Denied, 5, 60_000).is_some());
    }

    #[test]
    fn burst_spread_over_more_than_the_window_does_not_fire() {
        let mut b = Burst::default();
        for i in 0..20 {
            assert!(b.record(i * 20_000, Failure::Denied, 5, 60_000).is_none());
        }
    }

    #[test]
    fn fan_out_counts_distinct_services_in_window() {
        let mut f = FanOut::default();
        assert_eq!(f.record(1, 0, 1000, 8), 1);
        assert_eq!(f.record(1, 10, 1000, 8), 1);
        assert_eq!(f.record(2, 20, 1000, 8), 2);
        assert_eq!(f.record(3, 1015, 1000, 8), 2, "service 1 aged out");
        assert_eq!(f.record(4, 1016, 2, 1), 1, "cap keeps one");
    }
}
