//! Connected Buildkite organisations: connect (verify a token's scopes and org, seal it,
//! mint a webhook token), list, verify again, remove, and rotate the encryption key.
//!
//! This is the one place that logic lives: the admin API (`routes::integrations`), the
//! CLI (`kitefix integrations …`) and the workers (`StoreTokens`) all go through
//! [`Integrations`]. Tokens are held as `SecretString` from the moment they are read or
//! decrypted; only the last four characters of an API token are ever shown.
//!
//! Who calls Buildkite: the worker side of the process (the pipeline, the reconciler and
//! the periodic [`verifier`], all run only by `--role worker` and `--role all`). There
//! is one allowed exception: [`Integrations::connect`] and [`Integrations::verify`] when
//! an administrator calls them (admin API `routes::integrations`, the admin page, the
//! `kitefix integrations` CLI). They check the token with Buildkite synchronously, inside
//! the request, so the person connecting an organisation sees the answer (token
//! rejected, scopes missing, organisation not visible) right away rather than later in
//! a list. They are rare and operator-initiated, and each Buildkite call is bounded by
//! the client's request timeout (`buildkite::ClientOptions`); the README's "Roles"
//! section says the same for operators.

pub mod cipher;
mod error;
mod metrics;
mod token_source;
pub mod verifier;

use std::path::PathBuf;
use std::sync::Arc;

use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

use crate::buildkite::{BuildkiteClient, BuildkiteError};
use crate::config::{SecuritySettings, StoreBackend};
use crate::domain::OrgSlug;
use crate::store::{IntegrationRecord, IntegrationStatus, Store, now_millis};

pub use cipher::{CipherError, Sealed, TokenCipher};
pub use error::{ConnectError, IntegrationError};
pub use metrics::IntegrationMetrics;
pub use token_source::StoreTokens;

/// Scopes a connected token must hold (docs/buildkite.md#token-scopes): what the worker reads
/// today and what the planned features (artifacts, Test Engine, teams) will.
pub const REQUIRED_SCOPES: [&str; 9] = [
    "read_teams",
    "read_artifacts",
    "read_builds",
    "read_job_env",
    "read_build_logs",
    "read_organizations",
    "read_pipelines",
    "read_user",
    "read_suites",
];

/// The associated data that binds a sealed token to its integration and column.
fn context(id: &str, column: &str) -> String {
    format!("kitefix:integration:{id}:{column}")
}

/// The webhook route of an integration.
pub fn webhook_path(id: &str) -> String {
    format!("/webhooks/buildkite/{id}")
}

/// A successful connection. `webhook_token` is shown to the user this once; kitefix
/// keeps it only encrypted.
#[derive(Debug)]
pub struct Connected {
    pub id: String,
    pub org: OrgSlug,
    pub webhook_path: String,
    pub webhook_token: SecretString,
    pub token_last4: String,
}

/// What an administrator may see of an integration: no token, only its last 4 characters.
#[derive(Debug, Clone, Serialize)]
pub struct IntegrationSummary {
    pub id: String,
    pub org_slug: String,
    pub status: IntegrationStatus,
    pub token_last4: String,
    pub scopes: Vec<String>,
    pub webhook_path: String,
    pub created_at: i64,
    pub verified_at: Option<i64>,
    pub last_webhook_at: Option<i64>,
    pub reason: Option<String>,
}

impl From<IntegrationRecord> for IntegrationSummary {
    fn from(r: IntegrationRecord) -> Self {
        IntegrationSummary {
            webhook_path: webhook_path(&r.id),
            id: r.id,
            org_slug: r.org_slug,
            status: r.status,
            token_last4: r.token_last4,
            scopes: r.scopes,
            created_at: r.created_at,
            verified_at: r.verified_at,
            last_webhook_at: r.last_webhook_at,
            reason: r.reason,
        }
    }
}

/// What Buildkite says about a token for an organisation.
enum Verdict {
    Usable { scopes: Vec<String> },
    Rejected,
    MissingScopes { scopes: Vec<String>, missing: Vec<String> },
    OrgNotVisible,
}

impl Verdict {
    fn status(&self) -> (IntegrationStatus, Option<String>) {
        match self {
            Verdict::Usable { .. } => (IntegrationStatus::Connected, None),
            Verdict::Rejected => {
                (IntegrationStatus::TokenRejected, Some(ConnectError::Rejected.to_string()))
            }
            Verdict::MissingScopes { missing, .. } => (
                IntegrationStatus::MissingScopes,
                Some(ConnectError::MissingScopes { missing: missing.clone() }.to_string()),
            ),
            Verdict::OrgNotVisible => (
                IntegrationStatus::TokenRejected,
                Some("the token can no longer see the organisation".into()),
            ),
        }
    }
}

