//! Domain types: parsed, checked values that the rest of kitefix can trust, and the build
//! and report that travel from the receiver through the queue to the reporters.
//!
//! Everything here is plain data: no I/O, no client, no store. The edges (`webhook`,
//! `buildkite`, `github`) parse into these types, the middle (`intake`, `queue`, `store`,
//! `worker`) passes them on.

mod build;
mod ids;
mod repo;
mod report;

pub use build::{BuildFinished, BuildPath, DedupeKey, PipelineSource, pull_request_number};
pub use ids::{
    BuildId, BuildNumber, CommitSha, IdError, IntegrationId, JobId, OrgSlug, PipelineSlug,
};
pub use repo::{RepoFullName, RepoNameError};
pub use report::{BuildRef, BuildReport, JobRef, JobReport};
