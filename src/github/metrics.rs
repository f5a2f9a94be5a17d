//! Prometheus metrics for kitefix's GitHub traffic.

use prometheus::{HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry};

/// Counters and histograms for GitHub calls; cheap to clone (the handles are shared).
#[derive(Debug, Clone)]
pub struct GitHubMetrics {
    /// `kitefix_github_requests_total{endpoint,status}`: one per HTTP request sent.
    /// `endpoint` is the OpenAPI operation id (`checks/create`); `status` is the HTTP
    /// status, or `timeout` / `transport` when no response came.
    pub requests: IntCounterVec,
    /// `kitefix_github_request_duration_seconds{endpoint}`.
    pub request_duration: HistogramVec,
    /// `kitefix_check_runs_total{conclusion}`: check runs published (created or updated).
    pub check_runs: IntCounterVec,
    /// `kitefix_github_token_refreshes_total`: installation tokens minted.
    pub token_refreshes: IntCounter,
    /// `kitefix_github_rate_limited_total{endpoint}`: responses that told us to wait.
    pub rate_limited: IntCounterVec,
}

impl GitHubMetrics {
    /// Creates the metrics and registers them on `registry`.
    pub(crate) fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let metrics = Self::unregistered()?;
        registry.register(Box::new(metrics.requests.clone()))?;
        registry.register(Box::new(metrics.request_duration.clone()))?;
        registry.register(Box::new(metrics.check_runs.clone()))?;
        registry.register(Box::new(metrics.token_refreshes.clone()))?;
        registry.register(Box::new(metrics.rate_limited.clone()))?;
        Ok(metrics)
    }

    /// The same metrics, registered nowhere (for tests and tools).
    pub fn unregistered() -> Result<Self, prometheus::Error> {
        Ok(Self {
            requests: IntCounterVec::new(
                Opts::new("kitefix_github_requests_total", "HTTP requests sent to GitHub."),
                &["endpoint", "status"],
            )?,
            request_duration: HistogramVec::new(
                HistogramOpts::new(
                    "kitefix_github_request_duration_seconds",
                    "Time from sending a GitHub request to having its whole response.",
                )
                .buckets(vec![0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]),
                &["endpoint"],
            )?,
            check_runs: IntCounterVec::new(
                Opts::new("kitefix_check_runs_total", "Check runs published, by conclusion."),
                &["conclusion"],
            )?,
            token_refreshes: IntCounter::new(
                "kitefix_github_token_refreshes_total",
                "GitHub App installation tokens minted.",
            )?,
            rate_limited: IntCounterVec::new(
                Opts::new(
                    "kitefix_github_rate_limited_total",
                    "GitHub responses asking kitefix to wait (403/429 rate limits).",
                ),
                &["endpoint"],
            )?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registers_under_the_documented_names() {
        let registry = Registry::new();
        let metrics = GitHubMetrics::register(&registry).unwrap();
        metrics.requests.with_label_values(&["checks/create", "201"]).inc();
        metrics.request_duration.with_label_values(&["checks/create"]).observe(0.2);
        metrics.check_runs.with_label_values(&["failure"]).inc();
        metrics.token_refreshes.inc();
        metrics.rate_limited.with_label_values(&["checks/create"]).inc();
        let names: Vec<String> = registry.gather().iter().map(|f| f.name().to_owned()).collect();
        for name in [
            "kitefix_check_runs_total",
            "kitefix_github_rate_limited_total",
            "kitefix_github_request_duration_seconds",
            "kitefix_github_requests_total",
            "kitefix_github_token_refreshes_total",
        ] {
            assert!(names.iter().any(|n| n == name), "{name} missing from {names:?}");
        }
        assert!(GitHubMetrics::register(&registry).is_err(), "double registration must fail");
    }
}
