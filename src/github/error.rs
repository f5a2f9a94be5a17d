//! What can go wrong talking to GitHub, sorted by what the queue should do about it.
//!
//! | variant | queue action |
//! | --- | --- |
//! | [`GitHubError::RateLimited`] | retry after [`GitHubError::retry_after`] |
//! | [`GitHubError::Transient`] | retry with backoff |
//! | everything else | permanent: record the reason, do not retry |
//!
//! Rules from GitHub docs, "Rate limits for the REST API" → "Exceeding the rate limit" and
//! "Best practices": a rate-limited request gets 403 or 429; wait `retry-after` seconds
//! when present, else until `x-ratelimit-reset` (epoch seconds) when
//! `x-ratelimit-remaining` is 0, else at least a minute.

use std::time::Duration;

use super::repo::RepoFullName;

/// Upper bound on a wait we ask for: GitHub's primary window is one hour, so a longer
/// value is a malformed header, not a reason to park a build for days.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3_600);
/// "If you receive a secondary rate limit and there is no `retry-after` or
/// `x-ratelimit-remaining` header, wait for at least one minute" (GitHub docs).
const DEFAULT_RATE_LIMIT_WAIT: Duration = Duration::from_secs(60);
/// GitHub's messages go into logs and the store; keep them bounded.
const MAX_MESSAGE_CHARS: usize = 1_000;

/// A failed GitHub operation. Messages never hold a token: they are GitHub's own error
/// message, our endpoint names and repository names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GitHubError {
    /// GitHub asked us to slow down (primary or secondary rate limit).
    #[error("GitHub rate limit on {endpoint}: retry in {}s", retry_after.as_secs())]
    RateLimited {
        /// The operation (`checks/create`, …).
        endpoint: &'static str,
        /// How long to wait before the next request.
        retry_after: Duration,
    },
    /// A 5xx, a timeout or a broken connection: worth retrying with backoff.
    #[error("GitHub {endpoint} failed, may work on retry: {reason}")]
    Transient {
        /// The operation.
        endpoint: &'static str,
        /// The HTTP status, when there was a response.
        status: Option<u16>,
        /// What happened.
        reason: String,
    },
    /// 401 even with a freshly minted token, or the App's own JWT refused: the App id or
    /// private key is wrong (or the clock is far off).
    #[error("GitHub refused kitefix's credentials on {endpoint} (HTTP 401): {message}")]
    Unauthorized {
        /// The operation.
        endpoint: &'static str,
        /// GitHub's message.
        message: String,
    },
    /// 403 that is not a rate limit: the App lacks a permission on this repository.
    #[error(
        "the GitHub App may not {endpoint}: {message}{}",
        accepted_permissions.as_deref().map(|p| format!(" (needs: {p})")).unwrap_or_default()
    )]
    PermissionDenied {
        /// The operation.
        endpoint: &'static str,
        /// GitHub's message ("Resource not accessible by integration").
        message: String,
        /// `X-Accepted-GitHub-Permissions`: the permissions that would have worked,
        /// e.g. `checks=write`.
        accepted_permissions: Option<String>,
    },
    /// The App is not installed on the repository (or cannot see it).
    #[error("the GitHub App is not installed on {repo}")]
    NotInstalled {
        /// The repository we looked for.
        repo: RepoFullName,
    },
    /// 404 on anything else.
    #[error("GitHub {endpoint}: not found (HTTP 404): {message}")]
    NotFound {
        /// The operation.
        endpoint: &'static str,
        /// GitHub's message.
        message: String,
    },
    /// 422 and other 4xx: GitHub understood and refused the request.
    #[error("GitHub refused {endpoint} (HTTP {status}): {message}")]
    Rejected {
        /// The operation.
        endpoint: &'static str,
        /// The HTTP status.
        status: u16,
        /// GitHub's message and validation errors.
        message: String,
    },
    /// A success response we could not read.
    #[error("unexpected answer from GitHub {endpoint}: {reason}")]
    UnexpectedResponse {
        /// The operation.
        endpoint: &'static str,
        /// What did not parse.
        reason: String,
    },
    /// The App configuration is unusable (private key, API URL).
    #[error("GitHub App configuration: {0}")]
    Config(String),
}

impl GitHubError {
    /// True when retrying later may succeed: rate limits, 5xx, timeouts, transport errors.
    pub fn is_transient(&self) -> bool {
        matches!(self, GitHubError::RateLimited { .. } | GitHubError::Transient { .. })
    }

    /// How long to wait before retrying, when GitHub said so.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            GitHubError::RateLimited { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }

    /// A short stable name for each kind (`rate_limited`, `transient`, …), logged with
    /// every failed GitHub call.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            GitHubError::RateLimited { .. } => "rate_limited",
            GitHubError::Transient { .. } => "transient",
            GitHubError::Unauthorized { .. } => "unauthorized",
            GitHubError::PermissionDenied { .. } => "permission_denied",
            GitHubError::NotInstalled { .. } => "not_installed",
            GitHubError::NotFound { .. } => "not_found",
            GitHubError::Rejected { .. } => "rejected",
            GitHubError::UnexpectedResponse { .. } => "unexpected_response",
            GitHubError::Config(_) => "config",
        }
    }

    /// Sorts an error response by status and headers. `header` looks a response header up
    /// by lowercase name; `now_epoch` is the current Unix time, for `x-ratelimit-reset`.
    pub(crate) fn from_response(
        endpoint: &'static str,
        status: u16,
        message: &str,
        header: impl Fn(&str) -> Option<String>,
        now_epoch: u64,
    ) -> Self {
        let message: String = message.trim().chars().take(MAX_MESSAGE_CHARS).collect();
        if let Some(retry_after) = rate_limit_wait(status, &message, &header, now_epoch) {
            return GitHubError::RateLimited { endpoint, retry_after };
        }
        match status {
            401 => GitHubError::Unauthorized { endpoint, message },
            403 => GitHubError::PermissionDenied {
                endpoint,
                message,
                accepted_permissions: header("x-accepted-github-permissions")
                    .filter(|p| !p.trim().is_empty()),
            },
            404 => GitHubError::NotFound { endpoint, message },
            408 | 500..=599 => {
                GitHubError::Transient { endpoint, status: Some(status), reason: message }
            }
            _ => GitHubError::Rejected { endpoint, status, message },
        }
    }
}

/// The wait GitHub asks for, if this response is a rate limit.
fn rate_limit_wait(
    status: u16,
    message: &str,
    header: &impl Fn(&str) -> Option<String>,
    now_epoch: u64,
) -> Option<Duration> {
    if status != 403 && status != 429 {
        return None;
    }
    let number = |name: &str| header(name).and_then(|v| v.trim().parse::<u64>().ok());
    let wait = if let Some(seconds) = number("retry-after") {
        Duration::from_secs(seconds)
    } else if number("x-ratelimit-remaining") == Some(0) {
        match number("x-ratelimit-reset") {
            // One second of slack: the reset time is whole seconds.
            Some(reset) => Duration::from_secs(reset.saturating_sub(now_epoch) + 1),
            None => DEFAULT_RATE_LIMIT_WAIT,
        }
    } else if status == 429 || message.to_ascii_lowercase().contains("rate limit") {
        DEFAULT_RATE_LIMIT_WAIT
    } else {
        // A plain 403 is a permission problem, not a reason to wait.
        return None;
    };
    Some(wait.clamp(Duration::from_secs(1), MAX_RETRY_AFTER))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify(status: u16, message: &str, headers: &[(&str, &str)]) -> GitHubError {
        let lookup = |name: &str| {
            headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.to_string())
        };
        GitHubError::from_response("checks/create", status, message, lookup, 1_700_000_000)
    }

    #[test]
    fn retry_after_wins() {
        let err =
            classify(403, "You have exceeded a secondary rate limit", &[("retry-after", "30")]);
        assert_eq!(err.retry_after(), Some(Duration::from_secs(30)));
        assert!(err.is_transient());
        let err = classify(429, "Too Many Requests", &[("Retry-After", "5")]);
        assert_eq!(err.retry_after(), Some(Duration::from_secs(5)));
    }

    #[test]
    fn exhausted_primary_limit_waits_until_reset() {
        let err = classify(
            403,
            "API rate limit exceeded for installation ID 1.",
            &[("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", "1700000120")],
        );
        assert_eq!(err.retry_after(), Some(Duration::from_secs(121)));
        // A reset in the past still waits a moment rather than hammering.
        let err = classify(
            429,
            "",
            &[("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", "1600000000")],
        );
        assert_eq!(err.retry_after(), Some(Duration::from_secs(1)));
    }

    #[test]
    fn limits_without_headers_wait_a_minute_and_absurd_waits_are_capped() {
        assert_eq!(classify(429, "", &[]).retry_after(), Some(Duration::from_secs(60)));
        assert_eq!(
            classify(403, "You have exceeded a secondary rate limit.", &[]).retry_after(),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            classify(429, "", &[("retry-after", "99999999")]).retry_after(),
            Some(Duration::from_secs(3_600))
        );
    }

    #[test]
    fn forbidden_without_limit_is_a_permission_error_naming_the_permission() {
        let err = classify(
            403,
            "Resource not accessible by integration",
            &[("x-accepted-github-permissions", "checks=write"), ("x-ratelimit-remaining", "4999")],
        );
        assert!(!err.is_transient());
        assert_eq!(
            err.to_string(),
            "the GitHub App may not checks/create: Resource not accessible by integration \
             (needs: checks=write)"
        );
    }

    #[test]
    fn statuses_map_to_their_kind() {
        assert_eq!(classify(401, "Bad credentials", &[]).kind(), "unauthorized");
        assert_eq!(classify(404, "Not Found", &[]).kind(), "not_found");
        assert_eq!(classify(422, "Validation Failed", &[]).kind(), "rejected");
        assert_eq!(classify(409, "Conflict", &[]).kind(), "rejected");
        for status in [500, 502, 503, 504, 408] {
            let err = classify(status, "", &[]);
            assert!(err.is_transient() && err.retry_after().is_none(), "{status}");
        }
    }
}
