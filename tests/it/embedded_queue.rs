//! The embedded queue end to end: durable across restarts, retries, dead letters, and
//! redelivery after a worker dies. Run against both SQLite and PostgreSQL.

use std::time::Duration;

use kitefix::queue::embedded::EmbeddedQueue;
use kitefix::queue::{Queue, QueueMessage};
use kitefix::startup::Role;
use kitefix::store::BuildState;
use kitefix::worker::Outcome;
use serde_json::json;

use crate::helpers::{
    QueueKind, Scripted, StoreKind, TestConfig, failed_build, failed_event, metric,
    require_postgres, spawn_app_with, test_store,
};

async fn survives_a_restart(store: StoreKind) {
    // Arrange: a receiver accepts five builds, then stops before any worker runs.
    let receiver =
        spawn_app_with(TestConfig { store, role: Role::Receiver, ..Default::default() }).await;
    let payloads: Vec<_> = (1..=5).map(failed_build).collect();
    for p in &payloads {
        assert_eq!(
            receiver.post_signed("build.finished", p.to_string().as_bytes()).await.status(),
            202
        );
    }
    let shared = receiver.stop().await;

    // Act: a worker starts on the same database.
    let worker = spawn_app_with(TestConfig {
        store,
        role: Role::Worker,
        reuse: Some(shared),
        ..Default::default()
    })
    .await;

    // Assert: every accepted build is processed.
    worker.drain_queue_within(Duration::from_secs(10)).await;
    for p in &payloads {
        assert_eq!(worker.state_of(p).await, Some(BuildState::Skipped));
    }
}

#[tokio::test]
async fn accepted_builds_survive_a_restart_sqlite() {
    survives_a_restart(StoreKind::Sqlite).await;
}

#[tokio::test]
async fn accepted_builds_survive_a_restart_postgres() {
    if require_postgres().await {
        survives_a_restart(StoreKind::Postgres).await;
    }
}

pub async fn retries_then_succeeds(store: StoreKind, queue: QueueKind) {
    let processor = Scripted::new(vec![
        Outcome::Retry {
            delay: Some(Duration::from_millis(100)),
            reason: "Buildkite answered 502".into(),
        },
        Outcome::Reported { note: None },
    ]);
    let app = spawn_app_with(TestConfig {
        store,
        queue,
        processor: Some(processor.clone()),
        ..Default::default()
    })
    .await;
    let payload = failed_build(21);

    app.post_signed("build.finished", payload.to_string().as_bytes()).await;

    app.drain_queue_within(Duration::from_secs(30)).await;
    assert_eq!(app.state_of(&payload).await, Some(BuildState::Reported));
    assert_eq!(processor.calls(), 2);
    // The state is recorded before the ack, so the ack's counter may trail it a little.
    let settled = app
        .eventually(Duration::from_secs(5), || async {
            let metrics = app.metrics().await;
            metric(&metrics, "kitefix_queue_messages_total{outcome=\"retried\"}") == Some(1.0)
                && metric(&metrics, "kitefix_queue_messages_total{outcome=\"acked\"}") == Some(1.0)
        })
        .await;
    assert!(settled, "one retry and one ack expected:\n{}", app.metrics().await);
    let record = app.store.build(&crate::helpers::dedupe_key(&payload)).await.unwrap().unwrap();
    assert_eq!(record.attempts, 2);
}

#[tokio::test]
async fn transient_failures_are_retried_sqlite() {
    retries_then_succeeds(StoreKind::Sqlite, QueueKind::Embedded).await;
}

#[tokio::test]
async fn transient_failures_are_retried_postgres() {
    if require_postgres().await {
        retries_then_succeeds(StoreKind::Postgres, QueueKind::Embedded).await;
    }
}

pub async fn gives_up_after_max_attempts(store: StoreKind, queue: QueueKind) {
    let processor = Scripted::new(vec![Outcome::Retry {
        delay: Some(Duration::from_millis(50)),
        reason: "Buildkite answered 503".into(),
    }]);
    let app = spawn_app_with(TestConfig {
        store,
        queue,
        processor: Some(processor.clone()),
        overrides: vec![("queue.max_attempts", json!(3))],
        ..Default::default()
    })
    .await;
    let payload = failed_build(22);

    app.post_signed("build.finished", payload.to_string().as_bytes()).await;

    app.drain_queue().await;
    assert_eq!(app.state_of(&payload).await, Some(BuildState::Dead));
    assert_eq!(processor.calls(), 3);
    let record = app.store.build(&crate::helpers::dedupe_key(&payload)).await.unwrap().unwrap();
    let reason = record.reason.unwrap();
    assert!(reason.contains("gave up after 3 attempts") && reason.contains("503"), "{reason}");
    let dead_counted = app
        .eventually(Duration::from_secs(10), || async {
            metric(&app.metrics().await, "kitefix_queue_depth{state=\"dead\"}") == Some(1.0)
        })
        .await;
    assert!(dead_counted, "the dead letter is not visible in kitefix_queue_depth");
}

