//! Serde models of the Buildkite REST answers kitefix reads (docs/buildkite.md#rest-api on).
//!
//! Tolerant by design: unknown fields are ignored, almost every field may be missing or
//! `null`, and states are open enums that keep values this code has never seen. Ids that
//! later go into API paths are parsed into the checked `crate::domain` types.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::{Deserialize, Deserializer};

use crate::domain::{
    BuildFinished, BuildId, BuildNumber, CommitSha, JobId, OrgSlug, PipelineSlug, PipelineSource,
};

/// Reads a field that may be `null` as its type's default (`serde(default)` only covers
/// a missing field).
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Option::unwrap_or_default)
}

/// Declares a string enum that keeps unknown values in `Other`, so a new state on
/// Buildkite's side never fails a whole build's decoding.
macro_rules! open_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
        #[serde(from = "String")]
        pub enum $name {
            $($(#[$vmeta])* $variant,)*
            /// A value this version of kitefix does not know.
            Other(String),
        }

        impl $name {
            /// The value as Buildkite spells it.
            pub(crate) fn as_str(&self) -> &str {
                match self {
                    $(Self::$variant => $text,)*
                    Self::Other(other) => other,
                }
            }
        }

        impl From<String> for $name {
            fn from(value: String) -> Self {
                match value.as_str() {
                    $($text => Self::$variant,)*
                    _ => Self::Other(value),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

open_enum!(
    /// A build's state (REST names, docs/buildkite.md#build-states; `failing`/`finished` from other
    /// channels are kept too).
    BuildState {
        /// Waiting for an agent or a dependency.
        Scheduled = "scheduled",
        /// Jobs are running.
        Running = "running",
        /// Every job passed.
        Passed = "passed",
        /// At least one job failed.
        Failed = "failed",
        /// Waiting on a block step.
        Blocked = "blocked",
        /// Canceled by a user or the API.
        Canceled = "canceled",
        /// Being canceled.
        Canceling = "canceling",
        /// Skipped (e.g. a newer build superseded it).
        Skipped = "skipped",
        /// Never run.
        NotRun = "not_run",
        /// Waiting on a previous step.
        Waiting = "waiting",
        /// A wait step failed.
        WaitingFailed = "waiting_failed",
        /// Still running, with a job already failed.
        Failing = "failing",
        /// Finished (EventBridge/GraphQL spelling).
        Finished = "finished",
    }
);

open_enum!(
    /// A job's state (docs/buildkite.md#job-states). `passed`/`failed` are REST aliases of the
    /// internal `finished`, chosen by exit status.
    JobState {
        /// Not yet runnable.
        Pending = "pending",
        /// Waiting on a previous step.
        Waiting = "waiting",
        /// A wait step before it failed.
        WaitingFailed = "waiting_failed",
        /// A block step waiting for a person.
        Blocked = "blocked",
        /// A block step that failed.
        BlockedFailed = "blocked_failed",
        /// A block step that was unblocked.
        Unblocked = "unblocked",
        /// A block step whose unblock failed.
        UnblockedFailed = "unblocked_failed",
        /// Held back by a concurrency limit.
        Limiting = "limiting",
        /// Held back by a concurrency limit.
        Limited = "limited",
        /// Waiting for an agent.
        Scheduled = "scheduled",
        /// Given to an agent.
        Assigned = "assigned",
        /// Accepted by an agent.
        Accepted = "accepted",
        /// Running on an agent.
        Running = "running",
        /// Finished with exit status 0.
        Passed = "passed",
        /// Finished with a non-zero exit status.
        Failed = "failed",
        /// Killed by the step's time limit.
        TimedOut = "timed_out",
        /// Being killed by the step's time limit.
        TimingOut = "timing_out",
        /// Canceled.
        Canceled = "canceled",
        /// Being canceled.
        Canceling = "canceling",
        /// Skipped.
        Skipped = "skipped",
        /// Could not run (conditional failed, branch mismatch…): see `broken_reason`.
        Broken = "broken",
        /// No agent took it before its scheduling deadline.
        Expired = "expired",
        /// Finished (GraphQL/EventBridge spelling; REST says passed/failed).
        Finished = "finished",
    }
);

open_enum!(
    /// What kind of step a job belongs to.
    JobKind {
        /// Runs a command on an agent: the only kind with a log worth analysing.
        Script = "script",
        /// A `wait` step.
        Waiter = "waiter",
        /// A `block`/`input` step.
        Manual = "manual",
        /// Triggers another pipeline's build.
        Trigger = "trigger",
    }
);

/// A build with its jobs, as `GET /v2/organizations/{org}/pipelines/{p}/builds/{n}`
/// returns it.
#[derive(Debug, Clone, Deserialize)]
pub struct Build {
    /// The build's UUID.
    pub id: BuildId,
    /// The number the single-build endpoints take.
    pub number: BuildNumber,
    /// The build's state.
    pub state: BuildState,
    /// Waiting on a block step (`state` then keeps its previous value).
    #[serde(default, deserialize_with = "null_as_default")]
    pub blocked: bool,
    /// The build's page on buildkite.com (a link for people, never requested).
    #[serde(default)]
    pub web_url: Option<String>,
    /// The commit SHA (can be `HEAD` for API-created builds until resolved).
    #[serde(default)]
    pub commit: Option<String>,
    /// The branch.
    #[serde(default)]
    pub branch: Option<String>,
    /// Commit or custom message.
    #[serde(default)]
    pub message: Option<String>,
    /// `webhook`, `api`, `ui`, `trigger_job`, `schedule`.
    #[serde(default)]
    pub source: Option<String>,
    /// Set when the build is for a pull request.
    #[serde(default)]
    pub pull_request: Option<PullRequest>,
    /// When the build was created.
    #[serde(default)]
    pub created_at: Option<DateTime<Utc>>,
    /// When the first job started.
    #[serde(default)]
    pub started_at: Option<DateTime<Utc>>,
    /// When the build finished; a build can finish twice after job retries.
    #[serde(default)]
    pub finished_at: Option<DateTime<Utc>>,
    /// All jobs, including retried attempts when asked with `include_retried_jobs=true`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub jobs: Vec<Job>,
    /// The pipeline (omitted with `exclude_pipeline=true`).
    #[serde(default)]
    pub pipeline: Option<Pipeline>,
}

impl Build {
    /// The event a `build.finished` webhook would have carried for this build, for the
    /// reconciler; `None` for a build that has not finished or is waiting on a block step.
    /// `finished_at` is written the way Buildkite's webhooks write it (milliseconds, `Z`),
    /// so the dedupe key matches a webhook delivery of the same build. A commit that is
    /// not a full SHA is refused here as the webhook route refuses it.
    pub fn finished_event(&self, org: &OrgSlug) -> Option<BuildFinished> {
        if self.blocked {
            return None;
        }
        let pipeline = self.pipeline.as_ref()?;
        let finished_at = self.finished_at?.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        Some(BuildFinished {
            org: org.clone(),
            pipeline: pipeline.slug.clone(),
            build_id: self.id.clone(),
            build_number: self.number,
            finished_at,
            commit: CommitSha::parse(self.commit.as_deref()?).ok()?,
            branch: self.branch.clone().unwrap_or_default(),
            pull_request: self
                .pull_request
                .as_ref()
                .and_then(|pr| pr.id.as_deref())
                .and_then(|id| id.parse().ok()),
            source: pipeline.source(),
        })
    }
}

impl Pipeline {
    /// Where the pipeline's code lives, as the reporters read it.
    pub fn source(&self) -> PipelineSource {
        let provider = self.provider.as_ref();
        PipelineSource {
            provider: provider.and_then(|p| p.id.clone()),
            provider_repository: provider
                .and_then(|p| p.settings.as_ref())
                .and_then(|s| s.repository.clone()),
            repository_url: self.repository.clone(),
        }
    }
}

/// The pull request a build is for.
#[derive(Debug, Clone, Deserialize)]
pub struct PullRequest {
    /// The PR number, as a string.
    #[serde(default)]
    pub id: Option<String>,
    /// The base branch.
    #[serde(default)]
    pub base: Option<String>,
    /// The repository URL of the PR (the fork's, for a fork).
    #[serde(default)]
    pub repository: Option<String>,
}

/// One job of a build (docs/buildkite.md#job-states).
#[derive(Debug, Clone, Deserialize)]
pub struct Job {
    /// The job's UUID.
    pub id: JobId,
    /// Script, waiter, manual or trigger.
    #[serde(rename = "type")]
    pub kind: JobKind,
    /// Name of a script or trigger job.
    #[serde(default)]
    pub name: Option<String>,
    /// Label of a block job (and of jobs in some other channels).
    #[serde(default)]
    pub label: Option<String>,
    /// The step's `key`.
    #[serde(default)]
    pub step_key: Option<String>,
    /// The job's state.
    pub state: JobState,
    /// Exit status; `null` for jobs that never ran and for waiters.
    #[serde(default)]
    pub exit_status: Option<i64>,
    /// A non-zero exit the step allowed (`soft_fail`): not a failure to report.
    #[serde(default, deserialize_with = "null_as_default")]
    pub soft_failed: bool,
    /// The signal that ended the process, e.g. `SIGKILL`.
    #[serde(default)]
    pub signal: Option<String>,
    /// Why: `agent_stop`, `cancel`, `process_run_error`, `agent_refused`…
    #[serde(default)]
    pub signal_reason: Option<String>,
    /// Why a `broken` job could not run.
    #[serde(default)]
    pub broken_reason: Option<String>,
    /// This attempt was retried.
    #[serde(default, deserialize_with = "null_as_default")]
    pub retried: bool,
    /// The attempt that replaced this one.
    #[serde(default)]
    pub retried_in_job_id: Option<JobId>,
    /// How many times this step was retried.
    #[serde(default)]
    pub retries_count: Option<u32>,
    /// The attempt this one retries, and whether a person or a rule asked for it.
    #[serde(default)]
    pub retry_source: Option<RetrySource>,
    /// The job's anchor on the build page.
    #[serde(default)]
    pub web_url: Option<String>,
    /// The step's command.
    #[serde(default)]
    pub command: Option<String>,
    /// Index of this job in a parallel step.
    #[serde(default)]
    pub parallel_group_index: Option<u32>,
    /// Size of the parallel step.
    #[serde(default)]
    pub parallel_group_total: Option<u32>,
    /// The agent that ran the job; `null` if none was assigned.
    #[serde(default)]
    pub agent: Option<Agent>,
    /// When the job was created.
    #[serde(default)]
    pub created_at: Option<DateTime<Utc>>,
    /// When the agent started it.
    #[serde(default)]
    pub started_at: Option<DateTime<Utc>>,
    /// When it finished.
    #[serde(default)]
    pub finished_at: Option<DateTime<Utc>>,
}

impl Job {
    /// What to call the job in a report: its name, else its label, else its step key.
    pub fn display_name(&self) -> &str {
        [&self.name, &self.label, &self.step_key]
            .into_iter()
            .flatten()
            .map(String::as_str)
            .find(|name| !name.trim().is_empty())
            .unwrap_or("(unnamed job)")
    }
}

/// The attempt a retried job replaces.
#[derive(Debug, Clone, Deserialize)]
pub struct RetrySource {
    /// The earlier attempt.
    #[serde(default)]
    pub job_id: Option<JobId>,
    /// `manual` or `automatic`.
    #[serde(default)]
    pub retry_type: Option<String>,
}

/// The agent a job ran on.
#[derive(Debug, Clone, Deserialize)]
pub struct Agent {
    /// The agent's UUID.
    #[serde(default)]
    pub id: Option<String>,
    /// The agent's name.
    #[serde(default)]
    pub name: Option<String>,
    /// The host it ran on.
    #[serde(default)]
    pub hostname: Option<String>,
}

/// A pipeline (docs/buildkite.md#pipelines).
#[derive(Debug, Clone, Deserialize)]
pub struct Pipeline {
    /// The pipeline's UUID.
    #[serde(default)]
    pub id: Option<String>,
    /// The slug used in API paths.
    pub slug: PipelineSlug,
    /// Display name.
    #[serde(default)]
    pub name: Option<String>,
    /// The git URL, e.g. `git@github.com:org/repo.git`.
    #[serde(default)]
    pub repository: Option<String>,
    /// The SCM provider and its settings.
    #[serde(default)]
    pub provider: Option<Provider>,
    /// The default branch.
    #[serde(default)]
    pub default_branch: Option<String>,
}

/// A pipeline's SCM provider.
#[derive(Debug, Clone, Deserialize)]
pub struct Provider {
    /// `github`, `github_enterprise`, `gitlab`, `bitbucket`…
    #[serde(default)]
    pub id: Option<String>,
    /// Provider settings.
    #[serde(default)]
    pub settings: Option<ProviderSettings>,
}

/// The part of a provider's settings kitefix reads.
#[derive(Debug, Clone, Deserialize)]
pub struct ProviderSettings {
    /// `owner/repo` for GitHub.
    #[serde(default)]
    pub repository: Option<String>,
}

/// An organization, as `GET /v2/organizations/{org}` returns it.
#[derive(Debug, Clone, Deserialize)]
pub struct Organization {
    /// The organization's UUID.
    #[serde(default)]
    pub id: Option<String>,
    /// Its slug.
    pub slug: OrgSlug,
    /// Display name.
    #[serde(default)]
    pub name: Option<String>,
}

/// The token's own description, from `GET /v2/access-token` (needs no scope).
#[derive(Debug, Clone, Deserialize)]
pub struct AccessToken {
    /// The token's UUID (not the token).
    pub uuid: String,
    /// The scopes it was granted.
    #[serde(default, deserialize_with = "null_as_default")]
    pub scopes: Vec<String>,
    /// What its creator wrote about it.
    #[serde(default)]
    pub description: Option<String>,
    /// When it was created.
    #[serde(default)]
    pub created_at: Option<DateTime<Utc>>,
    /// When it stops working, if ever.
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
    /// The user it belongs to.
    #[serde(default)]
    pub user: Option<TokenUser>,
}

/// The scopes kitefix needs: read builds (and their jobs), logs and job env
/// (docs/buildkite.md#token-scopes).
pub const REQUIRED_SCOPES: &[&str] = &["read_builds", "read_build_logs", "read_job_env"];

impl AccessToken {
    /// The scopes of `required` this token lacks.
    pub fn missing_scopes<'a>(&self, required: &[&'a str]) -> Vec<&'a str> {
        required.iter().copied().filter(|scope| !self.scopes.iter().any(|s| s == scope)).collect()
    }
}

/// The user a token belongs to.
#[derive(Debug, Clone, Deserialize)]
pub struct TokenUser {
    /// Name.
    #[serde(default)]
    pub name: Option<String>,
    /// Email.
    #[serde(default)]
    pub email: Option<String>,
}

/// A job's environment, from `GET …/jobs/{job}/env` (`{"env": {NAME: value}}`). The
/// values are unredacted secrets (docs/buildkite.md#job-environment): they only feed the
/// redactor, are never stored, and `Debug` shows names only.
#[derive(Default, Deserialize)]
pub struct JobEnv {
    #[serde(default, deserialize_with = "null_as_default")]
    env: BTreeMap<String, Option<SecretString>>,
}

impl JobEnv {
    /// The variables, by name, skipping `null` values.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &SecretString)> {
        self.env.iter().filter_map(|(name, value)| Some((name.as_str(), value.as_ref()?)))
    }

    /// The number of variables.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.env.len()
    }
}

