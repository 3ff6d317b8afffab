//! Request-rate baseline: an exponentially weighted mean and variance of requests per bucket.
//!
//! Only buckets in which the principal was active are folded in, so a principal idle at
//! night is compared in the morning with its usual working rate, not with a mean pulled
//! towards zero by the night.

use crate::config::RateConfig;

/// The rate baseline of one principal.
#[derive(Debug, Default)]
pub(crate) struct Rate {
    bucket: i64,
    count: u32,
    alerted: bool,
    mean: f64,
    var: f64,
    buckets: u32,
}

/// A bucket whose count went past the threshold.
#[derive(Debug)]
pub(crate) struct RateSeen {
    pub(crate) count: u32,
    pub(crate) mean: f64,
    pub(crate) deviation: f64,
    pub(crate) threshold: f64,
    pub(crate) buckets: u32,
}

impl Rate {
    /// The learned baseline: mean, variance and number of buckets folded in.
    pub(crate) fn baseline(&self) -> (f64, f64, u32) {
        (self.mean, self.var, self.buckets)
    }

    /// A rate with a baseline restored from a saved state; values that are not finite or
    /// negative variances start over.
    pub(crate) fn restored(mean: f64, var: f64, buckets: u32) -> Self {
        if !mean.is_finite() || !var.is_finite() || mean < 0.0 || var < 0.0 {
            return Self::default();
        }
        Self {
            mean,
            var,
            buckets,
            ..Self::default()
        }
    }

    /// Count one request at `now`. When `judge` is set and the baseline has enough buckets,
    /// returns the anomaly the first time the current bucket passes the threshold.
    pub(crate) fn record(
        &mut self,
        now: i64,
        config: &RateConfig,
        judge: bool,
    ) -> Option<RateSeen> {
        let bucket_ms = i64::try_from(config.bucket_secs.saturating_mul(1000))
            .unwrap_or(i64::MAX)
            .max(1);
        let bucket = now.div_euclid(bucket_ms);
        // A clock that steps back counts into the current bucket.
        if bucket > self.bucket {
            self.close(config);
            self.bucket = bucket;
        }
        self.count = self.count.saturating_add(1);
        if !judge || self.alerted || self.buckets < config.min_buckets {
            return None;
        }
        let threshold = self.threshold(config);
        if f64::from(self.count) <= threshold {
            return None;
        }
        self.alerted = true;
        Some(RateSeen {
            count: self.count,
            mean: self.mean,
            deviation: self.var.sqrt(),
            threshold,
            buckets: self.buckets,
        })
    }

    fn threshold(&self, config: &RateConfig) -> f64 {
        let statistical = self.mean + config.sigmas * self.var.sqrt();
        statistical.max(f64::from(config.min_requests))
    }

    /// Fold the finished bucket into the baseline. An anomalous bucket is folded in at the
    /// threshold, so that a burst does not teach the baseline that bursts are normal.
    fn close(&mut self, config: &RateConfig) {
        if self.count == 0 {
            return;
        }
        let mut x = f64::from(self.count);
        if self.buckets >= config.min_buckets {
            x = x.min(self.threshold(config));
        }
        if self.buckets == 0 {
            self.mean = x;
            self.var = 0.0;
        } else {
            let diff = x - self.mean;
            let step = config.alpha * diff;
            self.mean += step;
            self.var = (1.0 - config.alpha) * (self.var + diff * step);
        }
        self.buckets = self.buckets.saturating_add(1);
        self.count = 0;
        self.alerted = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> RateConfig {
        RateConfig {
            bucket_secs: 60,
            alpha: 0.2,
            sigmas: 4.0,
            min_requests: 20,
            min_buckets: 5,
        }
    }

    fn minute(rate: &mut Rate, m: i64, n: u32, c: &RateConfig) -> Option<RateSeen> {
        let mut seen = None;
        for i in 0..n {
            if let Some(s) = rate.record(m * 60_000 + i64::from(i), c, true) {
                seen = Some(s);
            }
        }
        seen
    }

    #[test]
    fn steady_rate_learns_and_a_spike_fires_once() {
        let c = config();
        let mut r = Rate::default();
        for m in 0..20 {
            assert!(minute(&mut r, m, 10 + (m % 3) as u32, &c).is_none());
        }
        let seen = minute(&mut r, 20, 100, &c).unwrap();
        assert_eq!(
            seen.count, 21,
            "fires as soon as the bucket passes the floor of 20"
        );
        assert!((seen.mean - 11.0).abs() < 1.5, "{}", seen.mean);
        assert!(seen.threshold >= 20.0);
    }

    #[test]
    fn idle_gaps_do_not_lower_the_baseline() {
        let c = config();
        let mut r = Rate::default();
        for m in 0..10 {
            minute(&mut r, m, 30, &c);
        }
        // A night of silence, then the usual rate again.
        assert!(minute(&mut r, 10 + 600, 30, &c).is_none());
        assert!((r.mean - 30.0).abs() < 1e-9);
    }

    #[test]
    fn not_judged_before_enough_buckets() {
        let c = config();
        let mut r = Rate::default();
        minute(&mut r, 0, 5, &c);
        assert!(minute(&mut r, 1, 500, &c).is_none());
    }
}
