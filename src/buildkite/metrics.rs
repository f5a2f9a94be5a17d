//! Prometheus metrics of the Buildkite client. Labels are fixed sets (`endpoint` is an
//! [`Endpoint`] name, never a URL); `org` is an organization slug, of which a kitefix
//! install serves a handful.

use std::time::Duration;

use prometheus::{
    HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

use super::error::{BuildkiteError, Endpoint, RateLimitScope};

/// The client's metrics. Cheap to clone (the collectors are shared).
#[derive(Clone, Debug)]
pub struct BuildkiteMetrics {
    requests: IntCounterVec,
    duration: HistogramVec,
    errors: IntCounterVec,
    in_flight: IntGauge,
    rate_limit_waits: IntCounter,
    rate_limited: IntCounterVec,
    rate_limit_remaining: IntGaugeVec,
    log_bytes: IntCounter,
    logs_unavailable: IntCounter,
}

impl BuildkiteMetrics {
    /// Creates the metrics and registers them on `registry`.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let metrics = Self::unregistered()?;
        registry.register(Box::new(metrics.requests.clone()))?;
        registry.register(Box::new(metrics.duration.clone()))?;
        registry.register(Box::new(metrics.errors.clone()))?;
        registry.register(Box::new(metrics.in_flight.clone()))?;
        registry.register(Box::new(metrics.rate_limit_waits.clone()))?;
        registry.register(Box::new(metrics.rate_limited.clone()))?;
        registry.register(Box::new(metrics.rate_limit_remaining.clone()))?;
        registry.register(Box::new(metrics.log_bytes.clone()))?;
        registry.register(Box::new(metrics.logs_unavailable.clone()))?;
        Ok(metrics)
    }

    /// Metrics that are counted but not exported (a client built without a registry).
    pub(crate) fn unregistered() -> prometheus::Result<Self> {
        // Time to response headers: most calls take 0.1–2 s; a slow log start is up to 30 s.
        let buckets = vec![0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];
        Ok(Self {
            requests: IntCounterVec::new(
                Opts::new(
                    "kitefix_buildkite_requests_total",
                    "Buildkite API requests by endpoint and HTTP status (or timeout/transport)",
                ),
                &["endpoint", "status"],
            )?,
            duration: HistogramVec::new(
                HistogramOpts::new(
                    "kitefix_buildkite_request_duration_seconds",
                    "Time until Buildkite's response headers, by endpoint",
                )
                .buckets(buckets),
                &["endpoint"],
            )?,
            errors: IntCounterVec::new(
                Opts::new(
                    "kitefix_buildkite_errors_total",
                    "Failed Buildkite calls by endpoint and error kind",
                ),
                &["endpoint", "kind"],
            )?,
            in_flight: IntGauge::new(
                "kitefix_buildkite_requests_in_flight",
                "Buildkite API requests waiting for their response headers",
            )?,
            rate_limit_waits: IntCounter::new(
                "kitefix_buildkite_rate_limit_waits_total",
                "Times a request slept for a short Buildkite rate-limit reset",
            )?,
            rate_limited: IntCounterVec::new(
                Opts::new(
                    "kitefix_buildkite_rate_limited_total",
                    "Buildkite 429 answers and requests refused locally because a budget was spent",
                ),
                &["scope"],
            )?,
            rate_limit_remaining: IntGaugeVec::new(
                Opts::new(
                    "kitefix_buildkite_rate_limit_remaining",
                    "Requests left in the current Buildkite rate-limit window, as last reported",
                ),
                &["org", "scope"],
            )?,
            log_bytes: IntCounter::new(
                "kitefix_buildkite_log_bytes_total",
                "Bytes of job logs streamed from Buildkite",
            )?,
            logs_unavailable: IntCounter::new(
                "kitefix_buildkite_logs_unavailable_total",
                "Job logs Buildkite no longer has (404/410)",
            )?,
        })
    }

    pub(crate) fn request(&self, endpoint: Endpoint, status: &str, took: Duration) {
        self.requests.with_label_values(&[endpoint.as_str(), status]).inc();
        self.duration.with_label_values(&[endpoint.as_str()]).observe(took.as_secs_f64());
    }

    pub(crate) fn error(&self, endpoint: Endpoint, error: &BuildkiteError) {
        self.errors.with_label_values(&[endpoint.as_str(), error.kind()]).inc();
        if let BuildkiteError::RateLimited { scope, .. } = error {
            self.rate_limited.with_label_values(&[scope.as_str()]).inc();
        }
    }

    pub(crate) fn in_flight(&self) -> InFlight {
        self.in_flight.inc();
        InFlight(self.in_flight.clone())
    }

    pub(crate) fn rate_limit_wait(&self) {
        self.rate_limit_waits.inc();
    }

    pub(crate) fn remaining(&self, org: &str, scope: RateLimitScope, remaining: u64) {
        let value = i64::try_from(remaining).unwrap_or(i64::MAX);
        self.rate_limit_remaining.with_label_values(&[org, scope.as_str()]).set(value);
    }

    pub(crate) fn log_bytes(&self, bytes: usize) {
        self.log_bytes.inc_by(bytes as u64);
    }

    pub(crate) fn log_unavailable(&self) {
        self.logs_unavailable.inc();
    }
}

/// Decrements the in-flight gauge when dropped, whatever path the request took.
pub(crate) struct InFlight(IntGauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registers_under_kitefix_names() {
        let registry = Registry::new();
        let metrics = BuildkiteMetrics::register(&registry).expect("registers");
        metrics.request(Endpoint::GetBuild, "200", Duration::from_millis(120));
        metrics.error(
            Endpoint::JobLog,
            &BuildkiteError::RateLimited {
                retry_after: Duration::from_secs(3),
                scope: RateLimitScope::User,
            },
        );
        let names: Vec<String> = registry.gather().iter().map(|f| f.name().to_owned()).collect();
        for name in [
            "kitefix_buildkite_requests_total",
            "kitefix_buildkite_request_duration_seconds",
            "kitefix_buildkite_errors_total",
            "kitefix_buildkite_rate_limited_total",
        ] {
            assert!(names.iter().any(|n| n == name), "{name} missing from {names:?}");
        }
        // Registering twice on one registry is refused rather than double-counting.
        assert!(BuildkiteMetrics::register(&registry).is_err());
    }
}
