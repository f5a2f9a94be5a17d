//! The durable queue between the receiver and the workers.
//!
//! Two backends behind one trait, chosen by `queue.kind`:
//! - `embedded`: a table in the store's database (SQLite or PostgreSQL), leased with a
//!   visibility timeout; nothing else to run.
//! - `rabbitmq`: a quorum queue with publisher confirms, a dead-letter queue and delayed
//!   retries (see `rabbitmq.rs` for the topology and why).
//!
//! The shape follows svix's queue module: `publish` returns only once the message is
//! durable, and a `Delivery` is consumed by exactly one of `ack`, `retry` or
//! `dead_letter`, so "acked twice" cannot be written.

pub mod embedded;
pub mod rabbitmq;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::config::{QueueBackend, QueueSettings};
use crate::domain::{BuildFinished, DedupeKey, IntegrationId};
use crate::store::Db;

/// The queue `queue.kind` names: the embedded one in the store's database `db`, or a
/// RabbitMQ client. Both start their background task on the current tokio runtime and
/// connect lazily, so a broker that is down makes `/readyz` and publishes fail, not
/// start-up (svix's `queue::new_pair` keeps this choice inside its queue module too).
pub fn connect(settings: &QueueSettings, db: &Db) -> Arc<dyn Queue> {
    match &settings.backend {
        QueueBackend::Embedded { visibility_timeout } => Arc::new(embedded::EmbeddedQueue::new(
            db.clone(),
            *visibility_timeout,
            settings.max_attempts,
        )),
        QueueBackend::RabbitMq { url, prefix, prefetch, publish_timeout } => {
            Arc::new(rabbitmq::RabbitMqQueue::start(rabbitmq::RabbitMqOptions {
                url: url.clone(),
                prefix: prefix.clone(),
                max_attempts: settings.max_attempts,
                publish_timeout: *publish_timeout,
                prefetch: *prefetch,
            }))
        }
    }
}

/// What travels through the queue: the verified event and its dedupe key, never a
/// secret (tokens are looked up by the worker from `integration_id`). Unknown fields are
/// ignored when decoding, so messages written by an older kitefix (which also carried
/// `accepted_at` and the event's `state`) are still read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueMessage {
    pub dedupe_key: DedupeKey,
    pub event: BuildFinished,
    /// The connected organisation the webhook arrived for, if any.
    pub integration_id: Option<IntegrationId>,
}

impl QueueMessage {
    pub fn new(event: BuildFinished, integration_id: Option<IntegrationId>) -> Self {
        Self { dedupe_key: event.dedupe_key(), event, integration_id }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a QueueMessage always serialises")
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, QueueError> {
        serde_json::from_slice(bytes).map_err(|e| QueueError::Undecodable(e.to_string()))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The queue cannot take or give messages right now (broker or database down,
    /// confirm timed out). Webhooks answer 503.
    #[error("queue unavailable: {0}")]
    Unavailable(String),
    /// The broker refused the message (nack, or returned as unroutable).
    #[error("queue refused the message: {0}")]
    Refused(String),
    #[error("message is not a kitefix message: {0}")]
    Undecodable(String),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// Messages waiting, being worked on and dead-lettered (`kitefix_queue_depth`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct QueueDepth {
    pub ready: u64,
    /// Leased by a worker (embedded) or waiting in a retry queue (RabbitMQ: delayed).
    pub in_flight: u64,
    pub dead: u64,
}

/// A durable queue of build messages.
#[async_trait]
pub trait Queue: Send + Sync + 'static {
    /// `embedded` or `rabbitmq`, for logs and metrics.
    fn kind(&self) -> &'static str;

    /// Returns once the message is durably stored. A message whose dedupe key is
    /// already waiting may be dropped as a duplicate (embedded) or stored again
    /// (RabbitMQ); the worker dedupes either way.
    async fn publish(&self, message: &QueueMessage) -> Result<(), QueueError>;

    /// Waits for the next message. Cancel by dropping the future: an unfinished
    /// receive leaves the message for another worker.
    async fn receive(&self) -> Result<Delivery, QueueError>;

    async fn depth(&self) -> Result<QueueDepth, QueueError>;

    /// Can publish and receive right now (`/readyz`).
    async fn ping(&self) -> Result<(), QueueError>;
}

/// Settles one delivery. Implemented per backend; reached only through `Delivery`.
#[async_trait]
pub(crate) trait Settle: Send {
    async fn ack(self: Box<Self>) -> Result<(), QueueError>;
    async fn retry(self: Box<Self>, delay: Duration, reason: &str) -> Result<(), QueueError>;
    async fn dead_letter(self: Box<Self>, reason: &str) -> Result<(), QueueError>;
}

/// One message handed to a worker, settled exactly once.
pub struct Delivery {
    pub message: QueueMessage,
    /// 1 on the first delivery, counting retries and redeliveries after a crash.
    pub attempt: u32,
    max_attempts: u32,
    settle: Box<dyn Settle>,
}

/// How a delivery was settled, for the `kitefix_queue_messages_total` metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    Acked,
    Retried,
    DeadLettered,
}

impl Settled {
    pub fn as_label(self) -> &'static str {
        match self {
            Settled::Acked => "acked",
            Settled::Retried => "retried",
            Settled::DeadLettered => "dead_lettered",
        }
    }
}

