//! The admin page at `/`: connected organisations with their status, a form to connect
//! one, and recent analyses. Server-rendered HTML without scripts, so it needs no build
//! step and works with any browser; forms post back here and the page is rendered again
//! with the outcome.

mod render;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, ContentType};
use actix_web::middleware::from_fn;
use actix_web::{HttpRequest, HttpResponse, web};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::error::ApiError;
use crate::integrations::{ConnectError, IntegrationSummary};
use crate::state::AppState;
use crate::store::BuildRecord;

use render::{AnalysisView, FormState, IntegrationView, Notice, Page};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin.css", web::get().to(stylesheet));
    // Everything but the stylesheet needs the admin's credentials.
    let signed_in = [
        ("/", web::get().to(show)),
        ("/integrations", web::post().to(connect)),
        ("/integrations/{id}/remove", web::post().to(remove)),
    ];
    for (path, route) in signed_in {
        cfg.service(
            web::resource(path).wrap(from_fn(super::admin_auth::require_admin_page)).route(route),
        );
    }
}

/// What every page response carries: no caching (the page shows a webhook token once),
/// no framing (clickjacking), no scripts or inline styles (CSP), no referrer leaking ids.
fn html(status: StatusCode, body: String) -> HttpResponse {
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
    render_page(&state, None, &FormState::default(), StatusCode::OK).await
}

async fn render_page(
    state: &AppState,
    notice: Option<&Notice>,
    form: &FormState,
    status: StatusCode,
) -> Result<HttpResponse, ApiError> {
    let builds = state.store.recent_builds(25).await?;
    let analyses: Vec<AnalysisView> = builds.iter().map(analysis_view).collect();
    let integrations = state.integrations.list().await.map_err(ApiError::from)?;
    let integrations: Vec<IntegrationView> = integrations
        .iter()
        .filter(|i| i.status != crate::store::IntegrationStatus::Removed)
        .map(integration_view)
        .collect();
    let body = render::page(&Page {
        integrations: &integrations,
        analyses: &analyses,
        notice,
        form,
        dry_run: state.settings.github.app.is_none(),
    });
    Ok(html(status, body))
}

fn analysis_view(b: &BuildRecord) -> AnalysisView {
    let e = &b.event;
    let first_job = b.report.as_ref().and_then(|r| r.jobs.first()).map(|j| &j.analysis);
    let title = b
        .check_run
        .as_ref()
        .map(|c| c.title.clone())
        .or_else(|| first_job.map(|a| a.title.clone()));
    AnalysisView {
        build: format!("{}/{} #{}", e.org, e.pipeline, e.build_number),
        build_url: e.web_url(),
        state: b.state.as_str().to_owned(),
        category: first_job.map(|a| a.category.as_str().to_owned()),
        title,
        reason: b.reason.clone(),
        check_run_url: b.check_run_url.clone(),
        updated: format_time(b.updated_at).unwrap_or_default(),
    }
}

fn format_time(millis: i64) -> Option<String> {
    chrono::DateTime::from_timestamp_millis(millis)
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
}

/// The connect form, posted from the page.
#[derive(Deserialize)]
struct ConnectForm {
    org_slug: String,
    api_token: SecretString,
}

/// `POST /integrations`: connects an organisation and renders the page with the outcome:
/// the webhook URL and token (shown this once), or what to fix. Same checks as
/// `POST /api/integrations/buildkite`.
#[tracing::instrument(name = "admin_page.connect", skip_all)]
async fn connect(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: web::Form<ConnectForm>,
) -> Result<HttpResponse, ApiError> {
    let ConnectForm { org_slug, api_token } = form.into_inner();
    let org = org_slug.trim().to_owned();
    // Where Buildkite should send webhooks: this page's own origin (behind a proxy,
    // `Forwarded` / `X-Forwarded-*` as actix reads them).
    let origin = {
        let info = req.connection_info();
        format!("{}://{}", info.scheme(), info.host())
    };
    match state.integrations.connect(&org, api_token).await {
        Ok(connected) => {
            let notice = Notice::Connected {
                org: connected.org.to_string(),
                webhook_url: format!("{origin}{}", connected.webhook_path),
                webhook_token: connected.webhook_token.expose_secret().to_owned(),
            };
            render_page(&state, Some(&notice), &FormState::default(), StatusCode::CREATED).await
        }
        Err(ConnectError::Store(e)) => Err(e.into()),
        Err(e) => {
            let notice = Notice::Error { message: e.to_string() };
            // The API's status for the same refusal (routes/integrations.rs).
            let status = ApiError::from(e).status();
            render_page(&state, Some(&notice), &FormState { org }, status).await
        }
    }
}

/// `POST /integrations/{id}/remove`: the page's remove button.
#[tracing::instrument(name = "admin_page.remove", skip_all, fields(integration_id = %id))]
async fn remove(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let notice = match state.integrations.get(&id).await {
        Ok(found) => match state.integrations.remove(&id).await {
            Ok(()) => Notice::Removed { org: found.org_slug },
            Err(e) => Notice::Error { message: e.to_string() },
        },
        Err(e) => Notice::Error { message: e.to_string() },
    };
    let status = match notice {
        Notice::Removed { .. } => StatusCode::OK,
        _ => StatusCode::NOT_FOUND,
    };
    render_page(&state, Some(&notice), &FormState::default(), status).await
}

fn integration_view(i: &IntegrationSummary) -> IntegrationView {
    IntegrationView {
        id: i.id.clone(),
        org: i.org_slug.clone(),
        status: i.status.as_str().to_owned(),
        reason: i.reason.clone(),
        token_last4: i.token_last4.clone(),
        last_webhook: i.last_webhook_at.and_then(format_time),
        webhook_path: i.webhook_path.clone(),
    }
}
