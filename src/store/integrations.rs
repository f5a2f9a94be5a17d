//! The `integrations` table: connected Buildkite organisations with their tokens sealed
//! (`integrations::cipher`). This layer stores and returns ciphertexts; it never sees a
//! plaintext token.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use super::{Store, StoreError, now_millis, with_pool};

/// A sealed secret as stored: which key, the nonce, ciphertext with its tag. Sealing and
/// opening is `integrations::cipher`'s business; the store only keeps the three parts.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed {
    pub key_id: String,
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealed").field("key_id", &self.key_id).finish_non_exhaustive()
    }
}

/// Whether an integration's token can be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IntegrationStatus {
    Connected,
    /// Buildkite reports the token without some scope kitefix needs.
    MissingScopes,
    /// Buildkite answered 401: revoked, expired or unknown.
    TokenRejected,
    Removed,
}

impl IntegrationStatus {
    pub const ALL: [IntegrationStatus; 4] = [
        IntegrationStatus::Connected,
        IntegrationStatus::MissingScopes,
        IntegrationStatus::TokenRejected,
        IntegrationStatus::Removed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            IntegrationStatus::Connected => "connected",
            IntegrationStatus::MissingScopes => "missing_scopes",
            IntegrationStatus::TokenRejected => "token_rejected",
            IntegrationStatus::Removed => "removed",
        }
    }
}

impl fmt::Display for IntegrationStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for IntegrationStatus {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, StoreError> {
        IntegrationStatus::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown integration status `{s}`")))
    }
}

/// One stored integration, tokens still sealed.
#[derive(Debug, Clone)]
pub struct IntegrationRecord {
    pub id: String,
    pub org_slug: String,
    pub api_token: Sealed,
    pub webhook_token: Sealed,
    pub token_last4: String,
    pub scopes: Vec<String>,
    pub status: IntegrationStatus,
    pub reason: Option<String>,
    pub created_at: i64,
    pub verified_at: Option<i64>,
    pub last_webhook_at: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct IntegrationRow {
    id: String,
    org_slug: String,
    api_token_ciphertext: Vec<u8>,
    api_token_nonce: Vec<u8>,
    webhook_token_ciphertext: Vec<u8>,
    webhook_token_nonce: Vec<u8>,
    key_id: String,
    token_last4: String,
    scopes: String,
    status: String,
    reason: Option<String>,
    created_at: i64,
    verified_at: Option<i64>,
    last_webhook_at: Option<i64>,
}

impl TryFrom<IntegrationRow> for IntegrationRecord {
    type Error = StoreError;

