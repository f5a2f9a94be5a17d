//! Durable state: which builds were accepted and what became of them.
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

use secrecy::SecretString;

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
}

impl Store {
    #[tracing::instrument(name = "store.connect", skip_all)]
    pub async fn connect(url: &SecretString, max_connections: u32) -> Result<Self, StoreError> {
        Ok(Self { db: Db::connect(url, max_connections).await? })
    }

    pub fn db(&self) -> &Db {
        &self.db
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
