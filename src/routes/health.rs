//! `/healthz` (the process answers) and `/readyz` (it can do its job: store and queue
//! reachable, and none of its tasks has died). Kubernetes restarts on the first and
//! routes traffic on the second.

use std::time::Duration;

use actix_web::{HttpResponse, web};
use serde::Serialize;

use crate::state::AppState;

/// A readiness check waits this long for each dependency; a hung database must not hang
/// the probe.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz)).route("/readyz", web::get().to(readyz));
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

#[derive(Serialize)]
struct Readiness {
    status: &'static str,
    store: String,
    queue: String,
    /// `ok`, or which supervised task died and why (the process is then going down).
    tasks: String,
}

async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let store = check(state.store.ping()).await;
    let queue = check(state.queue.ping()).await;
    let tasks = state.tasks.death().unwrap_or_else(|| "ok".into());
    let ready = store == "ok" && queue == "ok" && tasks == "ok";
    let body =
        Readiness { status: if ready { "ready" } else { "unavailable" }, store, queue, tasks };
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

async fn check<E: std::fmt::Display>(probe: impl Future<Output = Result<(), E>>) -> String {
    match tokio::time::timeout(CHECK_TIMEOUT, probe).await {
        Ok(Ok(())) => "ok".into(),
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!("no answer within {CHECK_TIMEOUT:?}"),
    }
}
