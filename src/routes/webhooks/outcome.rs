//! What a webhook delivery that was not refused came to, and the 2xx answer for it.

use actix_web::HttpResponse;
use serde::Serialize;

use crate::domain::DedupeKey;

/// A delivery that was verified and understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum WebhookOutcome {
    /// Buildkite's `ping`, sent when a webhook is saved.
    Pong,
    /// Valid, but nothing for kitefix to do; the reason is in the answer.
    Ignored(&'static str),
    /// A failed build, now durably queued.
    Queued(DedupeKey),
    /// A redelivery of an event already accepted; nothing queued.
    Duplicate(DedupeKey),
}

#[derive(Serialize)]
struct Body<'a> {
    status: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    dedupe_key: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
}

impl WebhookOutcome {
    /// The `outcome` label of `kitefix_webhooks_total`.
    pub(crate) fn label(&self) -> &'static str {
        match self {
            WebhookOutcome::Pong => "ping",
            WebhookOutcome::Ignored(_) => "ignored",
            WebhookOutcome::Queued(_) => "accepted",
            WebhookOutcome::Duplicate(_) => "duplicate",
        }
    }

    /// 202 only when something was queued; everything else that was understood is a 200,
    /// so Buildkite does not retry it.
    pub(crate) fn into_response(self) -> HttpResponse {
        let body = |status, dedupe_key, reason| Body { status, dedupe_key, reason };
        match &self {
            WebhookOutcome::Pong => HttpResponse::Ok().json(body("pong", None, None)),
            WebhookOutcome::Ignored(reason) => {
                HttpResponse::Ok().json(body("ignored", None, Some(reason)))
            }
            WebhookOutcome::Queued(key) => {
                HttpResponse::Accepted().json(body("queued", Some(key.as_str()), None))
            }
            WebhookOutcome::Duplicate(key) => {
                HttpResponse::Ok().json(body("duplicate", Some(key.as_str()), None))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_outcome_keeps_its_label_and_status() {
        // The key has no public constructor; it is `#[serde(transparent)]`.
        let key = || -> DedupeKey {
            serde_json::from_str(r#""acme/b/2026-11-25T10:00:00.000Z""#).unwrap()
        };
        let cases = [
            (WebhookOutcome::Pong, "ping", 200),
            (WebhookOutcome::Ignored("kitefix acts on build.finished only"), "ignored", 200),
            (WebhookOutcome::Queued(key()), "accepted", 202),
            (WebhookOutcome::Duplicate(key()), "duplicate", 200),
        ];
        for (outcome, label, status) in cases {
            assert_eq!(outcome.label(), label, "{outcome:?}");
            assert_eq!(outcome.into_response().status().as_u16(), status, "{label}");
        }
    }
}
