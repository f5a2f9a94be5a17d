//! The admin page at `/`: in a real browser (headless Chromium), and at the HTTP level
//! for what a browser does not show (auth challenge, security headers, CSRF).

use std::time::Duration;

use kitefix::store::BuildState;
use serde_json::json;

use crate::browser::Browser;
use crate::helpers::{QueueKind, TestConfig, failed_build, spawn_app_with, wait_for_state};
use crate::pipeline::{compile_failure_log, env, world};
use crate::stubs::buildkite::{self as bk, JobSpec};

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
    assert!(wait_for_state(&w.app, &payload, BuildState::Reported, Duration::from_secs(30)).await);
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
