//! Catches the webhooks Buildkite never delivered: every `reconciler.interval_secs` it
//! asks each organisation for failed builds finished since it last looked
//! (`GET /v2/organizations/{org}/builds?state=failed&finished_from=…`) and hands each one
//! to the same [`Intake`] the webhook route uses, so a build that did arrive by webhook is
//! recognised as a duplicate and analysed once.
//!
//! Buildkite documents no redelivery of a webhook that failed to arrive
//! (docs/buildkite.md#webhook-delivery), so without this a receiver outage loses analyses.
//!
//! It runs in the worker roles only (`--role worker`, `--role all`; see `startup.rs`):
//! background calls to Buildkite stay on the worker side, and adding receiver replicas
//! does not multiply the polling.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use prometheus::{IntCounterVec, Opts, Registry};
use tokio_util::sync::CancellationToken;

use crate::buildkite::BuildkiteClient;
use crate::config::ReconcilerSettings;
use crate::domain::{IntegrationId, OrgSlug};
use crate::intake::{Accepted, Intake};
use crate::integrations::Integrations;
use crate::store::IntegrationStatus;
use crate::store::Store;
use crate::tokens::TokenSource;

/// Asked again each pass, so a build that finished just before the last pass (but was
/// indexed by Buildkite a moment later) is not missed; the intake drops the repeats.
const OVERLAP: chrono::Duration = chrono::Duration::minutes(5);
/// In a single-org set-up, organisations whose webhooks arrived this recently are polled.
const SEEN_WITHIN: chrono::Duration = chrono::Duration::days(30);

/// One organisation to poll, with the integration whose token to use (if any).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub org: OrgSlug,
    pub integration_id: Option<IntegrationId>,
}

impl Target {
    fn cursor_key(&self) -> String {
        match &self.integration_id {
            Some(id) => format!("{}/{id}", self.org),
            None => self.org.to_string(),
        }
    }
}

#[derive(Clone)]
pub struct ReconcilerMetrics {
    /// Builds found, by what the intake made of them (`queued`, `duplicate`, `invalid`).
    builds: IntCounterVec,
    /// Organisation polls, by outcome (`ok`, `error`).
    polls: IntCounterVec,
}

impl ReconcilerMetrics {
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let builds = IntCounterVec::new(
            Opts::new(
                "kitefix_reconciler_builds_total",
                "Failed builds the reconciler found, by outcome (queued = its webhook was lost).",
            ),
            &["outcome"],
        )?;
        let polls = IntCounterVec::new(
            Opts::new("kitefix_reconciler_polls_total", "Organisation polls, by outcome."),
            &["outcome"],
        )?;
        registry.register(Box::new(builds.clone()))?;
        registry.register(Box::new(polls.clone()))?;
        Ok(Self { builds, polls })
    }
}

/// When the reconciler polls: every `every`, and how far back the first pass for a new
/// organisation looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    pub every: Duration,
    pub lookback: Duration,
}

impl Schedule {
    /// `None` when `reconciler.interval_secs = 0` turns the reconciler off.
    pub fn from_settings(settings: &ReconcilerSettings) -> Option<Self> {
        settings.interval.map(|every| Schedule { every, lookback: settings.lookback })
    }
}

pub struct Reconciler {
    client: BuildkiteClient,
    intake: Intake,
    store: Store,
    tokens: Arc<dyn TokenSource>,
    /// Connected integrations to poll besides the orgs seen on the shared route.
    integrations: Arc<dyn IntegrationTargets>,
    schedule: Schedule,
    metrics: ReconcilerMetrics,
}

/// The connected organisations (from the integrations store).
#[async_trait::async_trait]
pub trait IntegrationTargets: Send + Sync + 'static {
    async fn targets(&self) -> Vec<Target>;
}

/// Connected integrations are polled with their own token; ones whose token was rejected
/// or lost a scope are not (the worker would refuse their builds anyway).
#[async_trait::async_trait]
impl IntegrationTargets for Integrations {
    async fn targets(&self) -> Vec<Target> {
        match self.list().await {
            Ok(list) => list
                .into_iter()
                .filter(|i| i.status == IntegrationStatus::Connected)
                .filter_map(|i| {
                    let org = OrgSlug::parse(&i.org_slug).ok()?;
                    let id = IntegrationId::parse(&i.id).ok()?;
                    Some(Target { org, integration_id: Some(id) })
                })
                .collect(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot list integrations to reconcile");
                Vec::new()
            }
        }
    }
}

