//! The admin page at `/`: connected organisations with their status, a form to connect
//! one, and recent analyses. Server-rendered HTML without scripts, so it needs no build
//! step and works with any browser; forms post back here and the page is rendered again
//! with the outcome.

mod render;

use actix_web::http::header::{self, ContentType};
use actix_web::middleware::from_fn;
use actix_web::{HttpResponse, web};

use crate::error::ApiError;
use crate::state::AppState;
use crate::store::BuildRecord;

use render::{AnalysisView, FormState, Notice, Page};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin.css", web::get().to(stylesheet));
    cfg.service(
        web::resource("/")
            .wrap(from_fn(super::admin_auth::require_admin_page))
            .route(web::get().to(show)),
    );
}

/// What every page response carries: no caching (the page shows a webhook token once),
/// no framing (clickjacking), no scripts or inline styles (CSP), no referrer leaking ids.
fn html(status: actix_web::http::StatusCode, body: String) -> HttpResponse {
    HttpResponse::build(status)
        .content_type(ContentType::html())
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .body(body)
}

async fn stylesheet() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(render::STYLESHEET)
}

#[tracing::instrument(name = "admin_page.show", skip_all)]
async fn show(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    render_page(&state, None, &FormState::default(), actix_web::http::StatusCode::OK).await
}

async fn render_page(
    state: &AppState,
    notice: Option<&Notice>,
    form: &FormState,
    status: actix_web::http::StatusCode,
) -> Result<HttpResponse, ApiError> {
    let builds = state.store.recent_builds(25).await.map_err(|e| ApiError::internal(&e))?;
    let analyses: Vec<AnalysisView> = builds.iter().map(analysis_view).collect();
    let body = render::page(&Page {
        integrations: &[],
        analyses: &analyses,
        notice,
        form,
        dry_run: state.settings.github.app.is_none(),
    });
    Ok(html(status, body))
}

fn analysis_view(b: &BuildRecord) -> AnalysisView {
    let e = &b.event;
    let first_job = b.report.as_ref().and_then(|r| r.pointer("/jobs/0/analysis"));
    let title = b
        .check_run
        .as_ref()
        .and_then(|c| c.get("title"))
        .or_else(|| first_job.and_then(|a| a.get("title")))
        .and_then(|t| t.as_str())
        .map(str::to_owned);
    AnalysisView {
        build: format!("{}/{} #{}", e.org, e.pipeline, e.build_number),
        build_url: format!(
            "https://buildkite.com/{}/{}/builds/{}",
            e.org, e.pipeline, e.build_number
        ),
        state: b.state.as_str().to_owned(),
        category: first_job
            .and_then(|a| a.get("category"))
            .and_then(|c| c.as_str())
            .map(str::to_owned),
        title,
        reason: b.reason.clone(),
        check_run_url: b.check_run_url.clone(),
        updated: chrono::DateTime::from_timestamp_millis(b.updated_at)
            .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
            .unwrap_or_default(),
    }
}
