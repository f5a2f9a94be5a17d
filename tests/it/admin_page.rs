//! The admin page at `/`: in a real browser (headless Chromium), and at the HTTP level
//! for what a browser does not show (auth challenge, security headers, CSRF).

use std::time::Duration;

use kitefix::store::BuildState;
use serde_json::json;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::browser::Browser;
use crate::helpers::{QueueKind, StoreKind, TestConfig, failed_build, spawn_app_with, world};
use crate::integrations;
use crate::pipeline::{compile_failure_log, env};
use crate::stubs::buildkite::{self as bk, JobSpec};

const FORM: &str = "application/x-www-form-urlencoded";

/// The body a browser sends for the connect form.
fn form(org: &str, token: &str) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .append_pair("org_slug", org)
        .append_pair("api_token", token)
        .finish()
}

const ADMIN_TOKEN: &str = "admin-token-for-the-page-tests";

#[tokio::test]
async fn the_page_lists_recent_analyses_with_their_category_and_check_run() {
    let w = world(QueueKind::Embedded, true, vec![]).await;
    let payload = failed_build(60);
    let job = JobSpec::failed("cargo test", 101);
    bk::mount_build(&w.buildkite, &payload, std::slice::from_ref(&job)).await;
    bk::mount_log(&w.buildkite, 60, &job, &compile_failure_log()).await;
    bk::mount_env(&w.buildkite, 60, &job, &env()).await;
    w.app.post_signed("build.finished", payload.to_string().as_bytes()).await;
    w.app.drain_queue_within(Duration::from_secs(30)).await;
    assert_eq!(w.app.state_of(&payload).await, Some(BuildState::Reported));
    let Some(browser) = Browser::start().await else { return };

    browser.goto(&w.app.address).await;

    let table = browser.text("section[aria-labelledby=recent] table").await;
    assert!(table.contains("acme/web-app #60"), "{table}");
    assert!(table.contains("compile"), "{table}");
    assert!(table.contains("Compile error in `cargo test`"), "{table}");
    assert!(table.contains("check run"), "a link to the check run: {table}");
    browser.screenshot("admin-page-analyses").await;
    browser.quit().await;
}

async fn app_with_admin_token() -> crate::helpers::TestApp {
    spawn_app_with(TestConfig {
        overrides: vec![("admin.token", json!(ADMIN_TOKEN))],
        ..Default::default()
    })
    .await
}

#[tokio::test]
async fn with_an_admin_token_the_page_asks_the_browser_to_sign_in() {
    let app = app_with_admin_token().await;
    let client = reqwest::Client::new();

    let anonymous = client.get(&app.address).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let challenge = anonymous.headers()["www-authenticate"].to_str().unwrap().to_owned();
    assert!(challenge.starts_with("Basic realm=\"kitefix admin\""), "{challenge}");

    let wrong = client.get(&app.address).basic_auth("admin", Some("nope")).send().await.unwrap();
    assert_eq!(wrong.status(), 401);

    let signed_in =
        client.get(&app.address).basic_auth("anyone", Some(ADMIN_TOKEN)).send().await.unwrap();
    assert_eq!(signed_in.status(), 200);
    let headers = signed_in.headers().clone();
    assert_eq!(headers["cache-control"], "no-store");
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"), "{csp}");
    let html = signed_in.text().await.unwrap();
    assert!(html.contains("<html lang=\"en\">") && html.contains("Recent analyses"));
}

#[tokio::test]
async fn the_stylesheet_is_served_without_sign_in() {
    let app = app_with_admin_token().await;
    let css = app.get("/admin.css").await;
    assert_eq!(css.status(), 200);
    assert!(css.headers()["content-type"].to_str().unwrap().starts_with("text/css"));
}

#[tokio::test]
async fn connecting_an_organisation_in_the_browser_shows_its_webhook_token_once() {
    let buildkite = integrations::buildkite().await;
    let app = integrations::app_with(&buildkite, StoreKind::Sqlite, false).await;
    let Some(browser) = Browser::start().await else { return };
    browser.goto(&app.address).await;

    browser.fill("#org_slug", "acme").await;
    browser.fill("#api_token", bk::API_TOKEN).await;
    browser.click("form[action='/integrations'] button[type=submit]").await;

    let notice = browser.text("[role=status]").await;
    assert!(notice.contains("Connected acme."), "{notice}");
    let stored = integrations::list(&app).await;
    let id = stored[0]["id"].as_str().unwrap().to_owned();
    assert!(notice.contains(&format!("{}/webhooks/buildkite/{id}", app.address)), "{notice}");
    let orgs = browser.text("section[aria-labelledby=orgs] table").await;
    assert!(orgs.contains("acme") && orgs.contains("Connected"), "{orgs}");
    assert!(!orgs.contains(bk::API_TOKEN), "only the last 4 characters: {orgs}");
    browser.screenshot("admin-page-connected").await;

    // The webhook token works on the integration's route, and is not shown again.
    let token = notice.lines().last().unwrap().trim().to_owned();
    let payload = failed_build(61);
    let response = integrations::post_signed_to(
        &app,
        &format!("/webhooks/buildkite/{id}"),
        &token,
        payload.to_string().as_bytes(),
    )
    .await;
    assert_eq!(response.status(), 202, "the token shown is the integration's webhook token");
    browser.goto(&app.address).await;
    let page = browser.text("main").await;
    assert!(!page.contains(&token), "the webhook token is shown once only");
    browser.quit().await;
}

