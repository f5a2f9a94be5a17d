//! The work for one failed build: Buildkite → classifier → report.
//!
//! 1. `token`: the organisation's Buildkite token (`TokenSource`).
//! 2. `repository`: which GitHub repository the pipeline builds; a pipeline that is not
//!    on GitHub is skipped with the reason recorded, before any API call.
//! 3. `fetch_build`: the build and its jobs (`build.finished` carries none), then
//!    `selection::select` picks the failed script jobs and the flaky ones.
//! 4. `analyse_job`, for a few jobs at a time: the job's env (only to redact with), the
//!    raw log streamed chunk by chunk into normaliser → redactor → classifier on a
//!    blocking thread, through a small bounded channel, so neither the whole log nor the
//!    async runtime is ever held up.
//! 5. `fold_identical`: jobs that failed the same way are reported once, listed together.
//! 6. `report`: the redacted report is stored, then posted as a check run (or, in
//!    dry-run, the check run that would be posted is stored).
//!
//! Every step is idempotent, because a crash before the outcome is recorded means the
//! same build is processed again: the check run is found again by its stored id or by
//! `external_id`, never created twice.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::mpsc;

use super::{Outcome, PipelineError, Processor};
use crate::buildkite::{BuildkiteClient, FailedJob, Job, JobLog, select};
use crate::classify::{Analysis, Classifier, JobMeta};
use crate::domain::{
    BuildFinished, BuildRef, BuildReport, CommitSha, JobRef, JobReport, RepoFullName,
};
use crate::github::{GitHubHost, GitHubReporter, repo_from_pipeline};
use crate::logs::redact::Redactor;
use crate::metrics::Metrics;
use crate::queue::QueueMessage;
use crate::render::CheckRunContent;
use crate::store::Store;
use crate::tokens::TokenSource;

/// Log chunks in flight between the HTTP stream and the classifier thread: with
/// Buildkite's chunk sizes this bounds the log bytes held per job to well under a MiB.
const CHUNKS_IN_FLIGHT: usize = 8;

/// Where check runs go.
pub(crate) enum Reporter {
    GitHub(GitHubReporter),
    /// No GitHub App configured: the check run is rendered and stored, not posted.
    DryRun,
}

/// The real pipeline; see the module docs.
pub struct Pipeline {
    pub buildkite: BuildkiteClient,
    pub tokens: Arc<dyn TokenSource>,
    pub classifier: Arc<Classifier>,
    pub reporter: Reporter,
    pub github_host: GitHubHost,
    pub store: Store,
    pub metrics: Metrics,
    /// Jobs of one build analysed at once (`worker.jobs_per_build`).
    pub jobs_per_build: usize,
}

/// How a build that ran through the pipeline ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Finished {
    /// Reported: posted, or in dry-run stored only.
    Reported { dry_run: bool },
    /// Nothing to report, and why.
    Skipped(String),
}

impl From<Finished> for Outcome {
    fn from(finished: Finished) -> Self {
        match finished {
            Finished::Reported { dry_run: false } => Outcome::Reported { note: None },
            Finished::Reported { dry_run: true } => Outcome::Reported {
                note: Some("dry-run: no GitHub App configured, nothing posted".into()),
            },
            Finished::Skipped(reason) => Outcome::Skipped { reason },
        }
    }
}

#[async_trait]
impl Processor for Pipeline {
    async fn process(&self, message: &QueueMessage) -> Outcome {
        self.run(message).await.map_or_else(Outcome::from, Outcome::from)
    }
}

