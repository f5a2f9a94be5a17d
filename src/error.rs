//! The one JSON error shape every HTTP error has: `{"message": "...", "code": "..."}`.
//!
//! `code` is stable and machine-readable, and every one of them is listed once, in
//! [`Code`], with its HTTP status (the idea of meilisearch's `Code`,
//! <https://github.com/meilisearch/meilisearch/blob/main/crates/meilisearch-types/src/error.rs>);
//! `message` is for people. Internal details are logged, never returned.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::store::StoreError;

/// Declares [`Code`] from one line per code: variant, HTTP status, wire string. One line
/// each so a code cannot get a string without a status, or be listed twice.
macro_rules! codes {
    ($($(#[$doc:meta])* $variant:ident => $status:ident, $wire:literal;)+) => {
        /// Every error code an HTTP client can see. The strings are a public contract
        /// (README, `docs/design.md#http`): add codes, never rename one.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Code {
            $($(#[$doc])* $variant,)+
        }

        impl Code {
            /// All codes, in declaration order.
            pub const ALL: &[Code] = &[$(Code::$variant,)+];

            /// The HTTP status an error with this code is answered with.
            pub fn status(self) -> StatusCode {
                match self {
                    $(Code::$variant => StatusCode::$status,)+
                }
            }

            /// The stable snake_case string in the body's `code` field.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Code::$variant => $wire,)+
                }
            }
        }
    };
}

codes! {
    // Any route.
    /// Something failed on our side; the cause is in the log.
    Internal => INTERNAL_SERVER_ERROR, "internal";
    /// A dependency (the store, the queue) is down; `Retry-After` says when to retry.
    Unavailable => SERVICE_UNAVAILABLE, "unavailable";
    NotFound => NOT_FOUND, "not_found";

    // Who may call.
    /// A webhook credential or the admin token is missing or wrong.
    Unauthorized => UNAUTHORIZED, "unauthorized";
    /// No `admin.token` on a non-loopback bind.
    AdminDisabled => FORBIDDEN, "admin_disabled";

    // Webhooks.
    PayloadTooLarge => PAYLOAD_TOO_LARGE, "payload_too_large";
    UnreadableBody => BAD_REQUEST, "unreadable_body";
    InvalidPayload => BAD_REQUEST, "invalid_payload";

    // Integrations.
    InvalidRequest => BAD_REQUEST, "invalid_request";
    InvalidOrgSlug => BAD_REQUEST, "invalid_org_slug";
    InvalidApiToken => BAD_REQUEST, "invalid_api_token";
    TokenRejected => UNPROCESSABLE_ENTITY, "token_rejected";
    MissingScopes => UNPROCESSABLE_ENTITY, "missing_scopes";
    OrgNotVisible => UNPROCESSABLE_ENTITY, "org_not_visible";
    AlreadyConnected => CONFLICT, "already_connected";
    BuildkiteUnreachable => BAD_GATEWAY, "buildkite_unreachable";
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Serialize)]
pub struct ErrorBody {
    pub message: String,
    pub code: &'static str,
    /// Machine-readable details of this error (e.g. `missing_scopes`), beside the message.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Map<String, serde_json::Value>>,
}

/// An error with its stable code (which decides the HTTP status) and a message.
#[derive(Debug)]
pub struct ApiError {
    pub code: Code,
    pub message: String,
    pub details: Option<serde_json::Map<String, serde_json::Value>>,
}

impl ApiError {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), details: None }
    }

    pub fn status(&self) -> StatusCode {
        self.code.status()
    }

    /// Adds a machine-readable field to the body, beside `message` and `code`.
    pub fn with_detail(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        self.details.get_or_insert_with(Default::default).insert(key.to_owned(), value.into());
        self
    }

    /// A 500 whose cause, with every `source()` under it, is logged here and not shown
    /// to the caller.
    pub fn internal(cause: &dyn std::error::Error) -> Self {
        tracing::error!(error = %cause, cause_chain = ?sources(cause), "internal error");
        Self::new(Code::Internal, "internal error")
    }
}

