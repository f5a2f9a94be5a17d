//! Accepting a verified failed build: dedupe, queue durably, record.

use std::sync::Arc;
use std::time::Instant;

use crate::metrics::Metrics;
use crate::queue::{Queue, QueueError, QueueMessage};
use crate::store::{Store, StoreError};
use crate::webhook::BuildFinished;

/// What became of an accepted event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    /// Newly queued.
    Queued,
    /// This (org, build id, finished_at) was accepted before; nothing queued.
    Duplicate,
}

/// The event could not be made durable; the sender gets 503 and may try again.
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// The receiver's side of the queue, shared by the webhook routes and the reconciler.
#[derive(Clone)]
pub struct Intake {
    store: Store,
    queue: Arc<dyn Queue>,
    metrics: Metrics,
}

impl Intake {
    pub fn new(store: Store, queue: Arc<dyn Queue>, metrics: Metrics) -> Self {
        Self { store, queue, metrics }
    }

    /// Order matters for "nothing acknowledged is lost, nothing half-written": the store
    /// is asked first (a duplicate or an unreachable store ends it before anything is
    /// queued), the queue is written next (a failure there leaves no trace), and the
    /// build is recorded last. If that last write fails the message is still durably
    /// queued and the worker records the build when it takes it.
    #[tracing::instrument(
        name = "intake.accept",
        skip_all,
        fields(org = %event.org, build_id = %event.build_id, dedupe_key = %event.dedupe_key())
    )]
    pub async fn accept(
        &self,
        event: BuildFinished,
        integration_id: Option<String>,
    ) -> Result<Accepted, IntakeError> {
        let key = event.dedupe_key();
        if self.store.build_known(&key).await? {
            tracing::info!("duplicate delivery, nothing queued");
            return Ok(Accepted::Duplicate);
        }
        let message = QueueMessage::new(event, integration_id);
        let started = Instant::now();
        self.queue.publish(&message).await?;
        self.metrics
            .publish_seconds
            .with_label_values(&[self.queue.kind()])
            .observe(started.elapsed().as_secs_f64());
        if let Err(e) =
            self.store.record_queued(&message.event, message.integration_id.as_deref()).await
        {
            tracing::warn!(error = %e, "queued but not recorded; the worker will record it");
        }
        tracing::info!("build queued");
        Ok(Accepted::Queued)
    }
}
