//! The periodic check of connected organisations' tokens: a token revoked or stripped of
//! scopes on Buildkite's side is marked (`token_rejected`, `missing_scopes`, with the
//! reason) before the next failed build needs it, so the admin list shows the problem
//! and the worker refuses that organisation with a clear reason instead of 401s.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::Integrations;

/// Verifies every live integration each `interval` (the first time one interval after
/// start) until `shutdown`.
pub async fn run(integrations: Integrations, interval: Duration, shutdown: CancellationToken) {
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        // A check in flight is dropped at shutdown: each integration's update is one write.
        let result = tokio::select! {
            _ = shutdown.cancelled() => return,
            result = integrations.verify_all() => result,
        };
        match result {
            Ok(checked) => tracing::info!(checked, "integrations verified"),
            Err(e) => {
                tracing::warn!(error = %e, "integrations could not be listed for verification")
            }
        }
    }
}
