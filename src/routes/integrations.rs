//! `/api/integrations`: connect a Buildkite organisation, list, verify, remove. The
//! logic is in `crate::integrations`; this module maps it to HTTP.

use actix_web::{HttpResponse, web};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::json;

use crate::error::{ApiError, Code};
use crate::integrations::{ConnectError, IntegrationError};
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/integrations", web::get().to(list))
        .route("/integrations/buildkite", web::post().to(connect))
        .route("/integrations/{id}", web::delete().to(remove))
        .route("/integrations/{id}/verify", web::post().to(verify));
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConnectRequest {
    org_slug: String,
    api_token: SecretString,
}

/// The one mapping of a failed connect to HTTP; the admin page takes its status from here.
impl From<ConnectError> for ApiError {
    fn from(e: ConnectError) -> Self {
        let message = e.to_string();
        match e {
            ConnectError::InvalidOrg(_) => ApiError::new(Code::InvalidOrgSlug, message),
            ConnectError::EmptyToken => ApiError::new(Code::InvalidApiToken, message),
            ConnectError::Rejected => ApiError::new(Code::TokenRejected, message),
            ConnectError::MissingScopes { missing } => {
                ApiError::new(Code::MissingScopes, message).with_detail("missing_scopes", missing)
            }
            ConnectError::OrgNotVisible { .. } => ApiError::new(Code::OrgNotVisible, message),
            ConnectError::AlreadyConnected { id, .. } => {
                ApiError::new(Code::AlreadyConnected, message).with_detail("id", id)
            }
            ConnectError::Unreachable(_) => ApiError::new(Code::BuildkiteUnreachable, message),
            ConnectError::Store(inner) => inner.into(),
        }
    }
}

impl From<IntegrationError> for ApiError {
    fn from(e: IntegrationError) -> Self {
        match e {
            IntegrationError::NotFound(_) => ApiError::new(Code::NotFound, e.to_string()),
            IntegrationError::Unreachable(_) => {
                ApiError::new(Code::BuildkiteUnreachable, e.to_string())
            }
            IntegrationError::Cipher(inner) => ApiError::internal(&inner),
            IntegrationError::Store(inner) => inner.into(),
        }
    }
}

/// `POST /api/integrations/buildkite` with `{org_slug, api_token}`: 201 with the webhook
/// URL path and token (shown this once), or an error that says what to fix.
#[tracing::instrument(name = "api.integrations.connect", skip_all)]
async fn connect(state: web::Data<AppState>, body: web::Bytes) -> Result<HttpResponse, ApiError> {
    // Parsed by hand: actix's JSON extractor error text could echo the body, token included.
    let request: ConnectRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            Code::InvalidRequest,
            format!(
                "expected a JSON object {{\"org_slug\": \"…\", \"api_token\": \"…\"}} (line {}, column {})",
                e.line(),
                e.column()
            ),
        )
    })?;
    let connected = state.integrations.connect(&request.org_slug, request.api_token).await?;
    Ok(HttpResponse::Created().json(json!({
        "id": connected.id,
        "org_slug": connected.org.as_str(),
        "status": "connected",
        "token_last4": connected.token_last4,
        "webhook_path": connected.webhook_path,
        "webhook_token": connected.webhook_token.expose_secret(),
    })))
}

async fn list(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let integrations = state.integrations.list().await?;
    Ok(HttpResponse::Ok().json(json!({ "integrations": integrations })))
}

#[tracing::instrument(name = "api.integrations.remove", skip_all, fields(integration_id = %id))]
async fn remove(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state.integrations.remove(&id).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[tracing::instrument(name = "api.integrations.verify", skip_all, fields(integration_id = %id))]
async fn verify(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(state.integrations.verify(&id).await?))
}