impl Pipeline {
    async fn run(&self, message: &QueueMessage) -> Result<Finished, PipelineError> {
        let event = &message.event;
        let token = self.tokens.token_for(&event.org, message.integration_id.as_ref()).await?;
        let repository = match self.repository(event) {
            Ok(repo) => repo,
            Err(reason) => {
                tracing::info!(%reason, "pipeline is not on GitHub; skipping");
                return Ok(Finished::Skipped(reason));
            }
        };
        let build = self.fetch_build(&token, event).await?;
        let selection = select(&build);
        if selection.failed.is_empty() && selection.flaky.is_empty() {
            return Ok(Finished::Skipped(
                "no failed script job to analyse (soft failures, canceled or broken jobs only)"
                    .into(),
            ));
        }

        // The futures are made up front (not in a stream combinator's closure, whose
        // lifetimes async-trait cannot name) and run a few at a time.
        let analyses: Vec<_> =
            selection.failed.iter().map(|failed| self.analyse_job(&token, event, failed)).collect();
        let jobs: Vec<JobReport> =
            futures::stream::iter(analyses).buffered(self.jobs_per_build).try_collect().await?;
        let report = BuildReport {
            build: BuildRef {
                org: event.org.clone(),
                pipeline: event.pipeline.clone(),
                number: event.build_number,
                id: event.build_id.clone(),
                web_url: event.web_url(),
                // The API's answer once the agent resolved it; the webhook's otherwise.
                commit: build
                    .commit
                    .as_deref()
                    .and_then(|c| CommitSha::parse(c).ok())
                    .unwrap_or_else(|| event.commit.clone()),
                branch: event.branch.clone(),
                pull_request: event.pull_request,
                repository: Some(repository.clone()),
            },
            jobs: fold_identical(jobs),
            flaky: selection.flaky.iter().map(|f| job_ref(f.passed, event)).collect(),
        };
        self.report(message, &report, &repository).await
    }

    /// The GitHub repository for the build's pipeline, or why there is none.
    fn repository(&self, event: &BuildFinished) -> Result<RepoFullName, String> {
        repo_from_pipeline(&event.source, &self.github_host).map_err(|e| e.to_string())
    }

    #[tracing::instrument(name = "pipeline.fetch_build", skip_all)]
    async fn fetch_build(
        &self,
        token: &SecretString,
        event: &BuildFinished,
    ) -> Result<crate::buildkite::Build, PipelineError> {
        Ok(self.buildkite.get_build(token, &event.path()).await?)
    }

    #[tracing::instrument(name = "pipeline.analyse_job", skip_all, fields(job_id = %failed.job.id, job = failed.job.display_name()))]
    async fn analyse_job(
        &self,
        token: &SecretString,
        event: &BuildFinished,
        failed: &FailedJob<'_>,
    ) -> Result<JobReport, PipelineError> {
        let job = failed.job;
        let meta = JobMeta {
            exit_status: job.exit_status.and_then(|s| i32::try_from(s).ok()),
            signal_reason: job.signal_reason.clone(),
            state: Some(job.state.as_str().to_owned()),
        };
        let mut report = JobReport {
            job: job_ref(job, event),
            state: job.state.as_str().to_owned(),
            exit_status: meta.exit_status,
            signal_reason: job.signal_reason.clone(),
            failing_step: None,
            checkout_path: None,
            log_bytes: 0,
            log_unavailable: None,
            analysis: Classifier::session(&self.classifier, meta.clone()).finish(),
            also_failed: failed.earlier_attempts.iter().map(|j| job_ref(j, event)).collect(),
        };
        if !failed.reason.has_log() {
            report.log_unavailable =
                Some("the job expired before an agent ran it, so it has no log".into());
            self.count_job(&report.analysis);
            return Ok(report);
        }

        let (redactor, redaction_complete) =
            self.redactor_for(token, event, job, &mut report).await?;
        let log = self.buildkite.job_log(token, &event.path(), &job.id).await?;
        match log {
            JobLog::Unavailable(gone) => {
                report.log_unavailable = Some(format!(
                    "Buildkite has no log for this job ({}: {})",
                    gone.status, gone.message
                ));
            }
            JobLog::Available(stream) => {
                let (analysis, section, bytes) =
                    self.classify_stream(stream, meta, redactor).await?;
                report.analysis = analysis;
                report.failing_step = section;
                report.log_bytes = bytes;
                if !redaction_complete {
                    // Without the job's env, values that only it knows could be in the
                    // excerpt: fail closed and post none (docs/security.md#fail-closed).
                    report.analysis.excerpt = None;
                }
            }
        }
        self.count_job(&report.analysis);
        Ok(report)
    }