#[tokio::test]
async fn repeated_failures_are_dead_lettered_with_the_reason_sqlite() {
    gives_up_after_max_attempts(StoreKind::Sqlite, QueueKind::Embedded).await;
}

#[tokio::test]
async fn repeated_failures_are_dead_lettered_with_the_reason_postgres() {
    if require_postgres().await {
        gives_up_after_max_attempts(StoreKind::Postgres, QueueKind::Embedded).await;
    }
}

async fn redelivers_after_the_lease_expires(kind: StoreKind) {
    let Some((store, _dir)) = test_store(kind).await else { return };
    let queue = EmbeddedQueue::new(store.db().clone(), Duration::from_millis(300), 5);
    let message = QueueMessage::new(failed_event(31), None);
    queue.publish(&message).await.unwrap();

    // A worker takes the message and dies without settling it.
    let first = queue.receive().await.unwrap();
    assert_eq!(first.attempt, 1);
    drop(first);
    let depth = queue.depth().await.unwrap();
    assert_eq!((depth.ready, depth.in_flight), (0, 1));

    // Once the lease expires, another worker gets it.
    let second = tokio::time::timeout(Duration::from_secs(5), queue.receive())
        .await
        .expect("redelivered")
        .unwrap();
    assert_eq!(second.message, message);
    assert_eq!(second.attempt, 2);
    second.ack().await.unwrap();
    assert_eq!(queue.depth().await.unwrap(), Default::default());
}

#[tokio::test]
async fn a_dead_workers_message_is_delivered_again_sqlite() {
    redelivers_after_the_lease_expires(StoreKind::Sqlite).await;
}

#[tokio::test]
async fn a_dead_workers_message_is_delivered_again_postgres() {
    redelivers_after_the_lease_expires(StoreKind::Postgres).await;
}

async fn poison_is_parked(kind: StoreKind) {
    let Some((store, _dir)) = test_store(kind).await else { return };
    // Leased and lost more often than allowed: a message that kills its worker.
    let queue = EmbeddedQueue::new(store.db().clone(), Duration::from_millis(100), 2);
    queue.publish(&QueueMessage::new(failed_event(32), None)).await.unwrap();
    for _ in 0..2 {
        drop(queue.receive().await.unwrap());
        tokio::time::sleep(Duration::from_millis(150)).await;
    }

    let next = tokio::time::timeout(Duration::from_millis(800), queue.receive()).await;

    assert!(next.is_err(), "a message past its delivery limit must not be delivered again");
    assert_eq!(queue.depth().await.unwrap().dead, 1);
}

#[tokio::test]
async fn a_message_that_keeps_killing_workers_is_dead_lettered_sqlite() {
    poison_is_parked(StoreKind::Sqlite).await;
}

#[tokio::test]
async fn a_message_that_keeps_killing_workers_is_dead_lettered_postgres() {
    poison_is_parked(StoreKind::Postgres).await;
}

#[tokio::test]
async fn parallel_workers_never_get_the_same_message_postgres() {
    let Some((store, _dir)) = test_store(StoreKind::Postgres).await else { return };
    let queue =
        std::sync::Arc::new(EmbeddedQueue::new(store.db().clone(), Duration::from_secs(60), 5));
    for n in 0..40 {
        queue.publish(&QueueMessage::new(failed_event(100 + n), None)).await.unwrap();
    }

    let mut takers = Vec::new();
    for _ in 0..8 {
        let queue = queue.clone();
        takers.push(tokio::spawn(async move {
            let mut got = Vec::new();
            while let Ok(Ok(d)) =
                tokio::time::timeout(Duration::from_millis(500), queue.receive()).await
            {
                got.push(d.message.dedupe_key.to_string());
                d.ack().await.unwrap();
            }
            got
        }));
    }
    let mut all = Vec::new();
    for t in takers {
        all.extend(t.await.unwrap());
    }

    assert_eq!(all.len(), 40);
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 40, "a message was delivered to two workers");
}
