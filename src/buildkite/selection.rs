//! Which jobs of a finished build to analyse (a pure function of the [`Build`]).
//!
//! Rules, from docs/buildkite.md#which-jobs-failed:
//! - only `script` jobs have a command log worth analysing;
//! - a job fails hard when its state is `failed`, `timed_out` or `expired`, or it
//!   finished with a non-zero exit status, and it is not `soft_failed` (the step allowed
//!   that exit);
//! - `broken` jobs never ran (a step condition or branch filter removed them) and
//!   `canceled`/`skipped` jobs were stopped by someone: neither is a failure to explain;
//! - retries: each attempt is its own job, linked by `retried_in_job_id` (forwards) and
//!   `retry_source.job_id` (backwards). Only the latest attempt of a step decides: if it
//!   failed, it is analysed once (with the earlier attempts listed); if it passed after a
//!   failed attempt, the step is flaky and reported separately, not analysed.

use std::collections::HashMap;

use super::models::{Build, Job, JobKind, JobState};
use crate::domain::JobId;

/// Why a job counts as a hard failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailureReason {
    /// The command exited with this non-zero status.
    Exited(i64),
    /// The step's time limit killed it.
    TimedOut,
    /// No agent picked it up before its deadline: it never ran and has no log.
    Expired,
    /// Failed without a usable exit status (e.g. the agent was lost; see `signal_reason`).
    Failed,
}

impl FailureReason {
    /// Whether the job ran and so has a log to fetch.
    pub(crate) fn has_log(&self) -> bool {
        !matches!(self, Self::Expired)
    }
}

/// A step whose latest attempt failed hard: analyse `job`.
#[derive(Debug, Clone)]
pub struct FailedJob<'a> {
    /// The latest attempt, the one to analyse.
    pub job: &'a Job,
    /// Why it counts as failed.
    pub reason: FailureReason,
    /// Earlier attempts of the same step, oldest first.
    pub earlier_attempts: Vec<&'a Job>,
}

/// A step that failed and then passed on retry: flaky, reported but not analysed.
#[derive(Debug, Clone)]
pub struct FlakyJob<'a> {
    /// The attempt that passed.
    pub passed: &'a Job,
    /// The earlier attempts that failed hard, oldest first.
    pub failed_attempts: Vec<&'a Job>,
}

/// What to do with a build's jobs.
#[derive(Debug, Clone, Default)]
pub struct Selection<'a> {
    /// Steps to analyse, in the build's job order.
    pub failed: Vec<FailedJob<'a>>,
    /// Steps that passed only on retry.
    pub flaky: Vec<FlakyJob<'a>>,
}

/// Chooses the jobs to analyse and the flaky ones; see the module docs for the rules.
pub fn select(build: &Build) -> Selection<'_> {
    let by_id: HashMap<&JobId, &Job> = build.jobs.iter().map(|job| (&job.id, job)).collect();
    let previous = previous_attempts(build, &by_id);
    let mut selection = Selection::default();
    for job in build.jobs.iter().filter(|job| is_latest_attempt(job, &by_id)) {
        let earlier = attempt_chain(job, &previous, build.jobs.len());
        if let Some(reason) = hard_failure(job) {
            selection.failed.push(FailedJob { job, reason, earlier_attempts: earlier });
            continue;
        }
        let failed_attempts: Vec<&Job> =
            earlier.into_iter().filter(|attempt| hard_failure(attempt).is_some()).collect();
        if job.kind == JobKind::Script && passed(job) && !failed_attempts.is_empty() {
            selection.flaky.push(FlakyJob { passed: job, failed_attempts });
        }
    }
    selection
}

/// Why a job is a hard failure, or `None` if it is not one.
pub(crate) fn hard_failure(job: &Job) -> Option<FailureReason> {
    if job.kind != JobKind::Script || job.soft_failed {
        return None;
    }
    let non_zero = job.exit_status.filter(|status| *status != 0);
    match job.state {
        JobState::Failed => Some(non_zero.map_or(FailureReason::Failed, FailureReason::Exited)),
        JobState::TimedOut => Some(FailureReason::TimedOut),
        JobState::Expired => Some(FailureReason::Expired),
        // `finished` (other channels) or an inconsistent `passed`: trust the exit status.
        JobState::Passed | JobState::Finished => non_zero.map(FailureReason::Exited),
        _ => None,
    }
}

fn passed(job: &Job) -> bool {
    matches!(job.state, JobState::Passed | JobState::Finished)
        && job.exit_status.is_none_or(|status| status == 0)
}

/// A job is superseded when a retry replaced it; only the last attempt decides a step.
/// An attempt marked `retried` whose retry is not in the build is superseded too: its
/// outcome is unknown, so it is neither analysed nor called flaky.
fn is_latest_attempt(job: &Job, by_id: &HashMap<&JobId, &Job>) -> bool {
    let replaced_by_known =
        job.retried_in_job_id.as_ref().is_some_and(|next| by_id.contains_key(next));
    !(job.retried || replaced_by_known)
}

/// Maps each attempt to the one it retried, from both link directions.
fn previous_attempts<'a>(
    build: &'a Build,
    by_id: &HashMap<&JobId, &'a Job>,
) -> HashMap<&'a JobId, &'a Job> {
    let mut previous = HashMap::new();
    for job in &build.jobs {
        if let Some(next) = job.retried_in_job_id.as_ref().and_then(|id| by_id.get(id)) {
            previous.insert(&next.id, job);
        }
        let source = job.retry_source.as_ref().and_then(|s| s.job_id.as_ref());
        if let Some(earlier) = source.and_then(|id| by_id.get(id)) {
            previous.entry(&job.id).or_insert(*earlier);
        }
    }
    previous
}