    fn try_from(row: IntegrationRow) -> Result<Self, StoreError> {
        Ok(IntegrationRecord {
            scopes: serde_json::from_str(&row.scopes).map_err(|e| {
                StoreError::Corrupt(format!("scopes of integration {}: {e}", row.id))
            })?,
            status: row.status.parse()?,
            api_token: Sealed {
                key_id: row.key_id.clone(),
                nonce: row.api_token_nonce,
                ciphertext: row.api_token_ciphertext,
            },
            webhook_token: Sealed {
                key_id: row.key_id,
                nonce: row.webhook_token_nonce,
                ciphertext: row.webhook_token_ciphertext,
            },
            id: row.id,
            org_slug: row.org_slug,
            token_last4: row.token_last4,
            reason: row.reason,
            created_at: row.created_at,
            verified_at: row.verified_at,
            last_webhook_at: row.last_webhook_at,
        })
    }
}

macro_rules! select_integrations {
    ($tail:literal) => {
        concat!(
            "SELECT id, org_slug, api_token_ciphertext, api_token_nonce, webhook_token_ciphertext, ",
            "webhook_token_nonce, key_id, token_last4, scopes, status, reason, created_at, ",
            "verified_at, last_webhook_at FROM integrations ",
            $tail
        )
    };
}

fn scopes_json(scopes: &[String]) -> String {
    serde_json::Value::from(scopes.to_vec()).to_string()
}

impl Store {
    /// Stores a new integration; `false` if the organisation already has a live one.
    #[tracing::instrument(name = "store.insert_integration", skip_all, fields(integration_id = %record.id, org = %record.org_slug))]
    pub async fn insert_integration(&self, record: &IntegrationRecord) -> Result<bool, StoreError> {
        debug_assert_eq!(record.api_token.key_id, record.webhook_token.key_id);
        let result = with_pool!(self.db(), pool => {
            sqlx::query(
                "INSERT INTO integrations (id, org_slug, api_token_ciphertext, api_token_nonce, \
                 webhook_token_ciphertext, webhook_token_nonce, key_id, token_last4, scopes, status, \
                 reason, created_at, verified_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
            )
            .bind(&record.id)
            .bind(&record.org_slug)
            .bind(&record.api_token.ciphertext)
            .bind(&record.api_token.nonce)
            .bind(&record.webhook_token.ciphertext)
            .bind(&record.webhook_token.nonce)
            .bind(&record.api_token.key_id)
            .bind(&record.token_last4)
            .bind(scopes_json(&record.scopes))
            .bind(record.status.as_str())
            .bind(&record.reason)
            .bind(record.created_at)
            .bind(record.verified_at)
            .execute(pool)
            .await
            .map(|_| ())
        });
        match result {
            Ok(_) => Ok(true),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn integration(&self, id: &str) -> Result<Option<IntegrationRecord>, StoreError> {
        let row: Option<IntegrationRow> = with_pool!(self.db(), pool => {
            sqlx::query_as(select_integrations!("WHERE id = $1"))
                .bind(id)
                .fetch_optional(pool)
                .await
        })?;
        row.map(IntegrationRecord::try_from).transpose()
    }

    /// The organisation's live (not removed) integration.
    pub async fn active_integration_for_org(
        &self,
        org: &str,
    ) -> Result<Option<IntegrationRecord>, StoreError> {
        let row: Option<IntegrationRow> = with_pool!(self.db(), pool => {
            sqlx::query_as(select_integrations!("WHERE org_slug = $1 AND status <> 'removed'"))
                .bind(org)
                .fetch_optional(pool)
                .await
        })?;
        row.map(IntegrationRecord::try_from).transpose()
    }

    /// Every integration, removed ones included, oldest first.
    pub async fn list_integrations(&self) -> Result<Vec<IntegrationRecord>, StoreError> {
        let rows: Vec<IntegrationRow> = with_pool!(self.db(), pool => {
            sqlx::query_as(select_integrations!("ORDER BY created_at, id")).fetch_all(pool).await
        })?;
        rows.into_iter().map(IntegrationRecord::try_from).collect()
    }

    /// Records what a verification found.
    #[tracing::instrument(name = "store.set_integration_status", skip_all, fields(integration_id = %id, status = %status))]
    pub async fn set_integration_status(
        &self,
        id: &str,
        status: IntegrationStatus,
        reason: Option<&str>,
        scopes: &[String],
    ) -> Result<(), StoreError> {
        with_pool!(self.db(), pool => {
            sqlx::query(
                "UPDATE integrations SET status = $1, reason = $2, scopes = $3, verified_at = $4 \
                 WHERE id = $5 AND status <> 'removed'",
            )
            .bind(status.as_str())
            .bind(reason)
            .bind(scopes_json(scopes))
            .bind(now_millis())
            .bind(id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// Marks the integration removed and forgets its tokens; `false` if there was no live
    /// integration with this id.
    #[tracing::instrument(name = "store.remove_integration", skip_all, fields(integration_id = %id))]
    pub async fn remove_integration(&self, id: &str) -> Result<bool, StoreError> {
        let empty: Vec<u8> = Vec::new();
        let done = with_pool!(self.db(), pool => {
            sqlx::query(
                "UPDATE integrations SET status = 'removed', reason = 'removed by an administrator', \
                 api_token_ciphertext = $1, api_token_nonce = $1, webhook_token_ciphertext = $1, \
                 webhook_token_nonce = $1, removed_at = $2 WHERE id = $3 AND status <> 'removed'",
            )
            .bind(&empty)
            .bind(now_millis())
            .bind(id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(done == 1)
    }

    /// A verified webhook arrived for this integration.
    pub async fn touch_integration_webhook(&self, id: &str) -> Result<(), StoreError> {
        with_pool!(self.db(), pool => {
            sqlx::query("UPDATE integrations SET last_webhook_at = $1 WHERE id = $2")
                .bind(now_millis())
                .bind(id)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// How many integrations are in each status.
    pub async fn integration_counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let rows: Vec<(String, i64)> = with_pool!(self.db(), pool => {
            sqlx::query_as("SELECT status, COUNT(*) FROM integrations GROUP BY status")
                .fetch_all(pool)
                .await
        })?;
        Ok(rows)
    }

    /// Re-seals the tokens of every live integration with `reseal` (key rotation), in one
    /// transaction: either every row moves to the new key or none does. `reseal` returns
    /// `None` for a row to leave as it is; the count is of rows changed.
    #[tracing::instrument(name = "store.reseal_integrations", skip_all)]
    pub async fn reseal_integrations<E>(
        &self,
        reseal: impl Fn(&IntegrationRecord) -> Result<Option<(Sealed, Sealed)>, E>,
    ) -> Result<Result<usize, E>, StoreError> {
        with_pool!(self.db(), pool => {
            let mut tx = pool.begin().await?;
            let rows: Vec<IntegrationRow> =
                sqlx::query_as(select_integrations!("WHERE status <> 'removed' ORDER BY id"))
                    .fetch_all(&mut *tx)
                    .await?;
            let mut count = 0;
            for row in rows {
                let record = IntegrationRecord::try_from(row)?;
                let (api, webhook) = match reseal(&record) {
                    Ok(Some(sealed)) => sealed,
                    Ok(None) => continue,
                    // Dropping the transaction rolls it back.
                    Err(e) => return Ok(Err(e)),
                };
                sqlx::query(
                    "UPDATE integrations SET api_token_ciphertext = $1, api_token_nonce = $2, \
                     webhook_token_ciphertext = $3, webhook_token_nonce = $4, key_id = $5 WHERE id = $6",
                )
                .bind(&api.ciphertext)
                .bind(&api.nonce)
                .bind(&webhook.ciphertext)
                .bind(&webhook.nonce)
                .bind(&api.key_id)
                .bind(&record.id)
                .execute(&mut *tx)
                .await
                .map(|_| ())?;
                count += 1;
            }
            tx.commit().await?;
            Ok(Ok(count))
        })
    }
}
