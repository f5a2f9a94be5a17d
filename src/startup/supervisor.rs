//! The application's long-running tasks in one `JoinSet`, so the first one to end is
//! noticed at once instead of at the next SIGTERM. Each of them is meant to run until
//! shutdown; one that ends earlier (it returned, failed or panicked) takes the process
//! down with it, the way zero2prod's `main.rs` races its API and worker and reports
//! which one exited (https://github.com/LukeMathWalker/zero-to-production, `src/main.rs`).

use std::collections::HashMap;
use std::fmt;

use tokio::task::{Id, JoinError, JoinSet};

/// One supervised part of the application.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Part {
    Server,
    Worker,
    Reconciler,
    Verifier,
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Part::Server => "HTTP server",
            Part::Worker => "worker",
            Part::Reconciler => "reconciler",
            Part::Verifier => "integration verifier",
        })
    }
}

/// How a part ended: `None` when it returned cleanly, else what went wrong.
pub(super) type Ending = Option<String>;

#[derive(Default)]
pub(super) struct Supervisor {
    tasks: JoinSet<anyhow::Result<()>>,
    parts: HashMap<Id, Part>,
}

impl Supervisor {
    /// Runs a part that can fail (`Err` is its cause if it ends early).
    pub(super) fn spawn_fallible<F>(&mut self, part: Part, task: F)
    where
        F: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let id = self.tasks.spawn(task).id();
        self.parts.insert(id, part);
    }

    /// Runs a part that handles its own errors: it can only return or panic.
    pub(super) fn spawn<F>(&mut self, part: Part, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.spawn_fallible(part, async move {
            task.await;
            Ok(())
        });
    }

    /// Waits for the next part to end; `None` once none is left.
    pub(super) async fn next(&mut self) -> Option<(Part, Ending)> {
        let (id, ending) = match self.tasks.join_next_with_id().await? {
            Ok((id, Ok(()))) => (id, None),
            Ok((id, Err(e))) => (id, Some(format!("{e:#}"))),
            Err(e) => (e.id(), Some(describe(e))),
        };
        let part = self.parts.remove(&id).expect("every task is spawned through `spawn`");
        Some((part, ending))
    }

    /// Whether a part other than `part` is still running.
    pub(super) fn runs_besides(&self, part: Part) -> bool {
        self.parts.values().any(|p| *p != part)
    }
}

/// A task that did not return: it panicked (with this message) or was cancelled.
fn describe(e: JoinError) -> String {
    if !e.is_panic() {
        return "cancelled".into();
    }
    let payload = e.into_panic();
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into());
    format!("panicked: {message}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_part_that_ends_is_named_with_its_cause() {
        let mut s = Supervisor::default();
        s.spawn(Part::Server, std::future::pending());
        s.spawn(Part::Reconciler, async { panic!("lookback overflowed") });

        let (part, ending) = s.next().await.unwrap();

        assert_eq!(part, Part::Reconciler);
        assert_eq!(ending.as_deref(), Some("panicked: lookback overflowed"));
        assert!(!s.runs_besides(Part::Server), "only the server is left");
    }

    #[tokio::test]
    async fn errors_keep_their_causes_and_clean_returns_have_none() {
        let mut s = Supervisor::default();
        s.spawn_fallible(Part::Worker, async {
            Err(anyhow::anyhow!("disk gone").context("worker"))
        });
        s.spawn(Part::Verifier, async {});

        let mut endings = vec![s.next().await.unwrap(), s.next().await.unwrap()];
        endings.sort_by_key(|(p, _)| p.to_string());

        assert_eq!(
            endings,
            [(Part::Verifier, None), (Part::Worker, Some("worker: disk gone".into()))]
        );
        assert!(s.next().await.is_none());
    }
}