    /// The job's redactor: every env value, our own token, and secret-shaped strings.
    /// Returns whether it knows the env; a token without `read_job_env` gets patterns only.
    async fn redactor_for(
        &self,
        token: &SecretString,
        event: &BuildFinished,
        job: &Job,
        report: &mut JobReport,
    ) -> Result<(Redactor, bool), PipelineError> {
        let env = match self.buildkite.job_env(token, &event.path(), &job.id).await {
            Ok(env) => Some(env),
            Err(e) if !e.is_transient() => {
                tracing::warn!(error = %e, "no job env to redact with; the excerpt will be left out");
                None
            }
            Err(e) => return Err(e.into()),
        };
        let mut builder = Redactor::builder().secret(token);
        if let Some(env) = &env {
            builder = builder.env(env.iter());
            report.checkout_path = env
                .iter()
                .find(|(name, _)| *name == "BUILDKITE_BUILD_CHECKOUT_PATH")
                .map(|(_, v)| v.expose_secret().to_owned());
        }
        match builder.build() {
            Ok(redactor) => Ok((redactor, env.is_some())),
            Err(e) => {
                tracing::error!(error = %e, "redactor could not be built; the excerpt will be left out");
                Ok((
                    Redactor::builder()
                        .secret(token)
                        .build()
                        .unwrap_or_else(|_| Redactor::patterns_only()),
                    false,
                ))
            }
        }
    }

    /// Streams the log into the classifier on a blocking thread; returns the analysis,
    /// the step Buildkite opened on failure, and the bytes read.
    async fn classify_stream(
        &self,
        mut stream: crate::buildkite::LogStream,
        meta: JobMeta,
        redactor: Redactor,
    ) -> Result<(Analysis, Option<String>, u64), PipelineError> {
        let (chunks, mut incoming) = mpsc::channel::<Bytes>(CHUNKS_IN_FLIGHT);
        let classifier = self.classifier.clone();
        let classifying = tokio::task::spawn_blocking(move || {
            let mut log = crate::classify::LogClassifier::new(&classifier, meta)
                .with_transform(redactor.line_redactor().into_transform());
            while let Some(chunk) = incoming.blocking_recv() {
                log.push(&chunk);
            }
            let section = log.expanded_section().map(str::to_owned);
            (log.finish(), section)
        });
        let mut bytes = 0u64;
        let mut failure = None;
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(chunk) => {
                    bytes += chunk.len() as u64;
                    if chunks.send(chunk).await.is_err() {
                        break;
                    }
                }
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        drop(chunks);
        let (analysis, section) =
            classifying.await.map_err(|e| PipelineError::ClassifierPanicked(e.to_string()))?;
        match failure {
            Some(e) => Err(e.into()),
            None => Ok((analysis, section, bytes)),
        }
    }

    fn count_job(&self, analysis: &Analysis) {
        self.metrics.jobs_analysed.with_label_values(&[analysis.category.as_str()]).inc();
    }

    /// Renders the check run once, stores it with the report, then posts it (in dry-run,
    /// storing is all) and records the run's id for the next publish of this build.
    #[tracing::instrument(name = "pipeline.report", skip_all, fields(jobs = report.jobs.len()))]
    async fn report(
        &self,
        message: &QueueMessage,
        report: &BuildReport,
        repository: &RepoFullName,
    ) -> Result<Finished, PipelineError> {
        let key = &message.dedupe_key;
        let content = CheckRunContent::render(report);
        self.store.save_report(key, report, &content).await?;
        let Reporter::GitHub(github) = &self.reporter else {
            tracing::info!("dry-run: check run stored, not posted");
            return Ok(Finished::Reported { dry_run: true });
        };
        let known = self
            .store
            .known_check_run_id(&report.build.id)
            .await?
            .and_then(|id| u64::try_from(id).ok());
        let published = github.publish(repository, &content, known).await?;
        self.store
            .record_check_run(key, published.id as i64, published.html_url.as_deref())
            .await?;
        tracing::info!(check_run_id = published.id, "check run posted");
        Ok(Finished::Reported { dry_run: false })
    }
}

fn job_ref(job: &Job, event: &BuildFinished) -> JobRef {
    JobRef {
        id: job.id.clone(),
        name: job.display_name().to_owned(),
        // Rebuilt from ids like the build link, not copied from the answer.
        web_url: Some(format!("{}#{}", event.web_url(), job.id)),
    }
}

