//! What can go wrong talking to Buildkite, classified for the worker's retry decision.
//!
//! No message here ever holds the API token: request URLs carry only ids, the token goes
//! in a sensitive header, and text from Buildkite's error bodies is redacted and capped.

use std::fmt;
use std::time::Duration;

/// Which Buildkite rate limit was hit (docs/buildkite.md#rate-limits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RateLimitScope {
    /// The organization's budget (`RateLimit-*`, scope `rest`), shared by all its users.
    Organization,
    /// The token owner's budget (`RateLimit-User-*`, scope `rest_user`).
    User,
}

impl RateLimitScope {
    /// A fixed metric label.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Organization => "organization",
            Self::User => "user",
        }
    }
}

impl fmt::Display for RateLimitScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The API call a request belongs to: a fixed metric label, never a URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `GET …/builds/{n}`.
    GetBuild,
    /// `GET …/jobs/{job}/log` as `text/plain`.
    JobLog,
    /// `GET …/jobs/{job}/env`.
    JobEnv,
    /// `GET /v2/access-token`.
    AccessToken,
    /// `GET /v2/organizations/{org}/builds`.
    ListBuilds,
    /// `GET /v2/organizations/{org}`.
    GetOrganization,
}

impl Endpoint {
    /// The metric label.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::GetBuild => "get_build",
            Self::JobLog => "job_log",
            Self::JobEnv => "job_env",
            Self::AccessToken => "access_token",
            Self::ListBuilds => "list_builds",
            Self::GetOrganization => "get_organization",
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which time limit ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutKind {
    /// No response (headers, or a whole JSON body) within the request timeout.
    Request,
    /// A log stream sent nothing for the idle timeout.
    LogIdle,
    /// A log stream did not finish before its overall deadline.
    LogDeadline,
}

impl fmt::Display for TimeoutKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Request => "no answer within the request timeout",
            Self::LogIdle => "the log stream stalled",
            Self::LogDeadline => "the log stream passed its deadline",
        })
    }
}

/// A failed Buildkite API call.
#[derive(Debug, thiserror::Error)]
pub enum BuildkiteError {
    /// A rate limit is spent: retry after `retry_after` (the queue delays the message
    /// rather than holding a worker).
    #[error("Buildkite {scope} rate limit is spent; retry in {}s", retry_after.as_secs())]
    RateLimited {
        /// How long until the budget resets.
        retry_after: Duration,
        /// Which budget.
        scope: RateLimitScope,
    },
    /// 401: the token is unknown, revoked or expired.
    #[error("Buildkite refused the API token (401): {message}")]
    Unauthorized {
        /// Buildkite's message, redacted.
        message: String,
    },
    /// 403: the token lacks a scope or cannot see the organization.
    #[error("Buildkite refused access (403): {message}")]
    Forbidden {
        /// Buildkite's message, redacted.
        message: String,
        /// The scope named in "Your access token doesn't have the <scope> scope".
        missing_scope: Option<String>,
    },
    /// 404: no such organization, pipeline, build or job (or the token cannot see it).
    #[error("not found on Buildkite (404): {message}")]
    NotFound {
        /// Buildkite's message, redacted.
        message: String,
    },
    /// 410: the resource was deleted.
    #[error("gone from Buildkite (410)")]
    Gone,
    /// 5xx.
    #[error("Buildkite server error ({status})")]
    Server {
        /// The HTTP status.
        status: u16,
    },
    /// A time limit ran out.
    #[error("Buildkite {endpoint} request timed out: {kind}")]
    Timeout {
        /// The call.
        endpoint: Endpoint,
        /// Which limit.
        kind: TimeoutKind,
    },
    /// The connection failed (DNS, TLS, reset…).
    #[error("could not talk to Buildkite ({endpoint}): {source}")]
    Transport {
        /// The call.
        endpoint: Endpoint,
        /// The HTTP client's error (its text names the URL, which holds only ids).
        #[source]
        source: reqwest::Error,
    },
    /// Buildkite's answer did not have the documented shape.
    #[error("could not decode Buildkite's answer to {endpoint}: {detail}")]
    Decode {
        /// The call.
        endpoint: Endpoint,
        /// Where decoding failed (never the offending value, which could be a secret).
        detail: String,
    },
    /// The answer was larger than kitefix accepts for that call.
    #[error("Buildkite's answer to {endpoint} is larger than {limit} bytes")]
    TooLarge {
        /// The call.
        endpoint: Endpoint,
        /// The cap.
        limit: u64,
    },
    /// Any other status (400, 422, a redirect, which is never followed).
    #[error("Buildkite answered {status} to {endpoint}: {message}")]
    Unexpected {
        /// The call.
        endpoint: Endpoint,
        /// The HTTP status.
        status: u16,
        /// Buildkite's message, redacted, or what kitefix made of the answer.
        message: String,
    },
    /// A pagination link pointed somewhere other than the configured API.
    #[error("refused to follow a pagination link to another host ({host})")]
    UntrustedLink {
        /// The host it named.
        host: String,
    },
    /// The client could not be set up (bad API URL, TLS setup).
    #[error("Buildkite client configuration: {0}")]
    Config(String),
}

