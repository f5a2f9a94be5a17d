//! The build kitefix works on: a failed build that finished, as the receiver verified it
//! and the queue carries it to a worker.
//!
//! Two edges make one, each from what it parsed: the webhook route (`webhook::event`,
//! from a `build.finished` payload) and the reconciler (`buildkite::Build::finished_event`,
//! from the REST API when a webhook never arrived). Both write `finished_at` the same way,
//! so a build found either way has the same dedupe key and is analysed once.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{BuildId, BuildNumber, CommitSha, OrgSlug, PipelineSlug};

/// A failed build that finished: the only event kitefix queues.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildFinished {
    pub org: OrgSlug,
    pub pipeline: PipelineSlug,
    pub build_id: BuildId,
    pub build_number: BuildNumber,
    /// `build.finished_at` exactly as sent; part of the dedupe key.
    pub finished_at: String,
    /// The commit the build ran, checked to be a full SHA before anything is queued.
    pub commit: CommitSha,
    pub branch: String,
    pub pull_request: Option<u64>,
    /// Where the pipeline's code lives, as Buildkite describes it.
    #[serde(flatten)]
    pub source: PipelineSource,
}

/// A pipeline's repository as Buildkite describes it: `pipeline.provider` and
/// `pipeline.repository` (Buildkite docs, "Pipelines API":
/// <https://buildkite.com/docs/apis/rest-api/pipelines>). Which forge that is, and which
/// repository, is for the reporter to decide (`github::repo_from_pipeline`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PipelineSource {
    /// `pipeline.provider.id` (`github`, `github_enterprise`, `gitlab`, …).
    pub provider: Option<String>,
    /// `pipeline.provider.settings.repository` (`owner/repo`), when the provider says.
    pub provider_repository: Option<String>,
    /// `pipeline.repository`, the git URL.
    pub repository_url: Option<String>,
}

impl BuildFinished {
    /// A build finishes again after a job retry, with a new `finished_at`
    /// (<https://buildkite.com/docs/apis/webhooks/pipelines>, `build.finished`), so the
    /// key holds both.
    pub fn dedupe_key(&self) -> DedupeKey {
        DedupeKey(format!("{}/{}/{}", self.org, self.build_id, self.finished_at))
    }

    /// The build's page on buildkite.com, rebuilt from the parsed ids so a payload
    /// cannot plant a link.
    pub(crate) fn web_url(&self) -> String {
        format!("https://buildkite.com/{}/{}/builds/{}", self.org, self.pipeline, self.build_number)
    }
}

/// A build as Buildkite's single-build endpoints address it:
/// `/v2/organizations/{org}/pipelines/{pipeline}/builds/{number}`
/// (<https://buildkite.com/docs/apis/rest-api/builds#get-a-build>).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildPath {
    pub org: OrgSlug,
    pub pipeline: PipelineSlug,
    pub number: BuildNumber,
}

impl BuildFinished {
    /// Where Buildkite's API serves this build.
    pub fn path(&self) -> BuildPath {
        BuildPath {
            org: self.org.clone(),
            pipeline: self.pipeline.clone(),
            number: self.build_number,
        }
    }
}

/// A pull request number as Buildkite sends it: a string in webhooks and the REST API
/// (`build.pull_request.id`), a number in some older payloads. `false`, `null` or
/// anything else means the build is not for a pull request.
pub fn pull_request_number(id: &serde_json::Value) -> Option<u64> {
    match id {
        serde_json::Value::String(s) => s.parse().ok(),
        serde_json::Value::Number(n) => n.as_u64(),
        _ => None,
    }
}

/// `(org, build id, finished_at)`: one delivery of one finished build.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DedupeKey(String);

impl DedupeKey {
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DedupeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