/// Folds jobs whose failures are the same (same rule and the same key line once
/// numbers, hex and paths are masked: LUCI Analysis' grouping idea) into the first one.
fn fold_identical(jobs: Vec<JobReport>) -> Vec<JobReport> {
    let mut folded: Vec<(Option<String>, JobReport)> = Vec::new();
    for job in jobs {
        let signature = failure_signature(&job);
        match folded.iter_mut().find(|(s, _)| signature.is_some() && *s == signature) {
            Some((_, first)) => {
                first.also_failed.push(job.job.clone());
                first.also_failed.extend(job.also_failed);
            }
            None => folded.push((signature, job)),
        }
    }
    folded.into_iter().map(|(_, job)| job).collect()
}

/// The rule and the masked key line, or `None` when there is nothing to compare (no log,
/// no key line): such jobs are never folded.
fn failure_signature(job: &JobReport) -> Option<String> {
    let analysis = &job.analysis;
    let excerpt = analysis.excerpt.as_ref()?;
    let key_line = analysis.key_line?;
    let line =
        excerpt.text.lines().nth(usize::try_from(key_line.checked_sub(excerpt.start)?).ok()?)?;
    Some(format!("{}\u{0}{}", analysis.rule, mask(line)))
}

/// Replaces what varies between otherwise identical failures (timings, ports,
/// addresses, hashes) with `#`: hex runs of 7+ characters and any run of digits.
fn mask(line: &str) -> String {
    static VARYING: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"(?i)\b(?:0x)?[0-9a-f]*[0-9][0-9a-f]*\b|[0-9]+").expect("valid regex")
    });
    VARYING.replace_all(line, "#").into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::{Category, Excerpt};
    use crate::domain::JobId;

    /// A job id that ends in `n`.
    fn job_id(n: &str) -> JobId {
        JobId::parse(&format!("0190c0de-0000-7000-8000-{n:0>12}")).unwrap()
    }

    fn job(id: &str, rule: &str, key_line_text: &str) -> JobReport {
        JobReport {
            job: JobRef { id: job_id(id), name: format!("job {id}"), web_url: None },
            state: "failed".into(),
            exit_status: Some(1),
            signal_reason: None,
            failing_step: None,
            checkout_path: None,
            log_bytes: 10,
            log_unavailable: None,
            analysis: Analysis {
                category: Category::Test,
                confidence: 0.9,
                rule: rule.into(),
                title: "t".into(),
                key_line: Some(12),
                excerpt: Some(Excerpt {
                    start: 10,
                    end: 13,
                    text: format!("a\nb\n{key_line_text}\nc"),
                }),
                failing_tests: vec![],
                locations: vec![],
                secondary: vec![],
            },
            also_failed: vec![],
        }
    }

    #[test]
    fn identical_failures_are_reported_once_with_the_others_listed() {
        let jobs = vec![
            job("1", "pytest.failed", "FAILED tests/test_a.py::test_x - took 1.23s on port 40123"),
            job("2", "rust.panic", "thread 'main' panicked"),
            job("3", "pytest.failed", "FAILED tests/test_a.py::test_x - took 9.87s on port 51000"),
        ];

        let folded = fold_identical(jobs);

        assert_eq!(folded.len(), 2);
        assert_eq!(folded[0].job.id, job_id("1"));
        assert_eq!(
            folded[0].also_failed.iter().map(|j| j.id.clone()).collect::<Vec<_>>(),
            [job_id("3")]
        );
        assert_eq!(folded[1].job.id, job_id("2"));
    }

    #[test]
    fn different_lines_or_no_key_line_are_not_folded() {
        let mut no_log = job("3", "none", "");
        no_log.analysis.excerpt = None;
        let mut no_log_too = no_log.clone();
        no_log_too.job.id = job_id("4");
        let jobs = vec![
            job("1", "pytest.failed", "FAILED test_x"),
            job("2", "pytest.failed", "FAILED test_y"),
            no_log,
            no_log_too,
        ];

        assert_eq!(fold_identical(jobs).len(), 4);
    }

    #[test]
    fn masking_hides_numbers_not_words() {
        assert_eq!(mask("took 1.23s at 0xdead0beef on port 40123"), "took #.#s at # on port #");
        assert_eq!(mask("sha a1b2c3d4e5 failed"), "sha # failed");
        assert_eq!(mask("test_x failed"), "test_x failed");
    }
}