impl fmt::Debug for JobEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobEnv").field("names", &self.env.keys().collect::<Vec<_>>()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    const JOB: &str = "0190a6f5-3c1d-4c6c-9d6e-1f6f0d1c2a01";

    #[test]
    fn build_decodes_with_unknown_and_null_fields() {
        let json = serde_json::json!({
            "id": "f0d1a5e6-1c2b-4e3a-9d8f-0123456789ab",
            "number": 42,
            "state": "failed",
            "blocked": null,
            "pull_request": null,
            "finished_at": "2026-08-21T10:00:00.123Z",
            "brand_new_field": {"x": 1},
            "jobs": [
                {"id": JOB, "type": "script", "name": ":rust: test", "state": "failed",
                 "exit_status": 101, "soft_failed": null, "retried": false, "agent": null,
                 "retry_source": {"job_id": null, "retry_type": "automatic"}},
                {"id": "0190a6f5-3c1d-4c6c-9d6e-1f6f0d1c2a02", "type": "waiter", "state": "passed"},
                {"id": "0190a6f5-3c1d-4c6c-9d6e-1f6f0d1c2a03", "type": "manual", "label": "Deploy?",
                 "state": "blocked_later_state"}
            ],
            "pipeline": {"slug": "app", "repository": "git@github.com:acme/app.git",
                         "provider": {"id": "github", "settings": {"repository": "acme/app"}}}
        });
        let build: Build = serde_json::from_value(json).expect("decodes");
        assert_eq!(build.number.get(), 42);
        assert_eq!(build.state, BuildState::Failed);
        assert!(!build.blocked);
        assert_eq!(build.jobs.len(), 3);
        assert_eq!(build.jobs[0].exit_status, Some(101));
        assert!(!build.jobs[0].soft_failed);
        assert_eq!(build.jobs[1].kind, JobKind::Waiter);
        assert_eq!(build.jobs[2].display_name(), "Deploy?");
        assert_eq!(build.jobs[2].state, JobState::Other("blocked_later_state".into()));
        assert_eq!(build.jobs[2].state.as_str(), "blocked_later_state");
        let pipeline = build.pipeline.expect("pipeline");
        assert_eq!(github_repository(&pipeline).as_deref(), Some("acme/app"));
    }

    /// The repository the GitHub reporter finds for this pipeline.
    fn github_repository(pipeline: &Pipeline) -> Option<String> {
        let host = crate::github::GitHubHost::github_com();
        crate::github::repo_from_pipeline(&pipeline.source(), &host).ok().map(|r| r.to_string())
    }

    #[test]
    fn job_with_bad_id_is_refused() {
        let json = serde_json::json!({"id": "../../admin", "type": "script", "state": "failed"});
        assert!(serde_json::from_value::<Job>(json).is_err());
    }

    #[test]
    fn non_github_provider_names_no_repository() {
        let json = serde_json::json!({"slug": "app",
            "provider": {"id": "gitlab", "settings": {"repository": "acme/app"}}});
        let pipeline: Pipeline = serde_json::from_value(json).expect("decodes");
        assert_eq!(github_repository(&pipeline), None);
    }

    #[test]
    fn access_token_reports_missing_scopes() {
        let json = serde_json::json!({"uuid": "b63254c0", "scopes": ["read_builds", "read_build_logs"],
            "description": "kitefix", "expires_at": null, "user": {"name": "CI", "email": "ci@x"}});
        let token: AccessToken = serde_json::from_value(json).expect("decodes");
        assert_eq!(token.missing_scopes(REQUIRED_SCOPES), ["read_job_env"]);
    }

    #[test]
    fn job_env_keeps_values_secret() {
        let env: JobEnv = serde_json::from_str(
            r#"{"env": {"DB_PASSWORD": "hunter2hunter2", "EMPTY": null, "CI": "true"}}"#,
        )
        .expect("decodes");
        assert_eq!(env.len(), 3);
        let values: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k, v.expose_secret())).collect();
        assert_eq!(values, [("CI", "true"), ("DB_PASSWORD", "hunter2hunter2")]);
        let shown = format!("{env:?}");
        assert!(shown.contains("DB_PASSWORD") && !shown.contains("hunter2"), "{shown}");
    }
}