#[tokio::test]
async fn a_token_without_every_scope_is_refused_on_the_page_naming_the_missing_ones() {
    let buildkite = integrations::buildkite().await;
    let narrow = "bkua_narrow89abcdef0123456789abcdef0123456";
    let scopes: Vec<&str> =
        integrations::ALL_SCOPES.into_iter().filter(|s| *s != "read_job_env").collect();
    integrations::mount_access_token(&buildkite, narrow, &scopes).await;
    let app = integrations::app_with(&buildkite, StoreKind::Sqlite, false).await;
    let Some(browser) = Browser::start().await else { return };
    browser.goto(&app.address).await;

    browser.fill("#org_slug", "acme").await;
    browser.fill("#api_token", narrow).await;
    browser.click("form[action='/integrations'] button[type=submit]").await;

    let alert = browser.text("[role=alert]").await;
    assert!(alert.contains("missing required scopes: read_job_env;"), "{alert}");
    assert!(!alert.contains(narrow));
    assert!(integrations::list(&app).await.is_empty(), "nothing stored");
    browser.screenshot("admin-page-missing-scopes").await;
    browser.quit().await;
}

#[tokio::test]
async fn every_connect_outcome_on_the_page_has_its_status_and_message() {
    let buildkite = integrations::buildkite().await;
    let app = integrations::app_with(&buildkite, StoreKind::Sqlite, false).await;
    let rejected = "bkua_revoked89abcdef0123456789abcdef012345";
    Mock::given(method("GET"))
        .and(path("/v2/access-token"))
        .and(header("authorization", format!("Bearer {rejected}").as_str()))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({"message": "Unauthorized"})))
        .mount(&buildkite)
        .await;
    let post = |org: &'static str, token: &'static str| {
        let client = app.client.clone();
        let url = format!("{}/integrations", app.address);
        async move {
            let r =
                client.post(url).header("Content-Type", FORM).body(form(org, token)).send().await;
            let r = r.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };

    let (status, html) = post("acme", rejected).await;
    assert_eq!(status, 422);
    assert!(html.contains("token rejected by Buildkite"), "{html}");
    assert!(!html.contains(rejected), "the token is never echoed");
    let (status, html) = post("Not A Slug!", bk::API_TOKEN).await;
    assert_eq!(status, 400);
    assert!(html.contains("invalid org_slug"), "{html}");
    let (status, _) = post("acme", bk::API_TOKEN).await;
    assert_eq!(status, 201);
    let (status, html) = post("acme", bk::API_TOKEN).await;
    assert_eq!(status, 409);
    assert!(html.contains("already connected"), "{html}");

    // Removing it from the page: its webhooks are refused from then on.
    let id = integrations::list(&app).await[0]["id"].as_str().unwrap().to_owned();
    let removed =
        app.client.post(format!("{}/integrations/{id}/remove", app.address)).send().await.unwrap();
    assert_eq!(removed.status(), 200);
    assert!(removed.text().await.unwrap().contains("Removed acme."));
    let listed = integrations::list(&app).await;
    assert!(listed.iter().all(|i| i["status"] == "removed"), "{listed:?}");

    // Buildkite down: 502, nothing stored.
    drop(buildkite);
    let (status, html) = post("other", OTHER_TOKEN_FOR_DOWN).await;
    assert_eq!(status, 502, "{html}");
    assert!(html.contains("could not be reached"), "{html}");
}

const OTHER_TOKEN_FOR_DOWN: &str = "bkua_down456789abcdef0123456789abcdef01234";

#[tokio::test]
async fn a_form_posted_from_another_site_is_refused_and_changes_nothing() {
    let buildkite = integrations::buildkite().await;
    let app = integrations::app_with(&buildkite, StoreKind::Sqlite, false).await;

    let response = app
        .client
        .post(format!("{}/integrations", app.address))
        .header("Origin", "https://evil.example")
        .header("Sec-Fetch-Site", "cross-site")
        .header("Content-Type", FORM)
        .body(form("acme", bk::API_TOKEN))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 403);
    assert!(integrations::list(&app).await.is_empty());
    assert!(buildkite.received_requests().await.unwrap().is_empty(), "Buildkite not even asked");
}