impl BuildkiteError {
    /// Whether trying again later may succeed: rate limits, 5xx, timeouts and transport
    /// failures. Everything else is permanent for this message (docs/design.md#failure-handling).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::RateLimited { .. }
                | Self::Server { .. }
                | Self::Timeout { .. }
                | Self::Transport { .. }
        )
    }

    /// When to try again, if Buildkite said (rate limits only; for other transient errors
    /// the queue picks a backoff with jitter).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }

    /// A fixed metric label for the kind of error.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Self::RateLimited { .. } => "rate_limited",
            Self::Unauthorized { .. } => "unauthorized",
            Self::Forbidden { .. } => "forbidden",
            Self::NotFound { .. } => "not_found",
            Self::Gone => "gone",
            Self::Server { .. } => "server",
            Self::Timeout { .. } => "timeout",
            Self::Transport { .. } => "transport",
            Self::Decode { .. } => "decode",
            Self::TooLarge { .. } => "too_large",
            Self::Unexpected { .. } => "unexpected",
            Self::UntrustedLink { .. } => "untrusted_link",
            Self::Config(_) => "config",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_errors_are_the_retryable_ones() {
        let limited = BuildkiteError::RateLimited {
            retry_after: Duration::from_secs(42),
            scope: RateLimitScope::User,
        };
        assert!(limited.is_transient());
        assert_eq!(limited.retry_after(), Some(Duration::from_secs(42)));
        assert!(BuildkiteError::Server { status: 502 }.is_transient());
        let timeout =
            BuildkiteError::Timeout { endpoint: Endpoint::JobLog, kind: TimeoutKind::LogIdle };
        assert!(timeout.is_transient());
        assert_eq!(timeout.retry_after(), None);
        for permanent in [
            BuildkiteError::Unauthorized { message: "revoked".into() },
            BuildkiteError::Forbidden { message: "no".into(), missing_scope: None },
            BuildkiteError::NotFound { message: "No job found".into() },
            BuildkiteError::Gone,
            BuildkiteError::Decode { endpoint: Endpoint::GetBuild, detail: "x".into() },
        ] {
            assert!(!permanent.is_transient(), "{permanent}");
        }
    }

    #[test]
    fn messages_name_what_happened() {
        let e = BuildkiteError::RateLimited {
            retry_after: Duration::from_secs(30),
            scope: RateLimitScope::Organization,
        };
        assert_eq!(e.to_string(), "Buildkite organization rate limit is spent; retry in 30s");
        let e = BuildkiteError::Timeout { endpoint: Endpoint::JobLog, kind: TimeoutKind::LogIdle };
        assert_eq!(e.to_string(), "Buildkite job_log request timed out: the log stream stalled");
    }
}