/// The `Display` of each error under `error`, nearest first: what `%error` alone hides
/// when a wrapper's message does not repeat its cause (zero2prod's `error_chain_fmt`
/// idea, <https://github.com/LukeMathWalker/zero-to-production>).
pub fn sources(error: &dyn std::error::Error) -> Vec<String> {
    std::iter::successors(error.source(), |e| e.source()).map(ToString::to_string).collect()
}

/// The store decides between "try again" and "our fault": a database that cannot be
/// reached is a 503 everywhere (the caller may retry), anything else a 500.
impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(_) => {
                tracing::error!(error = %e, cause_chain = ?sources(&e), "store unavailable");
                ApiError::new(Code::Unavailable, "the store is unavailable; try again")
            }
            other => ApiError::internal(&other),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status()
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status());
        if self.status() == StatusCode::SERVICE_UNAVAILABLE {
            // Tell well-behaved senders when to come back.
            response.insert_header(("Retry-After", "5"));
        }
        response.json(ErrorBody {
            message: self.message.clone(),
            code: self.code.as_str(),
            details: self.details.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    /// The wire contract, written out: a renamed string or a changed status fails here.
    #[test]
    fn every_code_keeps_its_status_and_string() {
        let expected = [
            (Code::Internal, 500, "internal"),
            (Code::Unavailable, 503, "unavailable"),
            (Code::NotFound, 404, "not_found"),
            (Code::Unauthorized, 401, "unauthorized"),
            (Code::AdminDisabled, 403, "admin_disabled"),
            (Code::PayloadTooLarge, 413, "payload_too_large"),
            (Code::UnreadableBody, 400, "unreadable_body"),
            (Code::InvalidPayload, 400, "invalid_payload"),
            (Code::InvalidRequest, 400, "invalid_request"),
            (Code::InvalidOrgSlug, 400, "invalid_org_slug"),
            (Code::InvalidApiToken, 400, "invalid_api_token"),
            (Code::TokenRejected, 422, "token_rejected"),
            (Code::MissingScopes, 422, "missing_scopes"),
            (Code::OrgNotVisible, 422, "org_not_visible"),
            (Code::AlreadyConnected, 409, "already_connected"),
            (Code::BuildkiteUnreachable, 502, "buildkite_unreachable"),
        ];
        assert_eq!(expected.len(), Code::ALL.len(), "a code without a pinned string");
        for (code, status, wire) in expected {
            assert_eq!((code.status().as_u16(), code.as_str()), (status, wire), "{code:?}");
        }
    }

    #[test]
    fn codes_are_distinct_snake_case() {
        let mut seen = HashSet::new();
        for code in Code::ALL {
            let s = code.as_str();
            assert!(seen.insert(s), "{s} listed twice");
            assert!(s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'), "{s}");
        }
    }

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] Middle);

    #[derive(Debug, thiserror::Error)]
    #[error("middle")]
    struct Middle(#[source] std::io::Error);

    #[test]
    fn sources_walks_the_whole_chain() {
        let e = Outer(Middle(std::io::Error::other("disk on fire")));
        assert_eq!(sources(&e), ["middle", "disk on fire"]);
        assert!(sources(&std::io::Error::other("alone")).is_empty());
    }

    #[test]
    fn an_unreachable_store_is_503_and_other_store_errors_500() {
        let down = ApiError::from(StoreError::Unavailable(sqlx::Error::PoolClosed));
        assert_eq!(
            (down.status(), down.code),
            (StatusCode::SERVICE_UNAVAILABLE, Code::Unavailable)
        );
        let corrupt = ApiError::from(StoreError::Corrupt("bad row".into()));
        assert_eq!(
            (corrupt.status(), corrupt.code),
            (StatusCode::INTERNAL_SERVER_ERROR, Code::Internal)
        );
        assert_eq!(corrupt.message, "internal error", "the cause is not shown");
    }
}
