//! The process-wide Prometheus recorder behind the `metrics` counters of every crate.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Bucket bounds of every `*_seconds` histogram: fine below a millisecond, where the
/// gateway's own latencies are, coarse above it. Cumulative buckets since start, so that a
/// scraper can compute any quantile over any window.
const SECONDS_BUCKETS: &[f64] = &[
    0.000_025, 0.000_05, 0.000_1, 0.000_2, 0.000_3, 0.000_4, 0.000_5, 0.000_75, 0.001, 0.002,
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];

/// The recorder's handle, installing it on first use. `None` if another recorder was
/// installed first (then `/metrics` says so).
pub fn handle() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
                .ok()?
                .install_recorder()
                .ok()
        })
        .clone()
}