/// The integrations service. Cheap to clone.
#[derive(Clone)]
pub struct Integrations {
    store: Store,
    cipher: Arc<TokenCipher>,
    buildkite: BuildkiteClient,
    metrics: IntegrationMetrics,
}

impl Integrations {
    pub fn new(
        store: Store,
        cipher: TokenCipher,
        buildkite: BuildkiteClient,
        metrics: IntegrationMetrics,
    ) -> Self {
        Self { store, cipher: Arc::new(cipher), buildkite, metrics }
    }

    /// The service `serve` and `kitefix integrations` both run: the key that
    /// `security.encryption_key_file` names (or the one next to a SQLite store, see
    /// [`key_file`]), over `store`, checking tokens with `buildkite`.
    pub async fn from_settings(
        security: &SecuritySettings,
        store: Store,
        buildkite: BuildkiteClient,
        metrics: IntegrationMetrics,
    ) -> Result<Self, CipherError> {
        let cipher = load_cipher(security, store.backend()).await?;
        Ok(Self::new(store, cipher, buildkite, metrics))
    }

    /// The id of the key new tokens are sealed with.
    pub fn key_id(&self) -> &str {
        self.cipher.key_id()
    }

    /// Checks `api_token` against Buildkite and, if it holds every required scope and can
    /// see `org`, stores it sealed with a fresh webhook token.
    #[tracing::instrument(name = "integrations.connect", skip_all, fields(org = %org, outcome = tracing::field::Empty))]
    pub async fn connect(
        &self,
        org: &str,
        api_token: SecretString,
    ) -> Result<Connected, ConnectError> {
        let result = self.connect_checked(org, api_token).await;
        let outcome = result.as_ref().map_or_else(ConnectError::outcome, |_| "connected");
        tracing::Span::current().record("outcome", outcome);
        self.metrics.connects.with_label_values(&[outcome]).inc();
        self.refresh_gauge().await;
        result
    }

    async fn connect_checked(
        &self,
        org: &str,
        api_token: SecretString,
    ) -> Result<Connected, ConnectError> {
        let org = OrgSlug::parse(org).map_err(|e| ConnectError::InvalidOrg(e.to_string()))?;
        let token = SecretString::from(api_token.expose_secret().trim().to_owned());
        if token.expose_secret().is_empty() {
            return Err(ConnectError::EmptyToken);
        }
        if let Some(existing) = self.store.active_integration_for_org(org.as_str()).await? {
            return Err(ConnectError::AlreadyConnected { org: org.to_string(), id: existing.id });
        }
        let scopes = match self.check(&org, &token).await.map_err(ConnectError::Unreachable)? {
            Verdict::Usable { scopes } => scopes,
            Verdict::Rejected => return Err(ConnectError::Rejected),
            Verdict::MissingScopes { missing, .. } => {
                return Err(ConnectError::MissingScopes { missing });
            }
            Verdict::OrgNotVisible => {
                return Err(ConnectError::OrgNotVisible { org: org.to_string() });
            }
        };

        let id = uuid::Uuid::new_v4().to_string();
        let webhook_token = new_webhook_token();
        let now = now_millis();
        let record = IntegrationRecord {
            api_token: self.cipher.seal(&token, &context(&id, "api_token")),
            webhook_token: self.cipher.seal(&webhook_token, &context(&id, "webhook_token")),
            token_last4: last4(&token),
            org_slug: org.to_string(),
            scopes,
            status: IntegrationStatus::Connected,
            reason: None,
            created_at: now,
            verified_at: Some(now),
            last_webhook_at: None,
            id: id.clone(),
        };
        if !self.store.insert_integration(&record).await? {
            // Someone connected the same organisation between the check and the insert.
            let id = self
                .store
                .active_integration_for_org(org.as_str())
                .await?
                .map(|r| r.id)
                .unwrap_or_default();
            return Err(ConnectError::AlreadyConnected { org: org.to_string(), id });
        }
        tracing::info!(integration_id = %id, "organisation connected");
        Ok(Connected {
            webhook_path: webhook_path(&id),
            id,
            org,
            webhook_token,
            token_last4: record.token_last4,
        })
    }

    /// Every integration, removed ones included.
    pub async fn list(&self) -> Result<Vec<IntegrationSummary>, IntegrationError> {
        Ok(self.store.list_integrations().await?.into_iter().map(Into::into).collect())
    }

    pub async fn get(&self, id: &str) -> Result<IntegrationSummary, IntegrationError> {
        Ok(self.record(id).await?.into())
    }

