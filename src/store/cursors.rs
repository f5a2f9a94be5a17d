//! The reconciler's bookmarks: how far back it has asked Buildkite for failed builds.

use super::{Store, StoreError, now_millis, with_pool};

impl Store {
    /// Where the reconciler got to for `target`, in unix milliseconds.
    pub async fn reconcile_cursor(&self, target: &str) -> Result<Option<i64>, StoreError> {
        let row: Option<(i64,)> = with_pool!(self.db(), pool => {
            sqlx::query_as("SELECT finished_from FROM reconcile_cursors WHERE target = $1")
                .bind(target)
                .fetch_optional(pool)
                .await
        })?;
        Ok(row.map(|(ms,)| ms))
    }

    #[tracing::instrument(name = "store.set_reconcile_cursor", skip(self))]
    pub async fn set_reconcile_cursor(
        &self,
        target: &str,
        finished_from: i64,
    ) -> Result<(), StoreError> {
        with_pool!(self.db(), pool => {
            sqlx::query(
                "INSERT INTO reconcile_cursors (target, finished_from, updated_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (target) DO UPDATE SET finished_from = excluded.finished_from, \
                 updated_at = excluded.updated_at",
            )
            .bind(target)
            .bind(finished_from)
            .bind(now_millis())
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// Organisations whose webhooks arrived on the shared route (no integration) since
    /// `since_ms`: in a single-org set-up with `buildkite.token`, the ones to reconcile.
    pub async fn orgs_seen_without_integration(
        &self,
        since_ms: i64,
    ) -> Result<Vec<String>, StoreError> {
        let rows: Vec<(String,)> = with_pool!(self.db(), pool => {
            sqlx::query_as(
                "SELECT DISTINCT org FROM builds WHERE integration_id IS NULL AND queued_at >= $1 \
                 ORDER BY org",
            )
            .bind(since_ms)
            .fetch_all(pool)
            .await
        })?;
        Ok(rows.into_iter().map(|(org,)| org).collect())
    }
}
