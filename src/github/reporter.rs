//! Publishes a [`BuildReport`] as the `kitefix` check run, idempotently.
//!
//! One Buildkite build maps to one check run, keyed by `external_id` = the build id
//! (GitHub docs, "Using the REST API to interact with checks": `external_id` is "a
//! reference for the run on the integrator's system"). Processing a build again — a
//! redelivered webhook, a retried queue message, a reconciliation pass — updates that run:
//!
//! 1. the id the caller stored from an earlier publish is PATCHed;
//! 2. without one, the commit's `kitefix` runs are listed and the one whose `external_id`
//!    matches is PATCHed (this also covers a create whose response was lost);
//! 3. only when neither finds a run is one created.
//!
//! Annotations past the first 50 go out in further PATCHes, which GitHub appends. Since
//! appended annotations cannot be removed, a re-publish only sends those the run does not
//! have yet (by its `annotations_count`), which also resumes an interrupted publish.

use std::sync::Arc;

use serde::Deserialize;

use super::body::CheckRunBody;
use super::client::{Endpoint, GitHubClient, Method};
use super::error::GitHubError;
use super::repo::RepoFullName;
use crate::render::{
    ANNOTATIONS_PER_REQUEST, Annotation, CHECK_RUN_NAME, CheckRunContent, Conclusion,
};

/// GitHub: `per_page` is at most 100 for `checks/list-for-ref`.
const PER_PAGE: usize = 100;
/// Pages of a commit's `kitefix` runs to search (one run per build of the commit, so more
/// than a thousand means something else is wrong).
const MAX_PAGES: usize = 10;

/// The check run a publish created or updated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedCheckRun {
    /// GitHub's id of the run: store it and pass it to the next publish of the build.
    pub id: u64,
    /// The run's page on GitHub.
    pub html_url: Option<String>,
    /// What the run concluded.
    pub conclusion: Conclusion,
}

/// Posts check runs through a [`GitHubClient`].
#[derive(Debug, Clone)]
pub struct GitHubReporter {
    client: Arc<GitHubClient>,
}

/// The fields of GitHub's `check-run` schema we read. octocrab's own model lacks
/// `external_id` (docs/github.md#octocrab-models), hence our own.
#[derive(Debug, Deserialize)]
struct CheckRunResponse {
    id: u64,
    #[serde(default)]
    html_url: Option<String>,
    #[serde(default)]
    external_id: Option<String>,
    #[serde(default)]
    output: Option<OutputResponse>,
}

#[derive(Debug, Deserialize)]
struct OutputResponse {
    #[serde(default)]
    annotations_count: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct CheckRunList {
    total_count: u64,
    check_runs: Vec<CheckRunResponse>,
}

/// A run found for this build, and how many annotations it already has, when known.
#[derive(Debug, Clone, Copy)]
struct ExistingRun {
    id: u64,
    annotations_count: Option<u64>,
}

impl GitHubReporter {
    /// A reporter posting through `client`.
    pub fn new(client: Arc<GitHubClient>) -> Self {
        Self { client }
    }