    /// Removes the integration: its webhook route refuses from now on, workers stop
    /// using its token, and the sealed tokens are erased from the row.
    #[tracing::instrument(name = "integrations.remove", skip_all, fields(integration_id = %id))]
    pub async fn remove(&self, id: &str) -> Result<(), IntegrationError> {
        if !self.store.remove_integration(id).await? {
            return Err(IntegrationError::NotFound(id.to_owned()));
        }
        tracing::info!("integration removed");
        self.refresh_gauge().await;
        Ok(())
    }

    /// Asks Buildkite again about the stored token and records the answer (status,
    /// reason, scopes, verified_at). An unreachable Buildkite changes nothing.
    #[tracing::instrument(name = "integrations.verify", skip_all, fields(integration_id = %id, status = tracing::field::Empty))]
    pub async fn verify(&self, id: &str) -> Result<IntegrationSummary, IntegrationError> {
        let record = self.record(id).await?;
        if record.status == IntegrationStatus::Removed {
            return Err(IntegrationError::NotFound(id.to_owned()));
        }
        let token = self.cipher.open(&record.api_token, &context(id, "api_token"))?;
        let org = OrgSlug::parse(&record.org_slug)
            .map_err(|e| crate::store::StoreError::Corrupt(e.to_string()))?;
        let verdict = self.check(&org, &token).await.map_err(IntegrationError::Unreachable)?;
        let (status, reason) = verdict.status();
        let scopes = match verdict {
            Verdict::Usable { scopes } | Verdict::MissingScopes { scopes, .. } => scopes,
            Verdict::Rejected | Verdict::OrgNotVisible => record.scopes,
        };
        tracing::Span::current().record("status", status.as_str());
        self.store.set_integration_status(id, status, reason.as_deref(), &scopes).await?;
        self.refresh_gauge().await;
        self.get(id).await
    }

    /// Verifies every live integration (the periodic check); failures are logged.
    pub async fn verify_all(&self) -> Result<usize, IntegrationError> {
        let mut checked = 0;
        for record in self.store.list_integrations().await? {
            if record.status == IntegrationStatus::Removed {
                continue;
            }
            match self.verify(&record.id).await {
                Ok(_) => checked += 1,
                Err(e) => {
                    tracing::warn!(integration_id = %record.id, error = %e, "verification failed")
                }
            }
        }
        Ok(checked)
    }

    /// Re-encrypts every live integration's tokens under `new`, in one transaction, and
    /// returns how many moved. Rows already under `new` are left alone, so running it
    /// again after an interrupted rotation (or a connect that raced it) finishes the job.
    /// Afterwards, point `security.encryption_key_file` at the new key.
    #[tracing::instrument(name = "integrations.rotate_key", skip_all, fields(from = %self.cipher.key_id(), to = %new.key_id()))]
    pub async fn rotate_key(&self, new: &TokenCipher) -> Result<usize, IntegrationError> {
        let resealed = self
            .store
            .reseal_integrations(|record| {
                if record.api_token.key_id == new.key_id() {
                    return Ok(None);
                }
                let api_ctx = context(&record.id, "api_token");
                let hook_ctx = context(&record.id, "webhook_token");
                let api = self.cipher.open(&record.api_token, &api_ctx)?;
                let hook = self.cipher.open(&record.webhook_token, &hook_ctx)?;
                Ok::<_, CipherError>(Some((new.seal(&api, &api_ctx), new.seal(&hook, &hook_ctx))))
            })
            .await??;
        tracing::info!(count = resealed, "tokens re-encrypted under the new key");
        Ok(resealed)
    }

    /// The webhook token of a live integration; `None` for an unknown or removed id.
    pub async fn webhook_token(&self, id: &str) -> Result<Option<SecretString>, IntegrationError> {
        match self.store.integration(id).await? {
            Some(r) if r.status != IntegrationStatus::Removed => {
                Ok(Some(self.cipher.open(&r.webhook_token, &context(id, "webhook_token"))?))
            }
            _ => Ok(None),
        }
    }

    /// Records that a verified webhook arrived; a failure only costs the timestamp.
    pub async fn webhook_seen(&self, id: &str) {
        if let Err(e) = self.store.touch_integration_webhook(id).await {
            tracing::warn!(integration_id = %id, error = %e, "last_webhook_at not updated");
        }
    }

    /// Sets `kitefix_integrations{status}` from the store.
    pub async fn refresh_gauge(&self) {
        match self.store.integration_counts().await {
            Ok(counts) => {
                for status in IntegrationStatus::ALL {
                    let n = counts.iter().find(|(s, _)| s == status.as_str()).map_or(0, |c| c.1);
                    self.metrics.integrations.with_label_values(&[status.as_str()]).set(n);
                }
            }
            Err(e) => tracing::warn!(error = %e, "integration counts not updated"),
        }
    }

