//! `GET /api/analyses`: recent builds, what kitefix found and what it posted (or, in
//! dry-run, would have posted).

use actix_web::{HttpResponse, web};
use serde::Deserialize;

use crate::error::ApiError;
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/analyses", web::get().to(list_analyses));
}

#[derive(Deserialize)]
struct ListQuery {
    limit: Option<i64>,
    build_id: Option<String>,
}

async fn list_analyses(
    state: web::Data<AppState>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = query.limit.unwrap_or(50).clamp(1, 500);
    // A database that is down answers 503 (`From<StoreError> for ApiError`).
    let mut builds = state.store.recent_builds(limit).await?;
    if let Some(id) = &query.build_id {
        builds.retain(|b| b.event.build_id.as_str() == id);
    }
    Ok(HttpResponse::Ok().json(serde_json::json!({ "analyses": builds })))
}
