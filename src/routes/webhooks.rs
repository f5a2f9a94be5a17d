//! `POST /webhooks/buildkite`: verify, parse, queue.
//!
//! Order of checks, each refusing with its own status so a sender's misconfiguration is
//! easy to spot in Buildkite's "recent requests" list: body size (413) → credential
//! (401, on the raw bytes, before any parsing) → JSON and payload shape (400) → event
//! kind (2xx and ignored) → durable queueing (202, or 503 when it cannot be done).

use actix_web::{HttpRequest, HttpResponse, web};
use futures::StreamExt;
use secrecy::SecretString;
use serde::Serialize;

use crate::domain::IntegrationId;
use crate::error::{ApiError, Code};
use crate::intake::Accepted;
use crate::state::AppState;
use crate::webhook::signature::{self, Credential, SIGNATURE_HEADER, TOKEN_HEADER};
use crate::webhook::{EventName, WebhookEvent, event};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/webhooks/buildkite", web::post().to(receive_buildkite))
        .route("/webhooks/buildkite/{id}", web::post().to(receive_for_integration));
}

#[derive(Serialize)]
struct WebhookResponse<'a> {
    status: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    dedupe_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
}

/// The single-organisation route, verified with `webhook.token`.
#[tracing::instrument(name = "webhook.receive", skip_all, fields(event = tracing::field::Empty, build_id = tracing::field::Empty))]
async fn receive_buildkite(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let token = state.settings.webhook.token.clone();
    handle(&req, payload, &state, token.as_ref(), None).await
}

/// A connected organisation's route, verified with that integration's webhook token.
/// An unknown or removed id is checked against a random token, so it is refused exactly
/// as a wrong token is and the answer does not reveal whether the id exists.
#[tracing::instrument(name = "webhook.receive", skip_all, fields(integration_id = %id, event = tracing::field::Empty, build_id = tracing::field::Empty))]
async fn receive_for_integration(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = IntegrationId::parse(&id.into_inner()).ok();
    let known = match &id {
        Some(id) => state.integrations.webhook_token(id.as_str()).await.map_err(|e| {
            tracing::error!(error = %e, "integration webhook token unavailable");
            ApiError::new(
                Code::Unavailable,
                "the webhook could not be checked right now; try again",
            )
        })?,
        None => None,
    };
    let token = match &known {
        Some(token) => token.clone(),
        None => crate::integrations::decoy_token(),
    };
    let response = handle(&req, payload, &state, Some(&token), id.clone()).await;
    if let Some(id) = id.filter(|_| known.is_some() && response.is_ok()) {
        state.integrations.webhook_seen(id.as_str()).await;
    }
    response
}

/// The steps shared by every webhook route; `token` is the secret this route verifies
/// against and `integration_id` the connected organisation it belongs to, if any.
pub(crate) async fn handle(
    req: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
    token: Option<&SecretString>,
    integration_id: Option<IntegrationId>,
) -> Result<HttpResponse, ApiError> {
    let header_event = header(req, "X-Buildkite-Event");
    let event_label = EventName::from_header(header_event.unwrap_or("")).as_label();
    tracing::Span::current().record("event", event_label);
    let count = |outcome: &str| {
        state.metrics.webhooks.with_label_values(&[event_label, outcome]).inc();
    };

    let max = state.settings.server.max_body_bytes.get() as usize;
    let body = read_body(req, payload, max).await.inspect_err(|e| {
        count(if e.code == Code::PayloadTooLarge { "too_large" } else { "bad_request" })
    })?;

    let Some(token) = token else {
        count("unauthorized");
        return Err(ApiError::new(
            Code::Unauthorized,
            signature::AuthError::NotConfigured.to_string(),
        ));
    };
    let verified =
        Credential::from_headers(header(req, SIGNATURE_HEADER), header(req, TOKEN_HEADER))
            .and_then(|credential| {
                let now = chrono::Utc::now().timestamp();
                signature::verify(
                    token,
                    &credential,
                    &body,
                    now,
                    state.settings.webhook.max_skew.as_secs(),
                )
            });
    let verified = match verified {
        Ok(verified) => verified,
        Err(e) => {
            // The presented value is never logged, only why it was refused.
            tracing::warn!(reason = %e, "webhook refused");
            count("unauthorized");
            return Err(ApiError::new(Code::Unauthorized, e.to_string()));
        }
    };

    let event = event::parse(header_event, verified).map_err(|e| {
        count("bad_request");
        ApiError::new(Code::InvalidPayload, e.to_string())
    })?;
    match event {
        WebhookEvent::Ping => {
            count("ping");
            Ok(HttpResponse::Ok().json(WebhookResponse {
                status: "pong",
                dedupe_key: None,
                reason: None,
            }))
        }
        WebhookEvent::Ignored { reason, .. } => {
            count("ignored");
            Ok(HttpResponse::Ok().json(WebhookResponse {
                status: "ignored",
                dedupe_key: None,
                reason: Some(reason),
            }))
        }
        WebhookEvent::Failed(build) => {
            tracing::Span::current().record("build_id", build.build_id.as_str());
            let key = build.dedupe_key().to_string();
            match state.intake.accept(*build, integration_id).await {
                Ok(Accepted::Queued) => {
                    count("accepted");
                    Ok(HttpResponse::Accepted().json(WebhookResponse {
                        status: "queued",
                        dedupe_key: Some(key),
                        reason: None,
                    }))
                }
                Ok(Accepted::Duplicate) => {
                    count("duplicate");
                    Ok(HttpResponse::Ok().json(WebhookResponse {
                        status: "duplicate",
                        dedupe_key: Some(key),
                        reason: None,
                    }))
                }
                Err(e) => {
                    tracing::error!(error = %e, "could not queue the build");
                    count("unavailable");
                    Err(ApiError::new(
                        Code::Unavailable,
                        "the event could not be queued durably; try again",
                    ))
                }
            }
        }
    }
}

fn header<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// Reads the whole body, refusing more than `max` bytes without reading past the limit
/// (a `Content-Length` over it is refused before reading anything).
async fn read_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    max: usize,
) -> Result<web::Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            Code::PayloadTooLarge,
            format!("body is larger than server.max_body_bytes ({max} bytes)"),
        )
    };
    let declared = header(req, "Content-Length").and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > max) {
        return Err(too_large());
    }
    let mut body = web::BytesMut::with_capacity(declared.unwrap_or(0).min(max));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::new(Code::UnreadableBody, e.to_string()))?;
        if body.len() + chunk.len() > max {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}
