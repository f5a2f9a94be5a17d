//! A job's raw log as a stream of byte chunks, never buffered whole (logs reach 1 GiB,
//! docs/buildkite.md#job-logs), with an idle timeout per chunk and an overall deadline.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use tokio::time::{Instant, Sleep};

use super::error::{BuildkiteError, Endpoint, TimeoutKind};
use super::metrics::BuildkiteMetrics;

/// The answer to a log request.
#[derive(Debug)]
pub enum JobLog {
    /// The log, streaming.
    Available(LogStream),
    /// Buildkite has no log for the job (404/410: deleted, or the job is gone). The
    /// analysis still goes out and says so.
    Unavailable(LogUnavailable),
}

/// Why a log could not be fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogUnavailable {
    /// 404 or 410.
    pub status: u16,
    /// Buildkite's message (redacted), e.g. "No job found".
    pub message: String,
}

type Body = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;

/// The log body as `Bytes` chunks in arrival order. Yields an error (and then ends) if
/// the stream stalls past the idle timeout, passes the deadline, or the connection fails.
pub struct LogStream {
    body: Body,
    content_length: Option<u64>,
    received: u64,
    idle_timeout: Duration,
    idle: Pin<Box<Sleep>>,
    deadline: Pin<Box<Sleep>>,
    finished: bool,
    metrics: BuildkiteMetrics,
}

impl LogStream {
    pub(crate) fn new(
        response: reqwest::Response,
        deadline: Instant,
        idle_timeout: Duration,
        metrics: BuildkiteMetrics,
    ) -> Self {
        Self {
            content_length: response.content_length(),
            body: Box::pin(response.bytes_stream()),
            received: 0,
            idle_timeout,
            idle: Box::pin(tokio::time::sleep(idle_timeout)),
            deadline: Box::pin(tokio::time::sleep_until(deadline)),
            finished: false,
            metrics,
        }
    }

    /// The log's size in bytes, when Buildkite sent a `Content-Length`.
    pub fn content_length(&self) -> Option<u64> {
        self.content_length
    }

    /// Bytes received so far.
    pub fn bytes_received(&self) -> u64 {
        self.received
    }

    fn fail(&mut self, error: BuildkiteError) -> Poll<Option<Result<Bytes, BuildkiteError>>> {
        self.finished = true;
        self.metrics.error(Endpoint::JobLog, &error);
        Poll::Ready(Some(Err(error)))
    }
}

impl Stream for LogStream {
    type Item = Result<Bytes, BuildkiteError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.finished {
            return Poll::Ready(None);
        }
        match this.body.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                this.received += chunk.len() as u64;
                this.metrics.log_bytes(chunk.len());
                let next_idle = Instant::now() + this.idle_timeout;
                this.idle.as_mut().reset(next_idle);
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(error))) => {
                // reqwest's own total timeout is set to the same deadline as a backstop.
                let error = if error.is_timeout() {
                    BuildkiteError::Timeout {
                        endpoint: Endpoint::JobLog,
                        kind: TimeoutKind::LogDeadline,
                    }
                } else {
                    BuildkiteError::Transport { endpoint: Endpoint::JobLog, source: error }
                };
                this.fail(error)
            }
            Poll::Ready(None) => {
                this.finished = true;
                Poll::Ready(None)
            }
            Poll::Pending => {
                let kind = if this.deadline.as_mut().poll(cx).is_ready() {
                    TimeoutKind::LogDeadline
                } else if this.idle.as_mut().poll(cx).is_ready() {
                    TimeoutKind::LogIdle
                } else {
                    return Poll::Pending;
                };
                this.fail(BuildkiteError::Timeout { endpoint: Endpoint::JobLog, kind })
            }
        }
    }
}

impl fmt::Debug for LogStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogStream")
            .field("content_length", &self.content_length)
            .field("received", &self.received)
            .field("finished", &self.finished)
            .finish()
    }
}