    /// Creates or updates the build's check run on `repo`; see the module docs for how it
    /// stays one run per build. `content` is the run as rendered once for the build (and
    /// stored); `known_check_run_id` is the id a previous publish returned.
    #[tracing::instrument(skip_all, fields(
        build_id = %content.external_id,
        repo = %repo,
        known_check_run_id = ?known_check_run_id,
    ))]
    pub async fn publish(
        &self,
        repo: &RepoFullName,
        content: &CheckRunContent,
        known_check_run_id: Option<u64>,
    ) -> Result<PublishedCheckRun, GitHubError> {
        let run = match known_check_run_id {
            Some(id) => {
                let known = ExistingRun { id, annotations_count: None };
                match self.update(repo, content, known).await {
                    Err(GitHubError::NotFound { .. }) => {
                        // A stale id (the repository moved, or the store is from another
                        // GitHub): fall back to searching rather than failing forever.
                        tracing::warn!(
                            check_run_id = id,
                            "stored check run not found; looking it up"
                        );
                        self.find_or_create(repo, content).await?
                    }
                    other => other?,
                }
            }
            None => self.find_or_create(repo, content).await?,
        };
        self.client.metrics().check_runs.with_label_values(&[content.conclusion.as_str()]).inc();
        tracing::info!(check_run_id = run.id, conclusion = %content.conclusion, "check run published");
        Ok(PublishedCheckRun { id: run.id, html_url: run.html_url, conclusion: content.conclusion })
    }

    async fn find_or_create(
        &self,
        repo: &RepoFullName,
        content: &CheckRunContent,
    ) -> Result<CheckRunResponse, GitHubError> {
        match self.find(repo, content).await? {
            Some(existing) => self.update(repo, content, existing).await,
            None => self.create(repo, content).await,
        }
    }

    /// This build's run on the commit, if one exists (`checks/list-for-ref`, filtered by
    /// name and our App, `filter=all` so older runs of the name are included).
    #[tracing::instrument(skip_all)]
    async fn find(
        &self,
        repo: &RepoFullName,
        content: &CheckRunContent,
    ) -> Result<Option<ExistingRun>, GitHubError> {
        let mut found: Option<ExistingRun> = None;
        let mut seen = 0u64;
        for page in 1..=MAX_PAGES {
            let route = format!(
                "/repos/{}/{}/commits/{}/check-runs?check_name={CHECK_RUN_NAME}&filter=all&app_id={}&per_page={PER_PAGE}&page={page}",
                repo.owner(),
                repo.name(),
                content.head_sha,
                self.client.app_id(),
            );
            let list: CheckRunList = self
                .client
                .call(repo, Endpoint::ListCheckRunsForRef, Method::Get, &route, None::<&()>)
                .await?;
            seen += list.check_runs.len() as u64;
            let last_page = list.check_runs.len() < PER_PAGE || seen >= list.total_count;
            for run in list.check_runs {
                if run.external_id.as_deref() == Some(content.external_id.as_str())
                    // Two runs for one build (a race between workers) resolve to the older.
                    && found.is_none_or(|f| run.id < f.id)
                {
                    let annotations_count = run.output.and_then(|o| o.annotations_count);
                    found = Some(ExistingRun { id: run.id, annotations_count });
                }
            }
            if last_page {
                break;
            }
        }
        tracing::debug!(found = ?found.map(|f| f.id), "looked up the build's check run");
        Ok(found)
    }

    /// `checks/create` with the first batch of annotations, then the rest appended.
    #[tracing::instrument(skip_all)]
    async fn create(
        &self,
        repo: &RepoFullName,
        content: &CheckRunContent,
    ) -> Result<CheckRunResponse, GitHubError> {
        let first = batch(&content.annotations, 0);
        let route = format!("/repos/{}/{}/check-runs", repo.owner(), repo.name());
        let run: CheckRunResponse = self
            .client
            .call(
                repo,
                Endpoint::CreateCheckRun,
                Method::Post,
                &route,
                Some(&CheckRunBody::create(content, first)),
            )
            .await?;
        self.append(repo, content, run.id, first.len()).await?;
        Ok(run)
    }

    /// `checks/update` of an existing run with the whole state, then any annotations it
    /// lacks appended.
    #[tracing::instrument(skip_all, fields(check_run_id = existing.id))]
    async fn update(
        &self,
        repo: &RepoFullName,
        content: &CheckRunContent,
        existing: ExistingRun,
    ) -> Result<CheckRunResponse, GitHubError> {
        // Without a count (a stored id), send no annotations with the update and read the
        // count from its answer instead.
        let start = existing.annotations_count.map_or(0, |n| clamp(n, content.annotations.len()));
        let first = match existing.annotations_count {
            Some(_) => batch(&content.annotations, start),
            None => &[][..],
        };
        let run: CheckRunResponse = self.patch(repo, content, existing.id, first).await?;
        let posted = match existing.annotations_count {
            Some(_) => start + first.len(),
            None => clamp(
                run.output.as_ref().and_then(|o| o.annotations_count).unwrap_or(0),
                content.annotations.len(),
            ),
        };
        self.append(repo, content, existing.id, posted).await?;
        Ok(run)
    }

    /// Sends `content.annotations[posted..]` in further updates, 50 per request.
    async fn append(
        &self,
        repo: &RepoFullName,
        content: &CheckRunContent,
        id: u64,
        posted: usize,
    ) -> Result<(), GitHubError> {
        let mut posted = posted;
        while posted < content.annotations.len() {
            let next = batch(&content.annotations, posted);
            let _: CheckRunResponse = self.patch(repo, content, id, next).await?;
            posted += next.len();
        }
        Ok(())
    }

    async fn patch(
        &self,
        repo: &RepoFullName,
        content: &CheckRunContent,
        id: u64,
        annotations: &[Annotation],
    ) -> Result<CheckRunResponse, GitHubError> {
        let route = format!("/repos/{}/{}/check-runs/{id}", repo.owner(), repo.name());
        self.client
            .call(
                repo,
                Endpoint::UpdateCheckRun,
                Method::Patch,
                &route,
                Some(&CheckRunBody::update(content, annotations)),
            )
            .await
    }
}

/// Up to 50 annotations starting at `from`.
fn batch(annotations: &[Annotation], from: usize) -> &[Annotation] {
    let from = from.min(annotations.len());
    &annotations[from..(from + ANNOTATIONS_PER_REQUEST).min(annotations.len())]
}

fn clamp(count: u64, len: usize) -> usize {
    usize::try_from(count).map_or(len, |n| n.min(len))
}
