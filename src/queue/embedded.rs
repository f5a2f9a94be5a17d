//! The embedded queue: a `queue_messages` table in the store's own database.
//!
//! A worker leases the oldest ready message with one atomic `UPDATE … RETURNING`; the
//! lease hides it from other workers for `visibility_timeout`, after which a crashed
//! worker's message is delivered again. Ack deletes the row, retry moves `run_at` into the
//! future, dead-letter stamps `dead_at` and keeps the row (with its reason) for
//! inspection. Because rows live in SQLite or PostgreSQL, a restart loses nothing.
//!
//! Publishes are group-committed: one writer task takes whatever publishes are waiting
//! and inserts them in one transaction, so a burst of webhooks costs one fsync per batch
//! instead of one each, and every caller still hears back only after the commit.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{Notify, mpsc, oneshot};

use super::{Delivery, Queue, QueueDepth, QueueError, QueueMessage, Settle};
use crate::store::{Db, StoreError, now_millis, with_pool};

/// How often an idle worker looks for new messages published by another process.
/// Publishes from this process wake it at once.
const IDLE_POLL: Duration = Duration::from_millis(250);

/// Leases the oldest ready message. SQLite runs one writer at a time, so the sub-select
/// and the update cannot interleave with another worker's.
const LEASE_SQLITE: &str = "UPDATE queue_messages \
     SET leased_until = $1, lease_id = $2, attempts = attempts + 1 \
     WHERE id = (SELECT id FROM queue_messages \
                 WHERE dead_at IS NULL AND run_at <= $3 AND (leased_until IS NULL OR leased_until < $3) \
                 ORDER BY run_at, id LIMIT 1) \
     RETURNING id, payload, attempts";

/// PostgreSQL runs workers in parallel: `SKIP LOCKED` lets each take a different row
/// instead of queueing behind one lock (postgresql.org/docs/current/sql-select.html).
const LEASE_POSTGRES: &str = "UPDATE queue_messages \
     SET leased_until = $1, lease_id = $2, attempts = attempts + 1 \
     WHERE id = (SELECT id FROM queue_messages \
                 WHERE dead_at IS NULL AND run_at <= $3 AND (leased_until IS NULL OR leased_until < $3) \
                 ORDER BY run_at, id LIMIT 1 FOR UPDATE SKIP LOCKED) \
     RETURNING id, payload, attempts";

/// Most publishes committed in one transaction.
const MAX_BATCH: usize = 256;

type PublishReply = oneshot::Sender<Result<(), QueueError>>;

#[derive(Debug, Clone)]
pub struct EmbeddedQueue {
    db: Db,
    visibility_timeout: Duration,
    max_attempts: u32,
    wake: Arc<Notify>,
    writer: mpsc::Sender<(QueueMessage, PublishReply)>,
}

impl EmbeddedQueue {
    /// Starts the writer task on the current tokio runtime.
    pub fn new(db: Db, visibility_timeout: Duration, max_attempts: u32) -> Self {
        let wake = Arc::new(Notify::new());
        let (writer, requests) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(write_batches(db.clone(), requests, wake.clone()));
        Self { db, visibility_timeout, max_attempts, wake, writer }
    }

    async fn lease(&self) -> Result<Option<(i64, String, i64, String)>, QueueError> {
        let now = now_millis();
        let lease_id = uuid::Uuid::new_v4().to_string();
        let until = now + self.visibility_timeout.as_millis() as i64;
        let row: Option<(i64, String, i64)> = match &self.db {
            Db::Sqlite(pool) => {
                sqlx::query_as(LEASE_SQLITE)
                    .bind(until)
                    .bind(&lease_id)
                    .bind(now)
                    .fetch_optional(pool)
                    .await
            }
            Db::Postgres(pool) => {
                sqlx::query_as(LEASE_POSTGRES)
                    .bind(until)
                    .bind(&lease_id)
                    .bind(now)
                    .fetch_optional(pool)
                    .await
            }
        }
        .map_err(StoreError::from)?;
        Ok(row.map(|(id, payload, attempts)| (id, payload, attempts, lease_id)))
    }
}

