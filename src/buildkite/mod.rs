//! Buildkite: the REST client kitefix's worker uses to fetch a failed build's jobs, logs
//! and env, its models, and the choice of which jobs to analyse.
//!
//! Wiring: build one [`BuildkiteClient`] from `buildkite.api_url` with
//! [`BuildkiteClient::with_metrics`]; per queued build call [`BuildkiteClient::get_build`],
//! pick jobs with [`select`], and for each failed job fetch [`BuildkiteClient::job_env`]
//! (to build the redactor) and [`BuildkiteClient::job_log`] (to stream). Errors say
//! whether to retry ([`BuildkiteError::is_transient`], [`BuildkiteError::retry_after`]).

mod client;
mod error;
mod log_stream;
mod metrics;
pub mod models;
mod pagination;
mod rate_limit;
pub(crate) mod selection;

pub use client::{BuildkiteClient, ClientOptions};
pub use error::{BuildkiteError, Endpoint, RateLimitScope, TimeoutKind};
pub use log_stream::{JobLog, LogStream, LogUnavailable};
pub use metrics::BuildkiteMetrics;
pub use models::{AccessToken, Build, Job, JobEnv, JobKind, JobState, Organization, Pipeline};

pub use selection::{FailedJob, FailureReason, FlakyJob, Selection, select};
