//! HTTP routes, one module per resource, each with a `configure` (meilisearch's layout).

mod admin_auth;
mod admin_page;
mod analyses;
mod health;
mod integrations;
mod metrics;
pub(crate) mod webhooks;

use actix_web::middleware::from_fn;
use actix_web::web;

/// Routes every role serves: health, readiness, metrics.
pub fn configure_common(cfg: &mut web::ServiceConfig) {
    health::configure(cfg);
    metrics::configure(cfg);
}

/// Routes of the receiver role: webhooks, the admin API and the admin page.
pub fn configure_receiver(cfg: &mut web::ServiceConfig) {
    webhooks::configure(cfg);
    admin_page::configure(cfg);
    cfg.service(
        web::scope("/api")
            .wrap(from_fn(admin_auth::require_admin))
            .configure(analyses::configure)
            .configure(integrations::configure),
    );
}