/// The attempts before `job`, oldest first. Bounded by the job count, so a malformed
/// answer with a retry cycle cannot loop.
fn attempt_chain<'a>(
    job: &'a Job,
    previous: &HashMap<&'a JobId, &'a Job>,
    limit: usize,
) -> Vec<&'a Job> {
    let mut chain = Vec::new();
    let mut current = job;
    while let Some(earlier) = previous.get(&current.id) {
        if chain.len() >= limit || std::ptr::eq(*earlier, job) {
            break;
        }
        chain.push(*earlier);
        current = earlier;
    }
    chain.reverse();
    chain
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn id(n: u8) -> String {
        format!("0190a6f5-3c1d-4c6c-9d6e-1f6f0d1c2a{n:02x}")
    }

    fn job(n: u8, state: &str, exit: Option<i64>) -> Value {
        json!({"id": id(n), "type": "script", "name": format!("job {n}"), "state": state,
               "exit_status": exit})
    }

    fn build(jobs: Vec<Value>) -> Build {
        serde_json::from_value(json!({
            "id": "f0d1a5e6-1c2b-4e3a-9d8f-0123456789ab", "number": 7, "state": "failed",
            "jobs": jobs,
        }))
        .expect("test build decodes")
    }

    fn names(jobs: &[FailedJob<'_>]) -> Vec<String> {
        jobs.iter().map(|f| f.job.display_name().to_owned()).collect()
    }

    #[test]
    fn picks_hard_failed_script_jobs_only() {
        let mut soft = job(4, "failed", Some(1));
        soft["soft_failed"] = json!(true);
        let mut trigger = job(5, "failed", None);
        trigger["type"] = json!("trigger");
        let waiter = json!({"id": id(6), "type": "waiter", "state": "passed"});
        let b = build(vec![
            job(1, "passed", Some(0)),
            job(2, "failed", Some(2)),
            job(3, "timed_out", Some(-1)),
            soft,
            trigger,
            waiter,
            job(7, "broken", None),
            job(8, "canceled", Some(-1)),
            job(9, "expired", None),
            job(10, "finished", Some(137)),
            job(11, "failed", None),
        ]);
        let s = select(&b);
        assert_eq!(names(&s.failed), ["job 2", "job 3", "job 9", "job 10", "job 11"]);
        let reasons: Vec<&FailureReason> = s.failed.iter().map(|f| &f.reason).collect();
        assert_eq!(
            reasons,
            [
                &FailureReason::Exited(2),
                &FailureReason::TimedOut,
                &FailureReason::Expired,
                &FailureReason::Exited(137),
                &FailureReason::Failed,
            ]
        );
        assert!(!s.failed[2].reason.has_log());
        assert!(s.flaky.is_empty());
    }

    #[test]
    fn a_step_that_passed_on_retry_is_flaky_not_failed() {
        let mut first = job(1, "failed", Some(1));
        first["retried"] = json!(true);
        first["retried_in_job_id"] = json!(id(2));
        let mut retry = job(2, "passed", Some(0));
        retry["retry_source"] = json!({"job_id": id(1), "retry_type": "automatic"});
        let b = build(vec![first, retry, job(3, "failed", Some(1))]);
        let s = select(&b);
        assert_eq!(names(&s.failed), ["job 3"]);
        assert_eq!(s.flaky.len(), 1);
        assert_eq!(s.flaky[0].passed.display_name(), "job 2");
        assert_eq!(s.flaky[0].failed_attempts[0].display_name(), "job 1");
    }

    #[test]
    fn a_step_that_failed_every_attempt_counts_once_as_its_latest() {
        let mut a = job(1, "failed", Some(1));
        a["retried"] = json!(true);
        a["retried_in_job_id"] = json!(id(2));
        let mut b2 = job(2, "failed", Some(1));
        b2["retried"] = json!(true);
        b2["retried_in_job_id"] = json!(id(3));
        // The last link exists only backwards, through retry_source.
        let mut c = job(3, "timed_out", Some(-1));
        c["retry_source"] = json!({"job_id": id(2), "retry_type": "manual"});
        let b = build(vec![a, b2, c]);
        let s = select(&b);
        assert_eq!(names(&s.failed), ["job 3"]);
        let earlier: Vec<&str> =
            s.failed[0].earlier_attempts.iter().map(|j| j.display_name()).collect();
        assert_eq!(earlier, ["job 1", "job 2"]);
        assert!(s.flaky.is_empty());
    }

    #[test]
    fn a_retried_attempt_whose_retry_is_missing_is_not_reported() {
        let mut a = job(1, "failed", Some(1));
        a["retried"] = json!(true);
        a["retried_in_job_id"] = json!(id(9));
        let b = build(vec![a]);
        let s = select(&b);
        assert!(s.failed.is_empty() && s.flaky.is_empty());
    }

    #[test]
    fn a_retry_cycle_in_a_bad_answer_terminates() {
        let mut a = job(1, "failed", Some(1));
        a["retry_source"] = json!({"job_id": id(2)});
        let mut b2 = job(2, "failed", Some(1));
        b2["retry_source"] = json!({"job_id": id(1)});
        let b = build(vec![a, b2]);
        let s = select(&b);
        assert_eq!(s.failed.len(), 2);
        assert!(s.failed.iter().all(|f| f.earlier_attempts.len() <= 2));
    }
}
