//! Graceful shutdown: stop taking work, finish what is in flight, ack nothing unfinished.

use std::time::Duration;

use kitefix::store::BuildState;
use kitefix::worker::Outcome;
use serde_json::json;

use crate::helpers::{Scripted, TestConfig, failed_build, spawn_app_with};

fn done() -> Outcome {
    Outcome::Reported { note: None }
}

#[tokio::test]
async fn a_build_in_flight_is_finished_before_the_process_exits() {
    let processor = Scripted::slow(vec![done()], Duration::from_millis(1500));
    let app =
        spawn_app_with(TestConfig { processor: Some(processor.clone()), ..Default::default() })
            .await;
    let payload = failed_build(1);
    app.post_signed("build.finished", payload.to_string().as_bytes()).await;
    assert!(app.eventually(Duration::from_secs(5), || async { processor.calls() == 1 }).await);

    let store = app.store.clone();
    let shared = app.stop().await;

    // Reopen the same database: the build was finished and acked, not left behind.
    let check = spawn_app_with(TestConfig {
        role: kitefix::startup::Role::Receiver,
        reuse: Some(shared),
        ..Default::default()
    })
    .await;
    assert_eq!(
        check.store.build_state(&crate::helpers::dedupe_key(&payload)).await.unwrap(),
        Some(BuildState::Reported)
    );
    let depth = check.get("/metrics").await.text().await.unwrap();
    assert_eq!(crate::helpers::metric(&depth, "kitefix_queue_depth{state=\"ready\"}"), Some(0.0));
    assert_eq!(
        crate::helpers::metric(&depth, "kitefix_queue_depth{state=\"in_flight\"}"),
        Some(0.0)
    );
    drop(store);
}

#[tokio::test]
async fn a_build_unfinished_at_the_deadline_is_not_acked_and_comes_back() {
    let slow = Scripted::slow(vec![done()], Duration::from_secs(30));
    let app = spawn_app_with(TestConfig {
        processor: Some(slow.clone()),
        overrides: vec![
            ("server.shutdown_grace_secs", json!(1)),
            ("queue.visibility_timeout_secs", json!(5)),
            ("worker.build_timeout_secs", json!(4)),
        ],
        ..Default::default()
    })
    .await;
    let payload = failed_build(2);
    app.post_signed("build.finished", payload.to_string().as_bytes()).await;
    assert!(app.eventually(Duration::from_secs(5), || async { slow.calls() == 1 }).await);

    let shared = app.stop().await;

    // Another worker picks the message up once the abandoned lease expires.
    let fast = Scripted::new(vec![done()]);
    let next = spawn_app_with(TestConfig {
        processor: Some(fast.clone()),
        reuse: Some(shared),
        overrides: vec![
            ("queue.visibility_timeout_secs", json!(5)),
            ("worker.build_timeout_secs", json!(4)),
        ],
        ..Default::default()
    })
    .await;
    next.drain_queue_within(Duration::from_secs(20)).await;
    assert_eq!(next.state_of(&payload).await, Some(BuildState::Reported));
    assert_eq!(fast.calls(), 1);
}
