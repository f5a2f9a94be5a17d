//! GitHub: the `kitefix` check run for each analysed build, posted as a GitHub App.
//!
//! - [`repo`]: which repository a Buildkite pipeline builds ([`RepoFullName`]).
//! - [`check_run`]: a [`crate::report::BuildReport`] rendered as title, Markdown summary,
//!   details and annotations.
//! - [`client`]: App authentication (JWT → installation → token) and one classified,
//!   counted request at a time, with octocrab's automatic retry off.
//! - [`reporter`]: [`GitHubReporter::publish`], creating or updating the build's run.
//! - [`error`]: [`GitHubError`] and how the queue should treat each kind.
//! - [`metrics`]: Prometheus metrics for all of it.
//!
//! Facts and sources: `reference/github.md` in the shared notes.

pub mod annotations;
mod auth;
pub mod check_run;
pub mod client;
pub mod error;
pub mod markdown;
pub mod metrics;
pub mod repo;
pub mod reporter;

pub use check_run::{CHECK_RUN_NAME, CheckRunContent, CommitSha, Conclusion, InvalidReport};
pub use client::{DEFAULT_REQUEST_TIMEOUT, GitHubAppConfig, GitHubClient};
pub use error::GitHubError;
pub use metrics::GitHubMetrics;
pub use repo::{GitHubHost, NotOnGitHub, PipelineSource, RepoFullName, repo_from_pipeline};
pub use reporter::{GitHubReporter, PublishedCheckRun};
