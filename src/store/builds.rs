//! The `builds` table: one row per accepted delivery key and what became of it.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use super::{Store, StoreError, now_millis, with_pool};
use crate::domain::{BuildFinished, BuildId, BuildReport, DedupeKey, IntegrationId};
use crate::render::CheckRunContent;

/// Where a build is in kitefix's pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BuildState {
    /// Accepted by the receiver and durably queued.
    Queued,
    /// A worker has it, or had it and hit trouble worth retrying: the queue delivers it
    /// again (the reason says what went wrong last).
    Received,
    /// Analysed and reported (posted to GitHub, or stored in dry-run).
    Reported,
    /// Nothing to report, with the reason (pipeline not on GitHub, no failed jobs…).
    Skipped,
    /// Gave up with a permanent error, recorded in `reason`.
    Failed,
    /// Dead-lettered after too many attempts.
    Dead,
}

impl BuildState {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            BuildState::Queued => "queued",
            BuildState::Received => "received",
            BuildState::Reported => "reported",
            BuildState::Skipped => "skipped",
            BuildState::Failed => "failed",
            BuildState::Dead => "dead",
        }
    }

    /// Finished for good: a redelivery needs no more work.
    pub fn is_final(self) -> bool {
        matches!(self, BuildState::Reported | BuildState::Skipped | BuildState::Failed)
    }
}

impl fmt::Display for BuildState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for BuildState {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, StoreError> {
        Ok(match s {
            "queued" => BuildState::Queued,
            "received" => BuildState::Received,
            "reported" => BuildState::Reported,
            "skipped" => BuildState::Skipped,
            "failed" => BuildState::Failed,
            "dead" => BuildState::Dead,
            other => return Err(StoreError::Corrupt(format!("unknown build state `{other}`"))),
        })
    }
}

/// What a worker's attempt made of a build: the only ways a worker changes a build's
/// state, each written by [`Store::record_outcome`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    /// Reported (posted, or stored in dry-run, which `note` then says).
    Reported { note: Option<String> },
    /// Nothing to report.
    Skipped { reason: String },
    /// Gave up with a permanent error.
    Failed { reason: String },
    /// Transient trouble; the queue delivers the build again.
    RetryScheduled { reason: String },
    /// Dead-lettered: given up after too many attempts, or parked for a person.
    Dead { reason: String },
}

impl Transition {
    /// The state the row is left in.
    pub(crate) fn state(&self) -> BuildState {
        match self {
            Transition::Reported { .. } => BuildState::Reported,
            Transition::Skipped { .. } => BuildState::Skipped,
            Transition::Failed { .. } => BuildState::Failed,
            Transition::RetryScheduled { .. } => BuildState::Received,
            Transition::Dead { .. } => BuildState::Dead,
        }
    }

    /// The reason recorded for people beside the state.
    pub(crate) fn reason(&self) -> Option<&str> {
        match self {
            Transition::Reported { note } => note.as_deref(),
            Transition::Skipped { reason }
            | Transition::Failed { reason }
            | Transition::RetryScheduled { reason }
            | Transition::Dead { reason } => Some(reason),
        }
    }
}

#[derive(sqlx::FromRow)]
struct BuildRow {
    dedupe_key: String,
    event: String,
    integration_id: Option<String>,
    state: String,
    attempts: i64,
    reason: Option<String>,
    report: Option<String>,
    check_run: Option<String>,
    check_run_id: Option<i64>,
    check_run_url: Option<String>,
    queued_at: i64,
    updated_at: i64,
}

/// A stored build, decoded.
#[derive(Debug, Clone, Serialize)]
pub struct BuildRecord {
    pub dedupe_key: DedupeKey,
    pub event: BuildFinished,
    pub integration_id: Option<IntegrationId>,
    pub state: BuildState,
    pub attempts: i64,
    pub reason: Option<String>,
    /// What the worker found, once analysed.
    pub report: Option<BuildReport>,
    /// The check run posted, or in dry-run the one that would have been.
    pub check_run: Option<CheckRunContent>,
    pub check_run_id: Option<i64>,
    pub check_run_url: Option<String>,
    pub queued_at: i64,
    pub updated_at: i64,
}

impl TryFrom<BuildRow> for BuildRecord {
    type Error = StoreError;

    fn try_from(row: BuildRow) -> Result<Self, StoreError> {
        let corrupt = |what: &str, e: &dyn fmt::Display| {
            StoreError::Corrupt(format!("{what} of {}: {e}", row.dedupe_key))
        };
        let event: BuildFinished =
            serde_json::from_str(&row.event).map_err(|e| corrupt("event", &e))?;
        let integration_id = row
            .integration_id
            .as_deref()
            .map(IntegrationId::parse)
            .transpose()
            .map_err(|e| corrupt("integration id", &e))?;
        Ok(BuildRecord {
            dedupe_key: event.dedupe_key(),
            event,
            integration_id,
            state: row.state.parse()?,
            attempts: row.attempts,
            reason: row.reason,
            report: lenient(&row.dedupe_key, "report", row.report.as_deref()),
            check_run: lenient(&row.dedupe_key, "check run", row.check_run.as_deref()),
            check_run_id: row.check_run_id,
            check_run_url: row.check_run_url,
            queued_at: row.queued_at,
            updated_at: row.updated_at,
        })
    }
}

