//! `POST /webhooks/buildkite` as Buildkite (and as a stranger) would use it.

use std::time::Duration;

use kitefix::startup::Role;
use kitefix::store::BuildState;
use kitefix::webhook::signature;
use serde_json::{Value, json};

use crate::helpers::{
    TestConfig, WEBHOOK_TOKEN, dedupe_key, failed_build, metric, spawn_app, spawn_app_with,
    wait_for_state,
};

fn receiver_only() -> TestConfig {
    TestConfig { role: Role::Receiver, ..Default::default() }
}

async fn body_json(response: reqwest::Response) -> Value {
    response.json().await.expect("JSON body")
}

#[tokio::test]
async fn signed_failed_build_is_queued_and_acknowledged_with_202() {
    let app = spawn_app_with(receiver_only()).await;
    let payload = failed_build(1);

    let response = app.post_signed("build.finished", payload.to_string().as_bytes()).await;

    assert_eq!(response.status(), 202);
    let body = body_json(response).await;
    assert_eq!(body["status"], "queued");
    // The build is recorded by a background batch writer, shortly after the answer.
    assert!(wait_for_state(&app, &payload, BuildState::Queued, Duration::from_secs(5)).await);
    let metrics = app.metrics().await;
    assert_eq!(metric(&metrics, "kitefix_queue_depth{state=\"ready\"}"), Some(1.0));
    assert_eq!(
        metric(&metrics, "kitefix_webhooks_total{event=\"build.finished\",outcome=\"accepted\"}"),
        Some(1.0)
    );
}

#[tokio::test]
async fn token_mode_is_accepted() {
    let app = spawn_app_with(receiver_only()).await;
    let payload = failed_build(2).to_string();

    let ok = app
        .post_webhook("build.finished", payload.as_bytes(), &[("X-Buildkite-Token", WEBHOOK_TOKEN)])
        .await;
    let wrong = app
        .post_webhook(
            "build.finished",
            payload.as_bytes(),
            &[("X-Buildkite-Token", "nope-nope-nope")],
        )
        .await;

    assert_eq!(ok.status(), 202);
    assert_eq!(wrong.status(), 401);
}

#[tokio::test]
async fn redelivery_queues_nothing_new() {
    let app = spawn_app_with(receiver_only()).await;
    let payload = failed_build(3).to_string();

    let first = app.post_signed("build.finished", payload.as_bytes()).await;
    let second = app.post_signed("build.finished", payload.as_bytes()).await;

    assert_eq!(first.status(), 202);
    assert_eq!(second.status(), 200);
    assert_eq!(body_json(second).await["status"], "duplicate");
    assert_eq!(metric(&app.metrics().await, "kitefix_queue_depth{state=\"ready\"}"), Some(1.0));
}

#[tokio::test]
async fn the_same_build_finishing_again_is_a_new_event() {
    // A job retry makes a build finish twice (docs/buildkite.md#webhook-delivery).
    let app = spawn_app_with(receiver_only()).await;
    let mut payload = failed_build(4);
    app.post_signed("build.finished", payload.to_string().as_bytes()).await;
    payload["build"]["finished_at"] = json!("2026-11-25T10:30:00.000Z");

    let again = app.post_signed("build.finished", payload.to_string().as_bytes()).await;

    assert_eq!(again.status(), 202);
    assert_eq!(metric(&app.metrics().await, "kitefix_queue_depth{state=\"ready\"}"), Some(2.0));
}

#[tokio::test]
async fn bad_credentials_get_401_and_change_nothing() {
    let app = spawn_app_with(receiver_only()).await;
    let payload = failed_build(5);
    let body = payload.to_string();
    let now = chrono::Utc::now().timestamp();
    let cases: Vec<(&str, Vec<(&str, String)>)> = vec![
        ("no header", vec![]),
        (
            "wrong key",
            vec![(
                "X-Buildkite-Signature",
                signature::sign("another-token-xyz", now, body.as_bytes()),
            )],
        ),
        (
            "stale timestamp",
            vec![(
                "X-Buildkite-Signature",
                signature::sign(WEBHOOK_TOKEN, now - 301, body.as_bytes()),
            )],
        ),
        (
            "future timestamp",
            vec![(
                "X-Buildkite-Signature",
                signature::sign(WEBHOOK_TOKEN, now + 301, body.as_bytes()),
            )],
        ),
        ("garbage header", vec![("X-Buildkite-Signature", "timestamp=x,signature=y".into())]),
        (
            "tampered body",
            vec![("X-Buildkite-Signature", signature::sign(WEBHOOK_TOKEN, now, b"{}"))],
        ),
    ];

    for (case, headers) in cases {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let response = app.post_webhook("build.finished", body.as_bytes(), &headers).await;
        assert_eq!(response.status(), 401, "{case}");
        let error = body_json(response).await;
        assert_eq!(error["code"], "unauthorized", "{case}");
        assert!(
            !error["message"].as_str().unwrap().contains(WEBHOOK_TOKEN),
            "{case} leaks the token"
        );
    }
    assert_eq!(app.store.build_state(&dedupe_key(&payload)).await.unwrap(), None);
    let metrics = app.metrics().await;
    assert_eq!(metric(&metrics, "kitefix_queue_depth{state=\"ready\"}"), Some(0.0));
    assert_eq!(
        metric(
            &metrics,
            "kitefix_webhooks_total{event=\"build.finished\",outcome=\"unauthorized\"}"
        ),
        Some(6.0)
    );
}

