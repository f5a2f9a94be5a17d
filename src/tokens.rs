//! Where a worker gets the Buildkite API token for an organisation.
//!
//! Two sources: organisations connected through `/api/integrations` (their token is
//! stored encrypted), and `buildkite.token` from the configuration for a single-org
//! set-up. The worker only sees this trait.

use async_trait::async_trait;
use secrecy::SecretString;

use crate::domain::{IntegrationId, OrgSlug};

/// Why there is no token to use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Nothing configured for this organisation: a permanent, recorded reason.
    #[error(
        "no Buildkite API token for organisation `{org}`: connect it (POST /api/integrations/buildkite) or set buildkite.token"
    )]
    NotConnected { org: String },
    /// The organisation's integration is disabled (token revoked, scopes removed,
    /// integration removed); permanent until someone fixes it.
    #[error("the Buildkite integration for `{org}` is not usable: {reason}")]
    Disabled { org: String, reason: String },
    /// The token could not be read right now (store down, key unavailable): retry.
    #[error("cannot read the Buildkite token: {0}")]
    Unavailable(String),
}

impl TokenError {
    pub(crate) fn is_transient(&self) -> bool {
        matches!(self, TokenError::Unavailable(_))
    }
}

#[async_trait]
pub trait TokenSource: Send + Sync + 'static {
    /// The token for `org`; `integration_id` is the integration the webhook arrived for,
    /// if it came through `/webhooks/buildkite/{id}`.
    async fn token_for(
        &self,
        org: &OrgSlug,
        integration_id: Option<&IntegrationId>,
    ) -> Result<SecretString, TokenError>;
}