/// A stored report or check run that no longer decodes (written by an older kitefix whose
/// report had another shape) is shown as missing, not as an error that would blank the
/// whole list it is in; the build's state and reason still tell what happened.
fn lenient<T: serde::de::DeserializeOwned>(key: &str, what: &str, json: Option<&str>) -> Option<T> {
    match serde_json::from_str(json?) {
        Ok(value) => Some(value),
        Err(e) => {
            tracing::warn!(dedupe_key = key, error = %e, "stored {what} does not decode; not shown");
            None
        }
    }
}

/// `SELECT <every column> FROM builds <tail>` as one `&'static str` (sqlx 0.9 takes
/// only static SQL text unless it is explicitly asserted safe).
macro_rules! select_builds {
    ($tail:literal) => {
        concat!(
            "SELECT dedupe_key, event, integration_id, state, attempts, reason, report, ",
            "check_run, check_run_id, check_run_url, queued_at, updated_at FROM builds ",
            $tail
        )
    };
}

impl Store {
    /// Has this delivery key been accepted before?
    #[tracing::instrument(name = "store.build_known", skip_all, fields(dedupe_key = %key))]
    pub async fn build_known(&self, key: &DedupeKey) -> Result<bool, StoreError> {
        let (count,): (i64,) = with_pool!(self.db(), pool => {
            sqlx::query_as("SELECT COUNT(*) FROM builds WHERE dedupe_key = $1")
                .bind(key.as_str())
                .fetch_one(pool)
                .await
        })?;
        Ok(count > 0)
    }

    /// Records an accepted build; `false` if the key was already there.
    #[tracing::instrument(name = "store.record_queued", skip_all, fields(dedupe_key = %event.dedupe_key()))]
    pub async fn record_queued(
        &self,
        event: &BuildFinished,
        integration_id: Option<&IntegrationId>,
    ) -> Result<bool, StoreError> {
        self.insert_build(event, integration_id, BuildState::Queued).await
    }