#[async_trait]
impl Queue for EmbeddedQueue {
    fn kind(&self) -> &'static str {
        "embedded"
    }

    #[tracing::instrument(name = "queue.publish", skip_all, fields(queue = "embedded", dedupe_key = %message.dedupe_key))]
    async fn publish(&self, message: &QueueMessage) -> Result<(), QueueError> {
        let (reply, answer) = oneshot::channel();
        self.writer
            .send((message.clone(), reply))
            .await
            .map_err(|_| QueueError::Unavailable("the queue writer stopped".into()))?;
        answer.await.map_err(|_| QueueError::Unavailable("the queue writer stopped".into()))?
    }

    async fn receive(&self) -> Result<Delivery, QueueError> {
        loop {
            // Register for a wake-up before looking, so a publish between the empty look
            // and the wait is not missed.
            let woken = self.wake.notified();
            if let Some((id, payload, attempts, lease_id)) = self.lease().await? {
                let settle = Box::new(EmbeddedSettle { db: self.db.clone(), id, lease_id });
                let attempt = u32::try_from(attempts).unwrap_or(u32::MAX);
                match QueueMessage::from_bytes(payload.as_bytes()) {
                    Ok(message) if attempt <= self.max_attempts => {
                        return Ok(Delivery::new(message, attempt, self.max_attempts, settle));
                    }
                    // Leased more often than allowed: the worker died or timed out on it
                    // every time. Park it instead of crashing the next worker too.
                    Ok(message) => {
                        tracing::warn!(dedupe_key = %message.dedupe_key, attempt, "delivery limit exceeded, dead-lettering");
                        settle
                            .dead_letter(&format!(
                                "delivery limit exceeded: leased {attempt} times without being settled"
                            ))
                            .await?;
                    }
                    Err(e) => {
                        tracing::error!(message_id = id, error = %e, "undecodable message, dead-lettering");
                        settle.dead_letter(&e.to_string()).await?;
                    }
                }
                continue;
            }
            let _ = tokio::time::timeout(IDLE_POLL, woken).await;
        }
    }

    async fn depth(&self) -> Result<QueueDepth, QueueError> {
        let now = now_millis();
        let (ready, in_flight, dead): (i64, i64, i64) = with_pool!(&self.db, pool => {
            sqlx::query_as(
                "SELECT \
                   COUNT(*) FILTER (WHERE dead_at IS NULL AND (leased_until IS NULL OR leased_until < $1)), \
                   COUNT(*) FILTER (WHERE dead_at IS NULL AND leased_until >= $1), \
                   COUNT(*) FILTER (WHERE dead_at IS NOT NULL) \
                 FROM queue_messages",
            )
            .bind(now)
            .fetch_one(pool)
            .await
        })
        .map_err(StoreError::from)?;
        Ok(QueueDepth { ready: ready as u64, in_flight: in_flight as u64, dead: dead as u64 })
    }

    async fn ping(&self) -> Result<(), QueueError> {
        with_pool!(&self.db, pool => sqlx::query("SELECT 1 FROM queue_messages LIMIT 1").execute(pool).await.map(|_| ()))
            .map_err(|e| QueueError::Unavailable(StoreError::from(e).to_string()))?;
        Ok(())
    }
}

/// The writer task: commits waiting publishes in batches, answers each caller after its
/// batch's commit, and wakes idle workers.
async fn write_batches(
    db: Db,
    mut requests: mpsc::Receiver<(QueueMessage, PublishReply)>,
    wake: Arc<Notify>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while requests.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let result = insert_batch(&db, batch.iter().map(|(m, _)| m)).await;
        for (_, reply) in batch.drain(..) {
            let _ = reply.send(
                result.as_ref().map(|_| ()).map_err(|e| QueueError::Unavailable(e.to_string())),
            );
        }
        if result.is_ok() {
            wake.notify_waiters();
            wake.notify_one();
        }
    }
}

/// Inserts messages in one transaction. A key already waiting is the same build
/// finishing the same way: it keeps one row.
async fn insert_batch<'a>(
    db: &Db,
    messages: impl Iterator<Item = &'a QueueMessage>,
) -> Result<(), StoreError> {
    let now = now_millis();
    with_pool!(db, pool => {
        let mut tx = pool.begin().await?;
        for message in messages {
            let payload = String::from_utf8(message.to_bytes()).expect("JSON is UTF-8");
            sqlx::query(
                "INSERT INTO queue_messages (dedupe_key, payload, attempts, run_at, created_at) \
                 VALUES ($1, $2, 0, $3, $3) ON CONFLICT (dedupe_key) DO NOTHING",
            )
            .bind(message.dedupe_key.as_str())
            .bind(payload)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await
    })?;
    Ok(())
}

/// Settles a leased row. Every statement checks the lease id: if the lease expired and
/// another worker took the message, this worker's late verdict changes nothing.
struct EmbeddedSettle {
    db: Db,
    id: i64,
    lease_id: String,
}

impl EmbeddedSettle {
    /// Gives the message back: ready again at `run_at`, or parked for good when `dead_at`
    /// is set. `reason` is kept in `last_error` for whoever inspects the queue.
    async fn release(
        &self,
        run_at: i64,
        dead_at: Option<i64>,
        reason: &str,
    ) -> Result<(), QueueError> {
        let affected = with_pool!(&self.db, pool => {
            sqlx::query(
                "UPDATE queue_messages SET run_at = $1, dead_at = $2, leased_until = NULL, lease_id = NULL, \
                 last_error = $3 WHERE id = $4 AND lease_id = $5",
            )
            .bind(run_at)
            .bind(dead_at)
            .bind(reason)
            .bind(self.id)
            .bind(&self.lease_id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })
        .map_err(StoreError::from)?;
        self.lost_lease(affected);
        Ok(())
    }

    fn lost_lease(&self, affected: u64) {
        if affected == 0 {
            tracing::warn!(
                message_id = self.id,
                "lease expired before the message was settled; another worker owns it"
            );
        }
    }
}

#[async_trait]
impl Settle for EmbeddedSettle {
    async fn ack(self: Box<Self>) -> Result<(), QueueError> {
        let affected = with_pool!(&self.db, pool => {
            sqlx::query("DELETE FROM queue_messages WHERE id = $1 AND lease_id = $2")
                .bind(self.id)
                .bind(&self.lease_id)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })
        .map_err(StoreError::from)?;
        self.lost_lease(affected);
        Ok(())
    }

    async fn retry(self: Box<Self>, delay: Duration, reason: &str) -> Result<(), QueueError> {
        self.release(now_millis() + delay.as_millis() as i64, None, reason).await
    }

    async fn dead_letter(self: Box<Self>, reason: &str) -> Result<(), QueueError> {
        let now = now_millis();
        self.release(now, Some(now), reason).await
    }
}
