//! GitHub: the `kitefix` check run for each analysed build, posted as a GitHub App.
//!
//! This module is transport only: what a check run says is rendered once per build by
//! [`crate::render`], stored, and handed to [`GitHubReporter::publish`] as it is.
//!
//! - [`repo`]: which repository a Buildkite pipeline builds ([`RepoFullName`]).
//! - `body`: the request bodies of `checks/create` and `checks/update`.
//! - [`client`]: App authentication (JWT → installation → token) and one classified,
//!   counted request at a time, with octocrab's automatic retry off.
//! - [`reporter`]: [`GitHubReporter::publish`], creating or updating the build's run.
//! - [`error`]: [`GitHubError`] and how the queue should treat each kind.
//! - [`metrics`]: Prometheus metrics for all of it.
//!
//! Facts and sources: docs/github.md.

mod auth;
mod body;
pub(crate) mod client;
pub(crate) mod error;
pub(crate) mod metrics;
pub(crate) mod repo;
pub(crate) mod reporter;

pub use client::{DEFAULT_REQUEST_TIMEOUT, GitHubAppConfig, GitHubClient};
pub use error::GitHubError;
pub use metrics::GitHubMetrics;
pub use repo::{GitHubHost, NotOnGitHub, RepoFullName, repo_from_pipeline};
pub use reporter::{GitHubReporter, PublishedCheckRun};
