//! What the worker learns about one failed build: the input of every reporter (GitHub
//! check run, dry-run store, admin API). Serialisable because the store keeps it as JSON.
//!
//! Everything in here has already been redacted: nothing in a `BuildReport` may carry a
//! secret, since it is stored and posted as-is.

use serde::{Deserialize, Serialize};

use super::{BuildId, BuildNumber, CommitSha, JobId, OrgSlug, PipelineSlug, RepoFullName};
use crate::classify::Analysis;

/// One analysed build, ready to be reported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BuildReport {
    pub build: BuildRef,
    /// Failed jobs, one entry per distinct failure. Jobs with an identical failure (same
    /// normalised key line) are folded into one entry's `also_failed`.
    pub jobs: Vec<JobReport>,
    /// Jobs that failed but whose retry passed: reported as flaky, not as failures.
    pub flaky: Vec<JobRef>,
}

/// The build as Buildkite describes it; ids come from the verified webhook and the API,
/// already checked, so a reporter builds paths and links from them as they are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildRef {
    pub org: OrgSlug,
    pub pipeline: PipelineSlug,
    pub number: BuildNumber,
    /// Buildkite's build UUID (the check run's `external_id`).
    pub id: BuildId,
    /// Link to the build page on buildkite.com.
    pub web_url: String,
    /// Head SHA the check run is posted on.
    pub commit: CommitSha,
    pub branch: String,
    /// Pull request number, when the build is for one.
    pub pull_request: Option<u64>,
    /// `owner/repo` on GitHub, when the pipeline builds a GitHub repository.
    pub repository: Option<RepoFullName>,
}

/// A job, by id, name and link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRef {
    pub id: JobId,
    pub name: String,
    pub web_url: Option<String>,
}

/// One distinct failure: the job it was analysed on and what the classifier said.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobReport {
    pub job: JobRef,
    /// Buildkite's job state (`failed`, `timed_out`, …).
    pub state: String,
    pub exit_status: Option<i32>,
    pub signal_reason: Option<String>,
    /// The Buildkite log section (`--- :rust: Test`) the key line sits in, if any.
    pub failing_step: Option<String>,
    /// The agent's checkout directory (`BUILDKITE_BUILD_CHECKOUT_PATH`), used to turn the
    /// absolute paths compilers print into repository-relative ones.
    pub checkout_path: Option<String>,
    /// Bytes of log read (the whole log unless it was unavailable).
    pub log_bytes: u64,
    /// Why no log was analysed, when none was (deleted, expired, not permitted).
    pub log_unavailable: Option<String>,
    pub analysis: Analysis,
    /// Other jobs of the build that failed the same way (same normalised key line).
    pub also_failed: Vec<JobRef>,
}

impl BuildReport {
    /// True when nothing in the build points at the pull request's code: every failure
    /// is infrastructure (or there are only flaky jobs). The check run is then `neutral`.
    pub(crate) fn only_infrastructure(&self) -> bool {
        self.jobs.iter().all(|j| j.analysis.category.is_infrastructure())
    }
}
