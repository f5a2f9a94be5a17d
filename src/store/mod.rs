//! Durable state: which builds were accepted and what became of them, the connected
//! organisations with their sealed tokens, the reconciler's cursors, and the embedded
//! queue's messages.
//!
//! SQLite for the embedded default, PostgreSQL for clusters (`store.url`). The embedded
//! queue keeps its messages in the same database (`queue::embedded`).

mod builds;
mod cursors;
mod db;
mod integrations;

pub use builds::{BuildRecord, BuildState, Transition};
pub use db::Db;
pub(crate) use db::with_pool;
pub use integrations::{IntegrationRecord, IntegrationStatus, Sealed};

use crate::config::StoreBackend;

/// A store operation failed. `Unavailable` is what the webhook turns into a 503.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0}")]
    Config(String),
    #[error("the database is unreachable: {0}")]
    Unavailable(#[source] sqlx::Error),
    #[error("database error: {0}")]
    Query(#[source] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

impl StoreError {
    fn from_connect(e: sqlx::Error) -> Self {
        StoreError::Unavailable(e)
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
                StoreError::Unavailable(e)
            }
            other => StoreError::Query(other),
        }
    }
}

/// The store handle: cheap to clone, shared by the receiver and the workers.
#[derive(Debug, Clone)]
pub struct Store {
    db: Db,
    /// Where it lives: the encryption key of a SQLite store is kept next to its file.
    backend: StoreBackend,
}

impl Store {
    #[tracing::instrument(name = "store.connect", skip_all)]
    pub async fn connect(backend: &StoreBackend, max_connections: u32) -> Result<Self, StoreError> {
        Ok(Self { db: Db::connect(backend, max_connections).await?, backend: backend.clone() })
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    pub fn backend(&self) -> &StoreBackend {
        &self.backend
    }

    /// Reachable and answering (`/readyz`).
    pub async fn ping(&self) -> Result<(), StoreError> {
        with_pool!(&self.db, pool => sqlx::query("SELECT 1").execute(pool).await.map(|_| ()))?;
        Ok(())
    }

    pub async fn close(&self) {
        self.db.close().await
    }
}

/// Milliseconds since the Unix epoch, the time unit of every stored timestamp.
pub fn now_millis() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