    /// Records many accepted builds in one transaction (one commit, one fsync); keys
    /// already present are left as they are.
    #[tracing::instrument(name = "store.record_queued_many", skip_all, fields(count = events.len()))]
    pub(crate) async fn record_queued_many(
        &self,
        events: &[(BuildFinished, Option<IntegrationId>)],
    ) -> Result<(), StoreError> {
        let now = now_millis();
        with_pool!(self.db(), pool => {
            let mut tx = pool.begin().await?;
            for (event, integration_id) in events {
                insert_build_query(event, integration_id.as_ref(), BuildState::Queued, now)?
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await
        })?;
        Ok(())
    }

    /// A worker took the build: creates the row if the receiver could not (it publishes
    /// before recording), counts the attempt, and returns the state it was in before.
    #[tracing::instrument(name = "store.record_received", skip_all, fields(dedupe_key = %event.dedupe_key()))]
    pub async fn record_received(
        &self,
        event: &BuildFinished,
        integration_id: Option<&IntegrationId>,
    ) -> Result<BuildState, StoreError> {
        let key = event.dedupe_key();
        if self.insert_build(event, integration_id, BuildState::Received).await? {
            return Ok(BuildState::Queued);
        }
        let previous = self.build_state(&key).await?.unwrap_or(BuildState::Queued);
        if !previous.is_final() {
            with_pool!(self.db(), pool => {
                sqlx::query(
                    "UPDATE builds SET state = 'received', attempts = attempts + 1, updated_at = $1 \
                     WHERE dedupe_key = $2",
                )
                .bind(now_millis())
                .bind(key.as_str())
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
            })?;
        }
        Ok(previous)
    }

    /// Records what a worker's attempt made of a build, with a reason for people when it
    /// did not go well.
    #[tracing::instrument(name = "store.record_outcome", skip_all, fields(dedupe_key = %key, state = %transition.state()))]
    pub async fn record_outcome(
        &self,
        key: &DedupeKey,
        transition: &Transition,
    ) -> Result<(), StoreError> {
        with_pool!(self.db(), pool => {
            sqlx::query("UPDATE builds SET state = $1, reason = $2, updated_at = $3 WHERE dedupe_key = $4")
                .bind(transition.state().as_str())
                .bind(transition.reason())
                .bind(now_millis())
                .bind(key.as_str())
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// Keeps what the worker found (the report) and what it posted or, in dry-run, would
    /// have posted (the check run body). Both are redacted before they get here.
    #[tracing::instrument(name = "store.save_report", skip_all, fields(dedupe_key = %key))]
    pub(crate) async fn save_report(
        &self,
        key: &DedupeKey,
        report: &BuildReport,
        check_run: &CheckRunContent,
    ) -> Result<(), StoreError> {
        fn json(value: &impl Serialize) -> Result<String, StoreError> {
            serde_json::to_string(value).map_err(|e| StoreError::Corrupt(e.to_string()))
        }
        let (report, check_run) = (json(report)?, json(check_run)?);
        with_pool!(self.db(), pool => {
            sqlx::query("UPDATE builds SET report = $1, check_run = $2, updated_at = $3 WHERE dedupe_key = $4")
                .bind(report)
                .bind(check_run)
                .bind(now_millis())
                .bind(key.as_str())
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// Remembers the check run posted for a build, so processing it again (a redelivery,
    /// or the same build finishing again after a retry) updates that run.
    #[tracing::instrument(name = "store.record_check_run", skip_all, fields(dedupe_key = %key, check_run_id = id))]
    pub(crate) async fn record_check_run(
        &self,
        key: &DedupeKey,
        id: i64,
        url: Option<&str>,
    ) -> Result<(), StoreError> {
        with_pool!(self.db(), pool => {
            sqlx::query("UPDATE builds SET check_run_id = $1, check_run_url = $2, updated_at = $3 WHERE dedupe_key = $4")
                .bind(id)
                .bind(url)
                .bind(now_millis())
                .bind(key.as_str())
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// The check run already posted for this Buildkite build, by any of its deliveries.
    pub(crate) async fn known_check_run_id(
        &self,
        build_id: &BuildId,
    ) -> Result<Option<i64>, StoreError> {
        let row: Option<(i64,)> = with_pool!(self.db(), pool => {
            sqlx::query_as(
                "SELECT check_run_id FROM builds WHERE build_id = $1 AND check_run_id IS NOT NULL \
                 ORDER BY updated_at DESC LIMIT 1",
            )
            .bind(build_id.as_str())
            .fetch_optional(pool)
            .await
        })?;
        Ok(row.map(|(id,)| id))
    }

    pub async fn build_state(&self, key: &DedupeKey) -> Result<Option<BuildState>, StoreError> {
        let row: Option<(String,)> = with_pool!(self.db(), pool => {
            sqlx::query_as("SELECT state FROM builds WHERE dedupe_key = $1")
                .bind(key.as_str())
                .fetch_optional(pool)
                .await
        })?;
        row.map(|(s,)| s.parse()).transpose()
    }

    pub async fn build(&self, key: &DedupeKey) -> Result<Option<BuildRecord>, StoreError> {
        let row: Option<BuildRow> = with_pool!(self.db(), pool => {
            sqlx::query_as(select_builds!("WHERE dedupe_key = $1"))
                .bind(key.as_str())
                .fetch_optional(pool)
                .await
        })?;
        row.map(BuildRecord::try_from).transpose()
    }

    /// The most recently updated builds, newest first.
    pub async fn recent_builds(&self, limit: i64) -> Result<Vec<BuildRecord>, StoreError> {
        let rows: Vec<BuildRow> = with_pool!(self.db(), pool => {
            sqlx::query_as(select_builds!("ORDER BY updated_at DESC, dedupe_key LIMIT $1"))
                .bind(limit)
                .fetch_all(pool)
                .await
        })?;
        rows.into_iter().map(BuildRecord::try_from).collect()
    }

    async fn insert_build(
        &self,
        event: &BuildFinished,
        integration_id: Option<&IntegrationId>,
        state: BuildState,
    ) -> Result<bool, StoreError> {
        let now = now_millis();
        let done = with_pool!(self.db(), pool => {
            insert_build_query(event, integration_id, state, now)?
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(done == 1)
    }
}

/// `INSERT … ON CONFLICT DO NOTHING` of one build, for any backend.
fn insert_build_query<'q, DB>(
    event: &'q BuildFinished,
    integration_id: Option<&'q IntegrationId>,
    state: BuildState,
    now: i64,
) -> Result<sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments>, StoreError>
where
    DB: sqlx::Database,
    &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<&'q str>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    let json = serde_json::to_string(event).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let attempts = i64::from(state == BuildState::Received);
    Ok(sqlx::query(
        "INSERT INTO builds (dedupe_key, org, pipeline, build_id, build_number, finished_at, \
         integration_id, event, state, attempts, queued_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11) \
         ON CONFLICT (dedupe_key) DO NOTHING",
    )
    .bind(event.dedupe_key().to_string())
    .bind(event.org.as_str())
    .bind(event.pipeline.as_str())
    .bind(event.build_id.as_str())
    .bind(event.build_number.get() as i64)
    .bind(event.finished_at.as_str())
    .bind(integration_id.map(IntegrationId::as_str))
    .bind(json)
    .bind(state.as_str())
    .bind(attempts)
    .bind(now))
}
