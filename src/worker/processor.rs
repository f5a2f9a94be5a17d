//! The work done for one build, behind a trait so the pipeline can grow step by step and
//! tests can stand in their own.

use std::time::Duration;

use async_trait::async_trait;

use crate::queue::QueueMessage;
use crate::store::BuildState;

/// What became of a build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Finished for good (`Reported`, `Skipped` or `Failed` with the reason recorded).
    Done { state: BuildState, reason: Option<String> },
    /// Transient trouble (rate limit, 5xx, timeout): try again after `delay`, or after
    /// the queue's backoff when `None`.
    Retry { delay: Option<Duration>, reason: String },
    /// Never going to work (undecodable, a bug): park it in the dead-letter queue.
    DeadLetter { reason: String },
}

impl Outcome {
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Done { .. } => "done",
            Outcome::Retry { .. } => "retry",
            Outcome::DeadLetter { .. } => "dead_letter",
        }
    }
}

#[async_trait]
pub trait Processor: Send + Sync + 'static {
    /// Does the build's work. Must be idempotent: a crash before the outcome is recorded
    /// means the same build is processed again.
    async fn process(&self, message: &QueueMessage, attempt: u32) -> Outcome;
}

/// Records that the build arrived and does nothing else; the pipeline's first stage and
/// what `--role worker` runs when no Buildkite token is available.
pub struct RecordOnly;

#[async_trait]
impl Processor for RecordOnly {
    async fn process(&self, _message: &QueueMessage, _attempt: u32) -> Outcome {
        Outcome::Done { state: BuildState::Received, reason: None }
    }
}
