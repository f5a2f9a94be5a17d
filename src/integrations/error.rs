//! What can go wrong connecting or managing an integration. The `Display` texts are the
//! messages users read (HTTP error bodies, CLI output): they say what to do, and never
//! hold a token.

use crate::store::StoreError;

use super::cipher::CipherError;

/// Why an organisation was not connected. Nothing is stored in any of these cases.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("invalid org_slug: {0}")]
    InvalidOrg(String),
    #[error("api_token is empty")]
    EmptyToken,
    #[error(
        "token rejected by Buildkite: check that it was copied whole and is not revoked or expired"
    )]
    Rejected,
    #[error(
        "the token is missing required scopes: {}; create a token with them at buildkite.com → Personal Settings → API Access Tokens",
        missing.join(", ")
    )]
    MissingScopes { missing: Vec<String> },
    #[error(
        "the token cannot see organisation `{org}`: check the slug, and that the token was created for that organisation"
    )]
    OrgNotVisible { org: String },
    #[error("organisation `{org}` is already connected (integration {id}); remove it first")]
    AlreadyConnected { org: String, id: String },
    #[error("Buildkite could not be reached ({0}); nothing was stored, try again")]
    Unreachable(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ConnectError {
    /// The `outcome` label of `kitefix_integration_connects_total`.
    pub fn outcome(&self) -> &'static str {
        match self {
            ConnectError::InvalidOrg(_) | ConnectError::EmptyToken => "invalid",
            ConnectError::Rejected => "token_rejected",
            ConnectError::MissingScopes { .. } => "missing_scopes",
            ConnectError::OrgNotVisible { .. } => "org_not_visible",
            ConnectError::AlreadyConnected { .. } => "already_connected",
            ConnectError::Unreachable(_) => "buildkite_unreachable",
            ConnectError::Store(_) => "store_error",
        }
    }
}

/// Managing an existing integration failed.
#[derive(Debug, thiserror::Error)]
pub enum IntegrationError {
    #[error("no integration with id `{0}`")]
    NotFound(String),
    #[error("Buildkite could not be reached ({0}); the integration is unchanged, try again")]
    Unreachable(String),
    #[error(transparent)]
    Cipher(#[from] CipherError),
    #[error(transparent)]
    Store(#[from] StoreError),
}
