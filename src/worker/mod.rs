//! The worker: takes builds off the queue, runs the pipeline, records the outcome, and
//! only then settles the delivery.
//!
//! The loop is svix's: a bounded number of builds at once (a semaphore), one task per
//! delivery, and on shutdown no new deliveries while the ones in flight finish. A
//! delivery is acked only after its outcome is in the store, so a crash at any point
//! means the build is delivered again, never lost; the steps are idempotent for that.

mod outcome;
mod pipeline;
mod processor;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use outcome::{Outcome, PipelineError};
pub(crate) use pipeline::{Pipeline, Reporter};
pub use processor::Processor;

use crate::metrics::Metrics;
use crate::queue::{Delivery, Queue, QueueError, Settled, backoff};
use crate::store::{Store, Transition};

/// What the worker needs, shared by every delivery task.
#[derive(Clone)]
pub(crate) struct Worker {
    queue: Arc<dyn Queue>,
    store: Store,
    metrics: Metrics,
    processor: Arc<dyn Processor>,
    concurrency: usize,
    build_timeout: Duration,
}

impl Worker {
    /// A worker taking builds from `queue` for `processor`, as `worker.*` says.
    pub(crate) fn new(
        queue: Arc<dyn Queue>,
        store: Store,
        metrics: Metrics,
        processor: Arc<dyn Processor>,
        settings: &crate::config::WorkerSettings,
    ) -> Self {
        Self {
            queue,
            store,
            metrics,
            processor,
            concurrency: settings.concurrency,
            build_timeout: settings.build_timeout,
        }
    }

    /// Runs until `shutdown` is cancelled, then waits up to `grace` for builds in flight.
    /// Builds still running after that are abandoned unsettled: the queue delivers them
    /// again (lease expiry, or RabbitMQ requeueing on disconnect).
    pub(crate) async fn run(self, shutdown: CancellationToken, grace: Duration) {
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
                        worker.process_delivery(delivery).await;
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

    /// Record → process → record the outcome → settle: one delivery, settled only once
    /// its outcome is in the store. Every log line inside carries the build id.
    #[tracing::instrument(name = "build", skip_all, fields(
        build_id = %delivery.message.event.build_id,
        org = %delivery.message.event.org,
        pipeline = %delivery.message.event.pipeline,
        number = delivery.message.event.build_number.get(),
        attempt = delivery.attempt,
    ))]
    async fn process_delivery(&self, delivery: Delivery) {
        let started = Instant::now();
        let message = &delivery.message;
        let previous =
            match self.store.record_received(&message.event, message.integration_id.as_ref()).await
            {
                Ok(previous) => previous,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot record the build; retrying later");
                    let reason = format!("store unavailable: {e}");
                    return self.count(delivery.retry(backoff(1), &reason).await);
                }
            };
        if previous.is_final() {
            tracing::info!(state = %previous, "already done; acknowledging the redelivery");
            return self.count(delivery.ack().await);
        }

        let outcome = self.process(message).await;
        let label = outcome.label();
        let settlement = Settlement::decide(outcome, &delivery);
        if let Err(e) = self.store.record_outcome(&message.dedupe_key, &settlement.transition).await
        {
            // Not recorded means not acked: the build will be processed again.
            tracing::warn!(error = %e, "cannot record the outcome; retrying later");
            let (delay, reason) = (backoff(delivery.attempt), format!("store unavailable: {e}"));
            return self.count(delivery.retry(delay, &reason).await);
        }
        self.metrics
            .build_seconds
            .with_label_values(&[label])
            .observe(started.elapsed().as_secs_f64());
        let settled = settlement.apply(delivery, &self.metrics).await;
        self.count(settled);
    }

    /// The processor's outcome, or a retry when it runs past `worker.build_timeout_secs`.
    async fn process(&self, message: &crate::queue::QueueMessage) -> Outcome {
        match tokio::time::timeout(self.build_timeout, self.processor.process(message)).await {
            Ok(outcome) => outcome,
            Err(_) => Outcome::Retry {
                delay: None,
                reason: format!("timed out after {:?}", self.build_timeout),
            },
        }
    }

    fn count(&self, settled: Result<Settled, QueueError>) {
        match settled {
            Ok(s) => self.metrics.queue_messages.with_label_values(&[s.as_label()]).inc(),
            Err(e) => {
                tracing::warn!(error = %e, "could not settle the delivery; it will be delivered again")
            }
        }
    }
}

/// What to record and how to settle, decided once from the outcome and whether this was
/// the delivery's last allowed attempt, so a build given up on is written `dead` once.
struct Settlement {
    transition: Transition,
    action: Action,
}

enum Action {
    Ack,
    Retry(Duration, String),
    DeadLetter(String),
}

impl Settlement {
    fn decide(outcome: Outcome, delivery: &Delivery) -> Self {
        let attempt = delivery.attempt;
        let (transition, action) = match outcome {
            Outcome::Reported { note } => (Transition::Reported { note }, Action::Ack),
            Outcome::Skipped { reason } => (Transition::Skipped { reason }, Action::Ack),
            Outcome::Failed { reason } => (Transition::Failed { reason }, Action::Ack),
            Outcome::Retry { reason, .. } if delivery.is_last_attempt() => {
                let reason = format!("gave up after {attempt} attempts: {reason}");
                (Transition::Dead { reason: reason.clone() }, Action::DeadLetter(reason))
            }
            Outcome::Retry { delay, reason } => {
                let delay = delay.unwrap_or_else(|| backoff(attempt));
                (
                    Transition::RetryScheduled { reason: reason.clone() },
                    Action::Retry(delay, reason),
                )
            }
            Outcome::DeadLetter { reason } => {
                (Transition::Dead { reason: reason.clone() }, Action::DeadLetter(reason))
            }
        };
        Self { transition, action }
    }

    async fn apply(self, delivery: Delivery, metrics: &Metrics) -> Result<Settled, QueueError> {
        match self.action {
            Action::Ack => {
                let state = self.transition.state();
                tracing::info!(state = %state, "build done");
                metrics.builds.with_label_values(&[state.as_str()]).inc();
                delivery.ack().await
            }
            Action::Retry(delay, reason) => {
                tracing::warn!(%reason, retry_in = ?delay, "transient failure");
                delivery.retry(delay, &reason).await
            }
            Action::DeadLetter(reason) => {
                tracing::error!(%reason, "giving up on the build, dead-lettering");
                metrics.builds.with_label_values(&["dead"]).inc();
                delivery.dead_letter(&reason).await
            }
        }
    }
}
