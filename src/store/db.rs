//! One connection pool, SQLite or PostgreSQL, as `store.url` names it (resolved into a
//! [`StoreBackend`] by the config).
//!
//! The SQL kitefix runs is the same text on both backends (`$n` placeholders work in
//! SQLite too; times are integer milliseconds, JSON is text), so each query is written
//! once and `with_pool!` expands it for whichever pool is configured. Each backend keeps
//! its own migrations (`migrations/sqlite`, `migrations/postgres`) for the DDL that does
//! differ.

use std::str::FromStr;
use std::time::Duration;

use secrecy::ExposeSecret;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};

use super::StoreError;
use crate::config::StoreBackend;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// How long a request waits for a pooled connection before the store counts as down
/// (and a webhook gets 503 instead of hanging).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, Clone)]
pub enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs `$body` with `$pool` bound to the configured pool, whichever backend it is.
macro_rules! with_pool {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            $crate::store::Db::Sqlite($pool) => $body,
            $crate::store::Db::Postgres($pool) => $body,
        }
    };
}
pub(crate) use with_pool;

impl Db {
    /// Connects and brings the schema up to date.
    pub async fn connect(backend: &StoreBackend, max_connections: u32) -> Result<Self, StoreError> {
        let db = match backend {
            StoreBackend::Sqlite { url, .. } => {
                let options = SqliteConnectOptions::from_str(url)
                    .map_err(|e| StoreError::Config(format!("store.url is not a SQLite URL: {e}")))?
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    // FULL: a commit is on disk before it returns, so an event we answered 2xx
                    // for survives a power cut, not only a process crash (sqlite.org/pragma.html#pragma_synchronous).
                    .synchronous(SqliteSynchronous::Full)
                    .busy_timeout(Duration::from_secs(5))
                    .foreign_keys(true);
                let pool = SqlitePoolOptions::new()
                    .max_connections(max_connections)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .connect_with(options)
                    .await
                    .map_err(StoreError::from_connect)?;
                SQLITE_MIGRATIONS.run(&pool).await?;
                Db::Sqlite(pool)
            }
            StoreBackend::Postgres(url) => {
                let options = PgConnectOptions::from_str(url.expose_secret()).map_err(|e| {
                    StoreError::Config(format!("store.url is not a PostgreSQL URL: {e}"))
                })?;
                let pool = PgPoolOptions::new()
                    .max_connections(max_connections)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .connect_with(options)
                    .await
                    .map_err(StoreError::from_connect)?;
                POSTGRES_MIGRATIONS.run(&pool).await?;
                Db::Postgres(pool)
            }
        };
        Ok(db)
    }

    pub fn backend_name(&self) -> &'static str {
        match self {
            Db::Sqlite(_) => "sqlite",
            Db::Postgres(_) => "postgres",
        }
    }

    pub async fn close(&self) {
        with_pool!(self, pool => pool.close().await)
    }
}
