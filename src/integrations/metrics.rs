//! `kitefix_integrations{status}` and `kitefix_integration_connects_total{outcome}`.

use prometheus::{IntCounterVec, IntGaugeVec, Opts, Registry};

#[derive(Clone)]
pub struct IntegrationMetrics {
    /// Integrations by status (connected, missing_scopes, token_rejected, removed).
    pub integrations: IntGaugeVec,
    /// Connection attempts by outcome (connected, token_rejected, missing_scopes…).
    pub connects: IntCounterVec,
}

impl IntegrationMetrics {
    /// Metrics exported through `registry`.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let metrics = Self::unregistered()?;
        registry.register(Box::new(metrics.integrations.clone()))?;
        registry.register(Box::new(metrics.connects.clone()))?;
        Ok(metrics)
    }

    /// Metrics nobody scrapes (the CLI).
    pub fn unregistered() -> prometheus::Result<Self> {
        Ok(Self {
            integrations: IntGaugeVec::new(
                Opts::new("kitefix_integrations", "Connected Buildkite organisations, by status."),
                &["status"],
            )?,
            connects: IntCounterVec::new(
                Opts::new(
                    "kitefix_integration_connects_total",
                    "Attempts to connect a Buildkite organisation, by outcome.",
                ),
                &["outcome"],
            )?,
        })
    }
}