impl Delivery {
    pub(crate) fn new(
        message: QueueMessage,
        attempt: u32,
        max_attempts: u32,
        settle: Box<dyn Settle>,
    ) -> Self {
        Self { message, attempt, max_attempts, settle }
    }

    /// True when a retry would exceed `queue.max_attempts`: the worker then records the
    /// build as dead and dead-letters it, rather than asking for a retry.
    pub fn is_last_attempt(&self) -> bool {
        self.attempt >= self.max_attempts
    }

    /// The work is recorded: remove the message.
    pub async fn ack(self) -> Result<Settled, QueueError> {
        self.settle.ack().await.map(|()| Settled::Acked)
    }

    /// Transient failure: deliver again after `delay`. Past the last allowed attempt
    /// (see [`is_last_attempt`](Self::is_last_attempt)) the message is dead-lettered with
    /// `reason` instead, so no caller can retry forever.
    pub async fn retry(self, delay: Duration, reason: &str) -> Result<Settled, QueueError> {
        if self.is_last_attempt() {
            let reason = format!("gave up after {} attempts: {reason}", self.attempt);
            return self.settle.dead_letter(&reason).await.map(|()| Settled::DeadLettered);
        }
        self.settle.retry(delay, reason).await.map(|()| Settled::Retried)
    }

    /// Permanent failure: park the message with its reason, never deliver it again.
    pub async fn dead_letter(self, reason: &str) -> Result<Settled, QueueError> {
        self.settle.dead_letter(reason).await.map(|()| Settled::DeadLettered)
    }
}

/// Exponential backoff with full jitter for attempt `n` (1-based): up to 5 s, 10 s,
/// 20 s, … capped at 30 min. Jitter spreads a burst of failures (a Buildkite outage) so
/// the retries do not arrive together (AWS Architecture Blog, "Exponential Backoff and
/// Jitter").
pub fn backoff(attempt: u32) -> Duration {
    const BASE: Duration = Duration::from_secs(5);
    const CAP: Duration = Duration::from_secs(30 * 60);
    let exp = BASE.saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
    let ceiling = exp.min(CAP);
    let millis =
        rand::rng().random_range(ceiling.as_millis() as u64 / 2..=ceiling.as_millis() as u64);
    Duration::from_millis(millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_then_caps_and_stays_jittered() {
        for attempt in 1..=30 {
            let d = backoff(attempt);
            let ceiling = Duration::from_secs(5 * (1u64 << (attempt - 1).min(16)))
                .min(Duration::from_secs(1800));
            assert!(d <= ceiling && d >= ceiling / 2, "attempt {attempt}: {d:?}");
        }
    }
}
