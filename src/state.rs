//! What the HTTP handlers share.

use std::sync::Arc;

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
}
