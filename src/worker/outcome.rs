//! What became of one attempt at a build, and the one policy that turns an error into
//! that: retry it later, record it as failed, or park it for a person.

use std::time::Duration;

use crate::buildkite::BuildkiteError;
use crate::github::GitHubError;
use crate::store::StoreError;
use crate::tokens::TokenError;

/// What became of one attempt at a build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Reported: posted to GitHub, or stored in dry-run (which `note` then says).
    Reported { note: Option<String> },
    /// Nothing to report (pipeline not on GitHub, no failed script job…).
    Skipped { reason: String },
    /// Will not work until a person changes something (token revoked, scope missing,
    /// GitHub App not installed): recorded with the reason, not retried.
    Failed { reason: String },
    /// Transient trouble (rate limit, 5xx, timeout): try again after `delay`, or after
    /// the queue's backoff when `None`.
    Retry { delay: Option<Duration>, reason: String },
    /// Something kitefix cannot make sense of (an undecodable answer, a bug): park the
    /// message in the dead-letter queue for a person.
    DeadLetter { reason: String },
}

impl Outcome {
    /// The `kitefix_build_seconds{outcome}` label.
    pub(crate) fn label(&self) -> &'static str {
        match self {
            Outcome::Reported { .. } | Outcome::Skipped { .. } | Outcome::Failed { .. } => "done",
            Outcome::Retry { .. } => "retry",
            Outcome::DeadLetter { .. } => "dead_letter",
        }
    }
}

/// Why the pipeline stopped short of a report.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Buildkite(#[from] BuildkiteError),
    #[error("GitHub: {0}")]
    GitHub(#[from] GitHubError),
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("the classifier panicked: {0}")]
    ClassifierPanicked(String),
}

/// How an error should be treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Disposition {
    /// Worth another attempt, after this long if the service said so.
    Transient(Option<Duration>),
    /// Recorded as failed: retrying cannot help until a person acts.
    Permanent,
    /// Dead-lettered for a person to look at.
    Unexpected,
}

impl PipelineError {
    /// The retry policy, in one place. Each client already sorts its errors into
    /// transient or not (`BuildkiteError::is_transient`, `GitHubError::is_transient`);
    /// this decides what the not-transient ones mean for the build.
    fn disposition(&self) -> Disposition {
        match self {
            PipelineError::Buildkite(e) if e.is_transient() => {
                Disposition::Transient(e.retry_after())
            }
            // The token or the build is not usable (revoked, scope removed, build
            // deleted): a fact to record, not an incident.
            PipelineError::Buildkite(
                BuildkiteError::Unauthorized { .. }
                | BuildkiteError::Forbidden { .. }
                | BuildkiteError::NotFound { .. }
                | BuildkiteError::Gone,
            ) => Disposition::Permanent,
            // Answers kitefix cannot make sense of.
            PipelineError::Buildkite(_) => Disposition::Unexpected,
            PipelineError::GitHub(e) if e.is_transient() => Disposition::Transient(e.retry_after()),
            PipelineError::GitHub(_) => Disposition::Permanent,
            PipelineError::Token(e) if e.is_transient() => Disposition::Transient(None),
            PipelineError::Token(_) => Disposition::Permanent,
            PipelineError::Store(_) => Disposition::Transient(None),
            PipelineError::ClassifierPanicked(_) => Disposition::Unexpected,
        }
    }
}

impl From<PipelineError> for Outcome {
    fn from(e: PipelineError) -> Self {
        let reason = e.to_string();
        match e.disposition() {
            Disposition::Transient(delay) => Outcome::Retry { delay, reason },
            Disposition::Permanent => Outcome::Failed { reason },
            Disposition::Unexpected => Outcome::DeadLetter { reason },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revoked_tokens_fail_and_rate_limits_wait() {
        let revoked = PipelineError::Token(TokenError::NotConnected { org: "acme".into() });
        assert!(matches!(Outcome::from(revoked), Outcome::Failed { .. }));

        let store_down = PipelineError::Token(TokenError::Unavailable("db down".into()));
        assert!(matches!(Outcome::from(store_down), Outcome::Retry { delay: None, .. }));

        let limited = PipelineError::GitHub(GitHubError::RateLimited {
            endpoint: "checks/create",
            retry_after: Duration::from_secs(42),
        });
        let outcome = Outcome::from(limited);
        assert_eq!(
            outcome,
            Outcome::Retry {
                delay: Some(Duration::from_secs(42)),
                reason: "GitHub: GitHub rate limit on checks/create: retry in 42s".into()
            }
        );

        let panicked = PipelineError::ClassifierPanicked("boom".into());
        assert!(matches!(Outcome::from(panicked), Outcome::DeadLetter { .. }));
    }
}