    async fn record(&self, id: &str) -> Result<IntegrationRecord, IntegrationError> {
        self.store.integration(id).await?.ok_or_else(|| IntegrationError::NotFound(id.to_owned()))
    }

    /// The API token of `record`, decrypted.
    fn api_token(&self, record: &IntegrationRecord) -> Result<SecretString, CipherError> {
        self.cipher.open(&record.api_token, &context(&record.id, "api_token"))
    }

    /// Asks Buildkite about `token`: its scopes (`GET /v2/access-token`, which needs no
    /// scope) and whether it sees `org`. `Err` when Buildkite could not answer.
    #[tracing::instrument(name = "integrations.check", skip_all, fields(org = %org))]
    async fn check(&self, org: &OrgSlug, token: &SecretString) -> Result<Verdict, String> {
        let described = match self.buildkite.access_token(token).await {
            Ok(d) => d,
            Err(BuildkiteError::Unauthorized { .. }) => return Ok(Verdict::Rejected),
            Err(e) => return Err(e.to_string()),
        };
        let missing: Vec<String> =
            described.missing_scopes(&REQUIRED_SCOPES).into_iter().map(String::from).collect();
        if !missing.is_empty() {
            return Ok(Verdict::MissingScopes { scopes: described.scopes, missing });
        }
        match self.buildkite.get_organization(token, org).await {
            Ok(_) => Ok(Verdict::Usable { scopes: described.scopes }),
            Err(BuildkiteError::Unauthorized { .. }) => Ok(Verdict::Rejected),
            Err(BuildkiteError::NotFound { .. } | BuildkiteError::Forbidden { .. }) => {
                Ok(Verdict::OrgNotVisible)
            }
            Err(e) => Err(e.to_string()),
        }
    }
}

/// 32 random bytes, hex: what Buildkite's webhook settings take as the token.
fn new_webhook_token() -> SecretString {
    let mut bytes = secrecy::zeroize::Zeroizing::new([0u8; 32]);
    rand::rng().fill_bytes(&mut bytes[..]);
    SecretString::from(hex::encode(&bytes[..]))
}

/// A random token nobody knows: what an unknown webhook route is checked against.
pub fn decoy_token() -> SecretString {
    new_webhook_token()
}

/// The last 4 characters, what an administrator sees to tell tokens apart; nothing for
/// a token so short that 4 characters would give much of it away.
fn last4(token: &SecretString) -> String {
    let chars: Vec<char> = token.expose_secret().chars().collect();
    if chars.len() < 16 {
        return String::new();
    }
    chars[chars.len() - 4..].iter().collect()
}

/// Where the encryption key comes from: `security.encryption_key_file`, or, with a
/// SQLite store, `<database file>.key` next to it (created with mode 0600 on first use).
/// `None` for an in-memory SQLite store, and for PostgreSQL without the key (which the
/// config refuses).
pub fn key_file(security: &SecuritySettings, store: &StoreBackend) -> Option<PathBuf> {
    if let Some(path) = &security.encryption_key_file {
        return Some(path.clone());
    }
    match store {
        StoreBackend::Sqlite { file: Some(file), .. } => {
            let mut key = file.clone().into_os_string();
            key.push(".key");
            Some(PathBuf::from(key))
        }
        StoreBackend::Sqlite { file: None, .. } | StoreBackend::Postgres(_) => None,
    }
}

/// Loads the key `security` names for `store`. With SQLite a missing key file is
/// created (one machine, one store); with PostgreSQL it must exist, since every replica
/// needs the same key.
pub async fn load_cipher(
    security: &SecuritySettings,
    store: &StoreBackend,
) -> Result<TokenCipher, CipherError> {
    match (key_file(security, store), store) {
        (Some(path), StoreBackend::Sqlite { .. }) => TokenCipher::load_or_create(&path).await,
        (Some(path), StoreBackend::Postgres(_)) => TokenCipher::from_file(&path).await,
        (None, StoreBackend::Sqlite { .. }) => Ok(TokenCipher::ephemeral()),
        (None, StoreBackend::Postgres(_)) => Err(CipherError::KeyFile {
            path: "(unset)".into(),
            problem: "required with a PostgreSQL store".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last4_shows_only_the_end() {
        assert_eq!(last4(&SecretString::from("bkua_abcdef0123456789".to_owned())), "6789");
        assert_eq!(last4(&SecretString::from("bkua_abc1234".to_owned())), "");
    }

    #[test]
    fn webhook_tokens_are_fresh_hex() {
        let a = new_webhook_token();
        assert_eq!(a.expose_secret().len(), 64);
        assert_ne!(a.expose_secret(), new_webhook_token().expose_secret());
    }
}
