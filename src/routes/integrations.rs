//! `/api/integrations`: connect a Buildkite organisation, list, verify, remove. The
//! logic is in `crate::integrations`; this module maps it to HTTP.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::json;

use crate::error::ApiError;
use crate::integrations::{ConnectError, IntegrationError};
use crate::state::AppState;
use crate::store::StoreError;

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

impl From<ConnectError> for ApiError {
    fn from(e: ConnectError) -> Self {
        let unprocessable =
            |code| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, e.to_string());
        match &e {
            ConnectError::InvalidOrg(_) => ApiError::bad_request("invalid_org_slug", e.to_string()),
            ConnectError::EmptyToken => ApiError::bad_request("invalid_api_token", e.to_string()),
            ConnectError::Rejected => unprocessable("token_rejected"),
            ConnectError::MissingScopes { missing } => {
                let missing = missing.clone();
                unprocessable("missing_scopes").with_detail("missing_scopes", missing)
            }
            ConnectError::OrgNotVisible { .. } => unprocessable("org_not_visible"),
            ConnectError::AlreadyConnected { id, .. } => {
                let id = id.clone();
                ApiError::new(StatusCode::CONFLICT, "already_connected", e.to_string())
                    .with_detail("id", id)
            }
            ConnectError::Unreachable(_) => {
                ApiError::new(StatusCode::BAD_GATEWAY, "buildkite_unreachable", e.to_string())
            }
            ConnectError::Store(inner) => store_error(inner),
        }
    }
}

impl From<IntegrationError> for ApiError {
    fn from(e: IntegrationError) -> Self {
        match &e {
            IntegrationError::NotFound(_) => ApiError::not_found(e.to_string()),
            IntegrationError::Unreachable(_) => {
                ApiError::new(StatusCode::BAD_GATEWAY, "buildkite_unreachable", e.to_string())
            }
            IntegrationError::Cipher(inner) => ApiError::internal(inner),
            IntegrationError::Store(inner) => store_error(inner),
        }
    }
}

/// 503 when the database is down (try again), 500 otherwise; details are only logged.
fn store_error(e: &StoreError) -> ApiError {
    match e {
        StoreError::Unavailable(_) => {
            tracing::error!(error = %e, "store unavailable");
            ApiError::unavailable("the store is unavailable; try again")
        }
        other => ApiError::internal(other),
    }
}

/// `POST /api/integrations/buildkite` with `{org_slug, api_token}`: 201 with the webhook
/// URL path and token (shown this once), or an error that says what to fix.
#[tracing::instrument(name = "api.integrations.connect", skip_all)]
async fn connect(state: web::Data<AppState>, body: web::Bytes) -> Result<HttpResponse, ApiError> {
    // Parsed by hand: actix's JSON extractor error text could echo the body, token included.
    let request: ConnectRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(
            "invalid_request",
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
