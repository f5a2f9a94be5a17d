//! `GET /metrics`: the Prometheus text format.

use std::time::Duration;

use actix_web::{HttpResponse, web};

use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/metrics", web::get().to(get_metrics));
}

async fn get_metrics(state: web::Data<AppState>) -> HttpResponse {
    // Queue depth is read at scrape time, so it is as fresh as the scrape; a slow queue
    // leaves the last value rather than failing the scrape.
    if let Ok(Ok(depth)) = tokio::time::timeout(Duration::from_secs(2), state.queue.depth()).await {
        state.metrics.set_queue_depth(depth);
    }
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.metrics.render())
}