#[tokio::test]
async fn without_a_configured_token_every_webhook_is_refused() {
    let app = spawn_app_with(TestConfig { webhook_token: None, ..receiver_only() }).await;

    let response = app.post_signed("ping", b"{}").await;

    assert_eq!(response.status(), 401);
    assert!(body_json(response).await["message"].as_str().unwrap().contains("webhook.token"));
}

#[tokio::test]
async fn oversized_bodies_get_413() {
    let app = spawn_app_with(TestConfig {
        overrides: vec![("server.max_body_bytes", json!(2048))],
        ..receiver_only()
    })
    .await;
    let big = format!("{{\"padding\":\"{}\"}}", "x".repeat(4096));

    let response = app.post_signed("build.finished", big.as_bytes()).await;

    assert_eq!(response.status(), 413);
    assert_eq!(body_json(response).await["code"], "payload_too_large");
}

#[tokio::test]
async fn malformed_json_gets_400() {
    let app = spawn_app_with(receiver_only()).await;

    let response = app.post_signed("build.finished", b"{\"build\": ").await;

    assert_eq!(response.status(), 400);
    assert_eq!(body_json(response).await["code"], "invalid_payload");
}

#[tokio::test]
async fn a_build_finished_without_what_it_needs_gets_400_naming_it() {
    let app = spawn_app_with(receiver_only()).await;
    let mut payload = failed_build(6);
    payload["build"].as_object_mut().unwrap().remove("url");
    payload["build"].as_object_mut().unwrap().remove("number");

    let response = app.post_signed("build.finished", payload.to_string().as_bytes()).await;

    assert_eq!(response.status(), 400);
    let message = body_json(response).await["message"].as_str().unwrap().to_owned();
    assert!(message.contains("build.url") && message.contains("build.number"), "{message}");
}

#[tokio::test]
async fn ping_unknown_events_and_passing_builds_are_acknowledged_but_not_queued() {
    let app = spawn_app_with(receiver_only()).await;
    let ping = include_bytes!("../fixtures/buildkite/ping-known-answer.json");
    let mut passed = failed_build(7);
    passed["build"]["state"] = json!("passed");
    let mut canceled = failed_build(8);
    canceled["build"]["state"] = json!("canceled");

    let responses = [
        app.post_signed("ping", ping).await,
        app.post_signed("job.finished", br#"{"event":"job.finished"}"#).await,
        app.post_signed("something.new", br#"{"event":"something.new"}"#).await,
        app.post_signed("build.finished", passed.to_string().as_bytes()).await,
        app.post_signed("build.finished", canceled.to_string().as_bytes()).await,
    ];

    for response in responses {
        assert_eq!(response.status(), 200);
    }
    let metrics = app.metrics().await;
    assert_eq!(metric(&metrics, "kitefix_queue_depth{state=\"ready\"}"), Some(0.0));
    assert_eq!(
        metric(&metrics, "kitefix_webhooks_total{event=\"ping\",outcome=\"ping\"}"),
        Some(1.0)
    );
    assert_eq!(
        metric(&metrics, "kitefix_webhooks_total{event=\"job\",outcome=\"ignored\"}"),
        Some(1.0)
    );
    assert_eq!(
        metric(&metrics, "kitefix_webhooks_total{event=\"other\",outcome=\"ignored\"}"),
        Some(1.0)
    );
    assert_eq!(
        metric(&metrics, "kitefix_webhooks_total{event=\"build.finished\",outcome=\"ignored\"}"),
        Some(2.0)
    );
}

#[tokio::test]
async fn the_worker_records_each_received_build() {
    let app = spawn_app().await;
    let payload = failed_build(9);
    let key = dedupe_key(&payload);

    let response = app.post_signed("build.finished", payload.to_string().as_bytes()).await;

    assert_eq!(response.status(), 202);
    let store = app.store.clone();
    let received = app
        .eventually(Duration::from_secs(10), || {
            let store = store.clone();
            let key = key.clone();
            async move { store.build_state(&key).await.unwrap() == Some(BuildState::Skipped) }
        })
        .await;
    assert!(received, "the worker never recorded the build");
    let record = app.store.build(&key).await.unwrap().unwrap();
    assert_eq!(record.attempts, 1);
    let depth_empty = app
        .eventually(Duration::from_secs(5), || async {
            metric(&app.metrics().await, "kitefix_queue_depth{state=\"ready\"}") == Some(0.0)
        })
        .await;
    assert!(depth_empty);
    let metrics = app.metrics().await;
    assert_eq!(metric(&metrics, "kitefix_queue_messages_total{outcome=\"consumed\"}"), Some(1.0));
    assert_eq!(metric(&metrics, "kitefix_queue_messages_total{outcome=\"acked\"}"), Some(1.0));
}

#[tokio::test]
async fn health_readiness_and_metrics_answer() {
    let app = spawn_app().await;

    assert_eq!(app.get("/healthz").await.status(), 200);
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 200);
    assert_eq!(body_json(ready).await["status"], "ready");
    let metrics = app.get("/metrics").await;
    assert_eq!(metrics.status(), 200);
    assert!(metrics.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    assert!(metrics.text().await.unwrap().contains("kitefix_queue_depth"));
}
