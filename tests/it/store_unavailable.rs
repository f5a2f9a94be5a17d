//! With the database unreachable, every route that reads it says "try again" (503 with
//! `Retry-After`), not "our fault" (500): one `From<StoreError> for ApiError`
//! (src/error.rs) for the admin API, the admin page and the webhook intake.

use kitefix::startup::Role;
use serde_json::Value;

use crate::helpers::{TestApp, TestConfig, failed_build, metric, spawn_app_with};

/// A receiver whose store pool is closed: the app's own pool (`TestApp::store` is a clone
/// of it), so every query fails as with a database that went away (`PoolClosed`).
async fn app_with_store_down() -> TestApp {
    let app = spawn_app_with(TestConfig { role: Role::Receiver, ..Default::default() }).await;
    assert_eq!(app.get("/api/analyses").await.status(), 200, "sanity: up before the close");
    app.store.close().await;
    app
}

#[tokio::test]
async fn the_admin_api_and_page_answer_503_with_retry_after() {
    let app = app_with_store_down().await;

    for path in ["/api/analyses", "/api/analyses?build_id=x", "/api/integrations", "/"] {
        let response = app.get(path).await;

        assert_eq!(response.status(), 503, "{path}");
        assert_eq!(response.headers()["retry-after"], "5", "{path}");
        let body: Value = response.json().await.expect("JSON error body");
        assert_eq!(body["code"], "unavailable", "{path}");
        assert_eq!(body["message"], "the store is unavailable; try again", "{path}");
    }
}

#[tokio::test]
async fn a_webhook_that_cannot_be_checked_for_duplicates_gets_503_and_is_counted() {
    let app = app_with_store_down().await;

    let response = app.post_signed("build.finished", failed_build(1).to_string().as_bytes()).await;

    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "5");
    let body: Value = response.json().await.expect("JSON error body");
    assert_eq!(body["code"], "unavailable");
    assert_eq!(body["message"], "the event could not be queued durably; try again");
    assert_eq!(
        metric(
            &app.metrics().await,
            "kitefix_webhooks_total{event=\"build.finished\",outcome=\"unavailable\"}"
        ),
        Some(1.0)
    );
}
