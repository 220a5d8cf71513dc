//! What the engine measures of its builds, for the service's `/metrics`:
//! how long each build took and how many archive bytes the builds wrote.
//! The values are shared handles, so `http` registers these same ones in
//! its registry and the engine never knows about Prometheus's text format.

use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};

/// The outcome label of a finished build.
pub type OutcomeLabels = Vec<(&'static str, &'static str)>;

/// The engine's build measurements. Clones share the same values.
#[derive(Debug, Clone)]
pub struct BuildMetrics {
    /// Seconds per build that ran to an end (complete or failed).
    pub build_seconds: Histogram,
    /// Bytes of every archive completed.
    pub archive_bytes: Counter,
    /// Builds that ended, by `outcome` (`complete`, `failed`).
    pub builds: Family<OutcomeLabels, Counter>,
}

impl Default for BuildMetrics {
    fn default() -> BuildMetrics {
        BuildMetrics {
            // 10 ms to about 45 minutes: the sample builds in milliseconds,
            // a large batch in minutes.
            build_seconds: Histogram::new(exponential_buckets(0.01, 2.0, 18)),
            archive_bytes: Counter::default(),
            builds: Family::default(),
        }
    }
}

impl BuildMetrics {
    pub(crate) fn completed(&self, took: Duration, bytes: u64) {
        self.build_seconds.observe(took.as_secs_f64());
        self.archive_bytes.inc_by(bytes);
        self.builds
            .get_or_create(&vec![("outcome", "complete")])
            .inc();
    }

    pub(crate) fn failed(&self, took: Duration) {
        self.build_seconds.observe(took.as_secs_f64());
        self.builds
            .get_or_create(&vec![("outcome", "failed")])
            .inc();
    }
}
