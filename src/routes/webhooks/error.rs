//! Why a webhook delivery was refused, each reason with its metric label and its HTTP
//! answer (the status comes from its [`Code`]).

use crate::error::{ApiError, Code, sources};
use crate::intake::IntakeError;
use crate::integrations::IntegrationError;
use crate::webhook::{AuthError, PayloadError};

/// A refused delivery. The `Display` text is the message the sender reads.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WebhookError {
    #[error("body is larger than server.max_body_bytes ({max} bytes)")]
    TooLarge { max: usize },
    /// The connection failed while the body was being read.
    #[error("{0}")]
    Unreadable(#[source] actix_web::error::PayloadError),
    #[error(transparent)]
    Unauthorized(#[from] AuthError),
    #[error(transparent)]
    InvalidPayload(#[from] PayloadError),
    /// Something kitefix needs is down; the sender should try again.
    #[error(transparent)]
    Unavailable(#[from] Outage),
}

/// What was down when a delivery could not be handled. The messages are for the sender
/// and name no internals; the cause is logged.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Outage {
    /// The integration's webhook token could not be read (store or cipher).
    #[error("the webhook could not be checked right now; try again")]
    Credential(#[source] IntegrationError),
    /// The event could not be made durable.
    #[error("the event could not be queued durably; try again")]
    Queue(#[source] IntakeError),
}

impl WebhookError {
    /// The `outcome` label of `kitefix_webhooks_total`.
    pub(crate) fn label(&self) -> &'static str {
        match self {
            WebhookError::TooLarge { .. } => "too_large",
            WebhookError::Unreadable(_) | WebhookError::InvalidPayload(_) => "bad_request",
            WebhookError::Unauthorized(_) => "unauthorized",
            WebhookError::Unavailable(_) => "unavailable",
        }
    }

    fn code(&self) -> Code {
        match self {
            WebhookError::TooLarge { .. } => Code::PayloadTooLarge,
            WebhookError::Unreadable(_) => Code::UnreadableBody,
            WebhookError::Unauthorized(_) => Code::Unauthorized,
            WebhookError::InvalidPayload(_) => Code::InvalidPayload,
            WebhookError::Unavailable(_) => Code::Unavailable,
        }
    }
}

impl From<WebhookError> for ApiError {
    fn from(e: WebhookError) -> Self {
        match &e {
            // The presented value is never logged, only why it was refused.
            WebhookError::Unauthorized(reason) => tracing::warn!(%reason, "webhook refused"),
            WebhookError::Unavailable(outage) => {
                let cause = std::error::Error::source(outage).expect("every outage has a cause");
                let cause_chain = sources(cause);
                match outage {
                    Outage::Credential(_) => tracing::error!(
                        error = %cause, ?cause_chain, "integration webhook token unavailable"
                    ),
                    Outage::Queue(_) => {
                        tracing::error!(error = %cause, ?cause_chain, "could not queue the build")
                    }
                }
            }
            _ => {}
        }
        ApiError::new(e.code(), e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use actix_web::http::StatusCode;

    use super::*;

    /// The labels and statuses the route had before these enums; dashboards and the
    /// integration tests (tests/it/webhook_receive.rs) rely on them.
    #[test]
    fn each_refusal_keeps_its_label_status_and_code() {
        let queue_down = IntakeError::Queue(crate::queue::QueueError::Unavailable("x".into()));
        let cases = [
            (WebhookError::TooLarge { max: 1 }, "too_large", 413, "payload_too_large"),
            (
                WebhookError::Unreadable(actix_web::error::PayloadError::Incomplete(None)),
                "bad_request",
                400,
                "unreadable_body",
            ),
            (AuthError::BadToken.into(), "unauthorized", 401, "unauthorized"),
            (PayloadError::NoEventName.into(), "bad_request", 400, "invalid_payload"),
            (Outage::Queue(queue_down).into(), "unavailable", 503, "unavailable"),
        ];
        for (error, label, status, code) in cases {
            assert_eq!(error.label(), label, "{error:?}");
            let api = ApiError::from(error);
            assert_eq!(
                (api.status(), api.code.as_str()),
                (StatusCode::from_u16(status).unwrap(), code)
            );
        }
    }

    #[test]
    fn an_outage_tells_the_sender_to_retry_without_naming_the_cause() {
        let queue_down =
            IntakeError::Queue(crate::queue::QueueError::Unavailable("broker at 10.0.0.7".into()));
        let api = ApiError::from(WebhookError::from(Outage::Queue(queue_down)));
        assert_eq!(api.message, "the event could not be queued durably; try again");
    }
}
