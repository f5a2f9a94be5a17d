//! The work done for one build, behind a trait: [`super::Pipeline`] in production, and
//! scripted stand-ins in the tests (`tests/it/helpers.rs`) that exercise the worker's
//! settling without Buildkite or GitHub.

use async_trait::async_trait;

use super::Outcome;
use crate::queue::QueueMessage;

#[async_trait]
pub trait Processor: Send + Sync + 'static {
    /// Does the build's work. Must be idempotent: a crash before the outcome is recorded
    /// means the same build is processed again.
    async fn process(&self, message: &QueueMessage) -> Outcome;
}
