//! `POST /webhooks/buildkite`: verify, parse, queue.
//!
//! Order of checks, each refusing with its own status so a sender's misconfiguration is
//! easy to spot in Buildkite's "recent requests" list: body size (413) → credential
//! (401, on the raw bytes, before any parsing) → JSON and payload shape (400) → event
//! kind (2xx and ignored) → durable queueing (202, or 503 when it cannot be done).

mod error;
mod outcome;

use actix_web::{HttpRequest, HttpResponse, web};
use futures::StreamExt;
use secrecy::SecretString;

use crate::domain::IntegrationId;
use crate::error::ApiError;
use crate::intake::Accepted;
use crate::state::AppState;
use crate::webhook::signature::{self, Credential, SIGNATURE_HEADER, TOKEN_HEADER, Verified};
use crate::webhook::{AuthError, EventName, WebhookEvent, event};

use error::{Outage, WebhookError};
use outcome::WebhookOutcome;

const EVENT_HEADER: &str = "X-Buildkite-Event";

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/webhooks/buildkite", web::post().to(receive_buildkite))
        .route("/webhooks/buildkite/{id}", web::post().to(receive_for_integration));
}

/// The single-organisation route, verified with `webhook.token`.
#[tracing::instrument(name = "webhook.receive", skip_all, fields(event = tracing::field::Empty, build_id = tracing::field::Empty))]
async fn receive_buildkite(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let token = state.settings.webhook.token.clone();
    answer(&req, payload, &state, token.as_ref(), None).await
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
        // Refused before the delivery is looked at, so not counted in
        // `kitefix_webhooks_total` (as before the outcome enums).
        Some(id) => state
            .integrations
            .webhook_token(id.as_str())
            .await
            .map_err(|e| WebhookError::from(Outage::Credential(e)))?,
        None => None,
    };
    let token = match &known {
        Some(token) => token.clone(),
        None => crate::integrations::decoy_token(),
    };
    let response = answer(&req, payload, &state, Some(&token), id.clone()).await;
    if let Some(id) = id.filter(|_| known.is_some() && response.is_ok()) {
        state.integrations.webhook_seen(id.as_str()).await;
    }
    response
}

/// Every webhook route's delivery: [`receive`] it, count its outcome in
/// `kitefix_webhooks_total{event,outcome}` (here and nowhere else), and answer.
async fn answer(
    req: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
    token: Option<&SecretString>,
    integration_id: Option<IntegrationId>,
) -> Result<HttpResponse, ApiError> {
    let event = EventName::from_header(header(req, EVENT_HEADER).unwrap_or("")).as_label();
    tracing::Span::current().record("event", event);
    let received = receive(req, payload, state, token, integration_id).await;
    let outcome = match &received {
        Ok(outcome) => outcome.label(),
        Err(e) => e.label(),
    };
    state.metrics.webhooks.with_label_values(&[event, outcome]).inc();
    Ok(received?.into_response())
}

/// The steps, in the order of the module comment; `token` is the secret this route
/// verifies against and `integration_id` the connected organisation it belongs to, if any.
async fn receive(
    req: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
    token: Option<&SecretString>,
    integration_id: Option<IntegrationId>,
) -> Result<WebhookOutcome, WebhookError> {
    let max = state.settings.server.max_body_bytes.get() as usize;
    let body = read_body(req, payload, max).await?;
    let verified = verify(req, state, token, &body)?;
    let event = event::parse(header(req, EVENT_HEADER), verified)?;
    accept(state, event, integration_id).await
}

/// Checks the request's credential against `token` (none configured refuses everything).
fn verify<'a>(
    req: &HttpRequest,
    state: &AppState,
    token: Option<&SecretString>,
    body: &'a [u8],
) -> Result<Verified<'a>, AuthError> {
    let token = token.ok_or(AuthError::NotConfigured)?;
    let credential =
        Credential::from_headers(header(req, SIGNATURE_HEADER), header(req, TOKEN_HEADER))?;
    let now = chrono::Utc::now().timestamp();
    signature::verify(token, &credential, body, now, state.settings.webhook.max_skew.as_secs())
}

/// Queues a failed build; anything else is answered without queueing.
async fn accept(
    state: &AppState,
    event: WebhookEvent,
    integration_id: Option<IntegrationId>,
) -> Result<WebhookOutcome, WebhookError> {
    let build = match event {
        WebhookEvent::Ping => return Ok(WebhookOutcome::Pong),
        WebhookEvent::Ignored { reason, .. } => return Ok(WebhookOutcome::Ignored(reason)),
        WebhookEvent::Failed(build) => build,
    };
    tracing::Span::current().record("build_id", build.build_id.as_str());
    let key = build.dedupe_key();
    match state.intake.accept(*build, integration_id).await.map_err(Outage::Queue)? {
        Accepted::Queued => Ok(WebhookOutcome::Queued(key)),
        Accepted::Duplicate => Ok(WebhookOutcome::Duplicate(key)),
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
) -> Result<web::Bytes, WebhookError> {
    let declared = header(req, "Content-Length").and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > max) {
        return Err(WebhookError::TooLarge { max });
    }
    let mut body = web::BytesMut::with_capacity(declared.unwrap_or(0).min(max));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(WebhookError::Unreadable)?;
        if body.len() + chunk.len() > max {
            return Err(WebhookError::TooLarge { max });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}
