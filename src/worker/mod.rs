//! The worker: takes builds off the queue, runs the pipeline, records the outcome, and
//! only then settles the delivery.
//!
//! The loop is svix's: a bounded number of builds at once (a semaphore), one task per
//! delivery, and on shutdown no new deliveries while the ones in flight finish. A
//! delivery is acked only after its outcome is in the store, so a crash at any point
//! means the build is delivered again, never lost; the steps are idempotent for that.

mod pipeline;
mod processor;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

pub use pipeline::{Pipeline, Reporter};
pub use processor::{Outcome, Processor, RecordOnly};

use crate::metrics::Metrics;
use crate::queue::{Delivery, Queue, Settled, backoff};
use crate::store::{BuildState, Store};

/// What the worker needs, shared by every delivery task.
#[derive(Clone)]
pub struct Worker {
    pub queue: Arc<dyn Queue>,
    pub store: Store,
    pub metrics: Metrics,
    pub processor: Arc<dyn Processor>,
    pub concurrency: usize,
    pub build_timeout: Duration,
}

impl Worker {
    /// Runs until `shutdown` is cancelled, then waits up to `grace` for builds in flight.
    /// Builds still running after that are abandoned unsettled: the queue delivers them
    /// again (lease expiry, or RabbitMQ requeueing on disconnect).
    pub async fn run(self, shutdown: CancellationToken, grace: Duration) {
        let slots = Arc::new(Semaphore::new(self.concurrency));
        let tasks = TaskTracker::new();
        let mut failures = 0u32;
        tracing::info!(queue = self.queue.kind(), concurrency = self.concurrency, "worker started");
        loop {
            let permit = tokio::select! {
                _ = shutdown.cancelled() => break,
                permit = slots.clone().acquire_owned() => permit.expect("semaphore is never closed"),
            };
            let delivery = tokio::select! {
                _ = shutdown.cancelled() => break,
                delivery = self.queue.receive() => delivery,
            };
            match delivery {
                Ok(delivery) => {
                    failures = 0;
                    self.metrics.queue_messages.with_label_values(&["consumed"]).inc();
                    let worker = self.clone();
                    tasks.spawn(async move {
                        worker.handle(delivery).await;
                        drop(permit);
                    });
                }
                Err(e) => {
                    // The queue is down; back off instead of spinning (RabbitMQ's advice
                    // for consumers whose dependency is unavailable).
                    failures = failures.saturating_add(1);
                    let pause = Duration::from_millis(250 * u64::from(failures.min(20)));
                    tracing::warn!(error = %e, retry_in = ?pause, "cannot receive from the queue");
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(pause) => {}
                    }
                }
            }
        }
        tasks.close();
        tracing::info!(in_flight = tasks.len(), "worker stopping, finishing builds in flight");
        if tokio::time::timeout(grace, tasks.wait()).await.is_err() {
            tracing::warn!(
                abandoned = tasks.len(),
                "grace period over; unfinished builds will be delivered again"
            );
        }
    }

    /// Processes one delivery and settles it; every log line inside carries the build id.
    async fn handle(&self, delivery: Delivery) {
        let event = &delivery.message.event;
        let span = tracing::info_span!(
            "build",
            build_id = %event.build_id,
            org = %event.org,
            pipeline = %event.pipeline,
            number = event.build_number.get(),
            attempt = delivery.attempt,
        );
        self.settle(delivery).instrument(span).await
    }

    async fn settle(&self, delivery: Delivery) {
        let started = Instant::now();
        let key = delivery.message.dedupe_key.clone();
        let message = &delivery.message;
        let previous = match self
            .store
            .record_received(&message.event, message.integration_id.as_deref())
            .await
        {
            Ok(previous) => previous,
            Err(e) => {
                tracing::warn!(error = %e, "cannot record the build; retrying later");
                self.count(delivery.retry(backoff(1), &format!("store unavailable: {e}")).await);
                return;
            }
        };
        if previous.is_final() {
            tracing::info!(state = %previous, "already done; acknowledging the redelivery");
            self.count(delivery.ack().await);
            return;
        }

        let attempt = delivery.attempt;
        let outcome = match tokio::time::timeout(
            self.build_timeout,
            self.processor.process(message, attempt),
        )
        .await
        {
            Ok(outcome) => outcome,
            Err(_) => Outcome::Retry {
                delay: None,
                reason: format!("timed out after {:?}", self.build_timeout),
            },
        };
        let label = outcome.label();
        let recorded = match &outcome {
            Outcome::Done { state, reason } => {
                self.store.set_build_state(&key, *state, reason.as_deref()).await
            }
            Outcome::Retry { reason, .. } => {
                self.store.set_build_state(&key, BuildState::Received, Some(reason)).await
            }
            Outcome::DeadLetter { reason } => {
                self.store.set_build_state(&key, BuildState::Dead, Some(reason)).await
            }
        };
        if let Err(e) = recorded {
            // Not recorded means not acked: the build will be processed again.
            tracing::warn!(error = %e, "cannot record the outcome; retrying later");
            self.count(delivery.retry(backoff(attempt), &format!("store unavailable: {e}")).await);
            return;
        }
        self.metrics
            .build_seconds
            .with_label_values(&[label])
            .observe(started.elapsed().as_secs_f64());
        let settled = match outcome {
            Outcome::Done { state, .. } => {
                tracing::info!(state = %state, "build done");
                self.metrics.builds.with_label_values(&[state.as_str()]).inc();
                delivery.ack().await
            }
            Outcome::Retry { delay, reason } => {
                let delay = delay.unwrap_or_else(|| backoff(attempt));
                tracing::warn!(%reason, retry_in = ?delay, "transient failure");
                let settled = delivery.retry(delay, &reason).await;
                if matches!(settled, Ok(Settled::DeadLettered)) {
                    self.metrics.builds.with_label_values(&["dead"]).inc();
                    let reason = format!("gave up after {attempt} attempts: {reason}");
                    if let Err(e) =
                        self.store.set_build_state(&key, BuildState::Dead, Some(&reason)).await
                    {
                        tracing::warn!(error = %e, "dead-lettered but not recorded");
                    }
                }
                settled
            }
            Outcome::DeadLetter { reason } => {
                tracing::error!(%reason, "permanent failure, dead-lettering");
                self.metrics.builds.with_label_values(&["dead"]).inc();
                delivery.dead_letter(&reason).await
            }
        };
        self.count(settled);
    }

    fn count(&self, settled: Result<Settled, crate::queue::QueueError>) {
        match settled {
            Ok(s) => self.metrics.queue_messages.with_label_values(&[s.as_label()]).inc(),
            Err(e) => {
                tracing::warn!(error = %e, "could not settle the delivery; it will be delivered again")
            }
        }
    }
}
