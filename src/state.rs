//! What the HTTP handlers share.

use std::sync::{Arc, Mutex};

use crate::config::Settings;
use crate::intake::Intake;
use crate::integrations::Integrations;
use crate::metrics::Metrics;
use crate::queue::Queue;
use crate::store::Store;

/// Handler state, behind `web::Data` (an `Arc`).
pub struct AppState {
    pub settings: Settings,
    pub store: Store,
    pub queue: Arc<dyn Queue>,
    pub intake: Intake,
    pub integrations: Integrations,
    pub metrics: Metrics,
    /// Whether a supervised task has died (`/readyz`).
    pub tasks: TaskHealth,
}

/// The first supervised task (server, worker, reconciler, verifier) that ended before
/// shutdown was asked for, and why. Set once by the supervisor in `startup.rs`; while
/// the process goes down `/readyz` answers 503 with it, so whatever routes traffic here
/// stops and an operator reading the probe sees the cause.
#[derive(Debug, Default)]
pub struct TaskHealth {
    died: Mutex<Option<String>>,
}

impl TaskHealth {
    /// Records `what` (e.g. "reconciler stopped: panicked: …"); the first record stays.
    pub fn died(&self, what: String) {
        self.died.lock().expect("not poisoned").get_or_insert(what);
    }

    /// `None` while every task runs.
    pub fn death(&self) -> Option<String> {
        self.died.lock().expect("not poisoned").clone()
    }
}