/// What one pass over one organisation did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PassSummary {
    pub found: usize,
    pub queued: usize,
}

impl Reconciler {
    /// Polls the organisations `integrations` lists and those seen on the shared webhook
    /// route, with `tokens`, queueing what it finds through `intake` (and so with the
    /// same dedupe as the webhook route).
    pub fn new(
        client: BuildkiteClient,
        tokens: Arc<dyn TokenSource>,
        intake: Intake,
        store: Store,
        integrations: Arc<dyn IntegrationTargets>,
        schedule: Schedule,
        metrics: ReconcilerMetrics,
    ) -> Self {
        Self { client, intake, store, tokens, integrations, schedule, metrics }
    }

    /// Polls until `shutdown`; the first pass runs at once.
    pub async fn run(self, shutdown: CancellationToken) {
        tracing::info!(interval_secs = self.schedule.every.as_secs(), "reconciler started");
        loop {
            self.pass().await;
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(self.schedule.every) => {}
            }
        }
        tracing::info!("reconciler stopped");
    }

    /// One pass over every target; errors are logged and counted, never fatal.
    #[tracing::instrument(name = "reconciler.pass", skip_all)]
    pub async fn pass(&self) -> Vec<(Target, Result<PassSummary, String>)> {
        let mut results = Vec::new();
        for target in self.targets().await {
            let result = self.reconcile(&target).await;
            let outcome = if result.is_ok() { "ok" } else { "error" };
            self.metrics.polls.with_label_values(&[outcome]).inc();
            if let Err(e) = &result {
                tracing::warn!(org = %target.org, error = %e, "reconciling the organisation failed");
            }
            results.push((target, result));
        }
        results
    }

    async fn targets(&self) -> Vec<Target> {
        let mut targets = self.integrations.targets().await;
        let since = (Utc::now() - SEEN_WITHIN).timestamp_millis();
        match self.store.orgs_seen_without_integration(since).await {
            Ok(orgs) => {
                // An organisation that is connected is polled once, as its integration,
                // even if some of its webhooks also came on the shared route.
                let shared_route: Vec<Target> = orgs
                    .iter()
                    .filter_map(|o| OrgSlug::parse(o).ok())
                    .filter(|org| !targets.iter().any(|t| &t.org == org))
                    .map(|org| Target { org, integration_id: None })
                    .collect();
                targets.extend(shared_route);
            }
            Err(e) => tracing::warn!(error = %e, "cannot list organisations to reconcile"),
        }
        targets
    }

    #[tracing::instrument(name = "reconciler.reconcile", skip_all, fields(org = %target.org))]
    async fn reconcile(&self, target: &Target) -> Result<PassSummary, String> {
        let key = target.cursor_key();
        let started = Utc::now();
        let cursor = self.store.reconcile_cursor(&key).await.map_err(|e| e.to_string())?;
        let from = match cursor.and_then(DateTime::from_timestamp_millis) {
            Some(t) => t - OVERLAP,
            None => started - chrono::Duration::from_std(self.schedule.lookback).unwrap_or(OVERLAP),
        };
        let token = self
            .tokens
            .token_for(&target.org, target.integration_id.as_ref())
            .await
            .map_err(|e| e.to_string())?;
        let builds = self
            .client
            .list_failed_builds(&token, &target.org, from)
            .await
            .map_err(|e| e.to_string())?;
        let mut summary = PassSummary { found: builds.len(), queued: 0 };
        for build in &builds {
            let Some(event) = build.finished_event(&target.org) else {
                self.metrics.builds.with_label_values(&["invalid"]).inc();
                continue;
            };
            match self.intake.accept(event, target.integration_id.clone()).await {
                Ok(Accepted::Queued) => {
                    summary.queued += 1;
                    self.metrics.builds.with_label_values(&["queued"]).inc();
                    tracing::info!(build_id = %build.id, "queued a failed build whose webhook never arrived");
                }
                Ok(Accepted::Duplicate) => {
                    self.metrics.builds.with_label_values(&["duplicate"]).inc();
                }
                // The cursor stays where it was, so the next pass tries again.
                Err(e) => return Err(format!("cannot queue build {}: {e}", build.id)),
            }
        }
        // Everything that finished before `started` has now been seen.
        self.store
            .set_reconcile_cursor(&key, started.timestamp_millis())
            .await
            .map_err(|e| e.to_string())?;
        Ok(summary)
    }
}
