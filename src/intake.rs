//! Accepting a verified failed build: dedupe, queue durably, record.
//!
//! The hot path of the shared route is one indexed read and one durable publish (a
//! connected organisation's route also reads and decrypts its webhook token first). Recording
//! the build in the store is taken off it: a recorder task writes accepted builds in
//! batches (one commit per batch), and a bounded in-memory set remembers keys accepted
//! but not yet written, so a redelivery in between is still recognised. The record is a
//! convenience (dedupe, the admin page), not what makes the event durable: the queue is.
//! If a batch cannot be written, the worker records each build when it takes it.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::mpsc;

use crate::domain::{BuildFinished, DedupeKey, IntegrationId};
use crate::metrics::Metrics;
use crate::queue::{Queue, QueueError, QueueMessage};
use crate::store::{Store, StoreError};

/// Keys remembered in memory; far more than a recorder batch ever holds.
const RECENT_KEYS: usize = 65_536;
/// Builds the recorder writes in one transaction.
const RECORD_BATCH: usize = 512;

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
    recent: Arc<Mutex<RecentKeys>>,
    recorder: mpsc::Sender<(BuildFinished, Option<IntegrationId>)>,
}

impl Intake {
    /// Starts the recorder task on the current tokio runtime.
    pub fn new(store: Store, queue: Arc<dyn Queue>, metrics: Metrics) -> Self {
        let (recorder, pending) = mpsc::channel(4 * RECORD_BATCH);
        tokio::spawn(record_batches(store.clone(), pending));
        Self { store, queue, metrics, recent: Arc::default(), recorder }
    }

    /// Order matters for "nothing acknowledged is lost, nothing half-written": known
    /// keys are checked first (a duplicate or an unreachable store ends it before
    /// anything is queued), then the queue is written (a failure there leaves no trace),
    /// and only then is the build handed to the recorder.
    #[tracing::instrument(
        name = "intake.accept",
        skip_all,
        fields(org = %event.org, build_id = %event.build_id, dedupe_key = tracing::field::Empty)
    )]
    pub async fn accept(
        &self,
        event: BuildFinished,
        integration_id: Option<IntegrationId>,
    ) -> Result<Accepted, IntakeError> {
        let message = QueueMessage::new(event, integration_id);
        let key = message.dedupe_key.clone();
        tracing::Span::current().record("dedupe_key", key.as_str());
        if self.recent.lock().expect("not poisoned").contains(&key)
            || self.store.build_known(&key).await?
        {
            tracing::info!("duplicate delivery, nothing queued");
            return Ok(Accepted::Duplicate);
        }
        let started = Instant::now();
        self.queue.publish(&message).await?;
        self.metrics
            .publish_seconds
            .with_label_values(&[self.queue.kind()])
            .observe(started.elapsed().as_secs_f64());
        self.recent.lock().expect("not poisoned").insert(key);
        if self.recorder.try_send((message.event, message.integration_id)).is_err() {
            tracing::warn!("recorder backlog full; the worker will record the build");
        }
        tracing::info!("build queued");
        Ok(Accepted::Queued)
    }
}

/// Writes accepted builds to the store in batches.
async fn record_batches(
    store: Store,
    mut pending: mpsc::Receiver<(BuildFinished, Option<IntegrationId>)>,
) {
    let mut batch = Vec::with_capacity(RECORD_BATCH);
    while pending.recv_many(&mut batch, RECORD_BATCH).await > 0 {
        if let Err(e) = store.record_queued_many(&batch).await {
            tracing::warn!(error = %e, count = batch.len(), "queued builds not recorded; the worker will record them");
        }
        batch.clear();
    }
}

/// A bounded set of recently accepted keys, oldest evicted first.
#[derive(Default)]
struct RecentKeys {
    set: HashSet<DedupeKey>,
    order: VecDeque<DedupeKey>,
}

impl RecentKeys {
    fn contains(&self, key: &DedupeKey) -> bool {
        self.set.contains(key)
    }

    fn insert(&mut self, key: DedupeKey) {
        if self.set.insert(key.clone()) {
            self.order.push_back(key);
            if self.order.len() > RECENT_KEYS
                && let Some(old) = self.order.pop_front()
            {
                self.set.remove(&old);
            }
        }
    }
}
