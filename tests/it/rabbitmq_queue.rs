//! The RabbitMQ queue against the real broker: confirms, retries, dead letters, the
//! delivery limit, and what happens when the broker goes away and comes back.

use std::collections::HashSet;
use std::time::Duration;

use kitefix::queue::rabbitmq::RabbitMqQueue;
use kitefix::queue::{Queue, QueueMessage};
use kitefix::startup::Role;
use kitefix::store::BuildState;
use lapin::options::{BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use serde_json::json;

use crate::embedded_queue::{gives_up_after_max_attempts, retries_then_succeeds};
use crate::helpers::{
    BROKER, QueueKind, RABBITMQ_URL, StoreKind, TestConfig, dedupe_key, failed_build, failed_event,
    metric, rabbit_options, require_rabbitmq, spawn_app_with, wait_for_state,
};

fn rabbit(role: Role) -> TestConfig {
    TestConfig { queue: QueueKind::RabbitMq, role, ..Default::default() }
}

/// Runs `rabbitmqctl` off the test's runtime: blocking it for the seconds a broker
/// takes to stop would freeze the app's publisher and the client's connections too.
async fn rabbitmqctl(args: &'static [&'static str]) {
    let status = tokio::task::spawn_blocking(move || {
        std::process::Command::new("rabbitmqctl").args(args).status()
    })
    .await
    .unwrap()
    .expect("rabbitmqctl runs");
    assert!(status.success(), "rabbitmqctl {args:?} failed");
}

/// Starts the broker's app again even if the test fails half-way.
struct BrokerRestorer;

impl Drop for BrokerRestorer {
    fn drop(&mut self) {
        let _ = std::process::Command::new("rabbitmqctl").arg("start_app").status();
    }
}

#[tokio::test]
async fn a_webhook_is_published_consumed_and_recorded() {
    if !require_rabbitmq().await {
        return;
    }
    let _shared = BROKER.read().await;
    let app = spawn_app_with(rabbit(Role::All)).await;
    let payload = failed_build(1);

    let response = app.post_signed("build.finished", payload.to_string().as_bytes()).await;

    assert_eq!(response.status(), 202);
    assert!(wait_for_state(&app, &payload, BuildState::Skipped, Duration::from_secs(15)).await);
    let acked = app
        .eventually(Duration::from_secs(5), || async {
            metric(&app.metrics().await, "kitefix_queue_messages_total{outcome=\"acked\"}")
                == Some(1.0)
        })
        .await;
    assert!(acked);
}

#[tokio::test]
async fn transient_failures_go_through_the_delayed_retry_queue() {
    if !require_rabbitmq().await {
        return;
    }
    let _shared = BROKER.read().await;
    retries_then_succeeds(StoreKind::Sqlite, QueueKind::RabbitMq).await;
}

#[tokio::test]
async fn repeated_failures_land_in_the_dead_letter_queue() {
    if !require_rabbitmq().await {
        return;
    }
    let _shared = BROKER.read().await;
    gives_up_after_max_attempts(StoreKind::Sqlite, QueueKind::RabbitMq).await;
}

#[tokio::test]
async fn a_message_that_keeps_killing_its_consumer_is_dead_lettered_by_the_broker() {
    if !require_rabbitmq().await {
        return;
    }
    let _shared = BROKER.read().await;
    let prefix = format!("kitefix-it-{}", uuid::Uuid::new_v4().simple());
    let queue = RabbitMqQueue::start(rabbit_options(&prefix, 2));
    queue.publish(&QueueMessage::new(failed_event(2), None)).await.unwrap();

    // A consumer takes the message and dies (its channel closes) without acking, past
    // the queue's x-delivery-limit.
    let connection = lapin::Connection::connect(RABBITMQ_URL, Default::default()).await.unwrap();
    for _ in 0..3 {
        let channel = connection.create_channel().await.unwrap();
        channel.basic_qos(1, BasicQosOptions::default()).await.unwrap();
        let mut consumer = channel
            .basic_consume(
                format!("{prefix}.builds").into(),
                "crasher".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        use futures::StreamExt;
        if tokio::time::timeout(Duration::from_secs(3), consumer.next()).await.is_err() {
            break; // nothing left to deliver
        }
        channel.close(200, "simulated crash".into()).await.unwrap();
    }

    let mut dead = 0;
    for _ in 0..50 {
        dead = queue.depth().await.unwrap().dead;
        if dead == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ready = queue.depth().await.unwrap().ready;
    queue.delete_topology().await.unwrap();
    assert_eq!(dead, 1, "x-delivery-limit should move the poison message to {prefix}.dead");
    assert_eq!(ready, 0);
}

#[tokio::test]
async fn an_unroutable_publish_is_a_failure_not_a_success() {
    if !require_rabbitmq().await {
        return;
    }
    let _shared = BROKER.read().await;
    let app = spawn_app_with(rabbit(Role::Receiver)).await;
    // Connect and declare the topology, then cut the only route to the queue.
    assert_eq!(
        app.post_signed("build.finished", failed_build(3).to_string().as_bytes()).await.status(),
        202
    );
    let prefix = &app.shared.queue_prefix;
    let connection = lapin::Connection::connect(RABBITMQ_URL, Default::default()).await.unwrap();
    let channel = connection.create_channel().await.unwrap();
    channel
        .queue_unbind(
            format!("{prefix}.builds").into(),
            format!("{prefix}.work").into(),
            "build".into(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let payload = failed_build(4);

    let response = app.post_signed("build.finished", payload.to_string().as_bytes()).await;

    assert_eq!(response.status(), 503, "the broker acked a returned message; that is not durable");
    assert_eq!(
        app.store.build_state(&dedupe_key(&payload)).await.unwrap(),
        None,
        "nothing recorded"
    );
}

#[tokio::test]
async fn a_stopped_broker_means_503_quickly_then_recovery() {
    if !require_rabbitmq().await {
        return;
    }
    let _exclusive = BROKER.write().await;
    let app = spawn_app_with(TestConfig {
        overrides: vec![("queue.publish_timeout_ms", json!(1500))],
        ..rabbit(Role::Receiver)
    })
    .await;
    assert_eq!(
        app.post_signed("build.finished", failed_build(5).to_string().as_bytes()).await.status(),
        202
    );

    let restorer = BrokerRestorer;
    rabbitmqctl(&["stop_app"]).await;
    let payload = failed_build(6);
    let started = std::time::Instant::now();
    let during = app.post_signed("build.finished", payload.to_string().as_bytes()).await;
    let waited = started.elapsed();
    let ready = app.get("/readyz").await.status();
    rabbitmqctl(&["start_app"]).await;
    drop(restorer);

    assert_eq!(during.status(), 503);
    assert!(
        waited < Duration::from_secs(5),
        "a publish during an outage must not hang ({waited:?})"
    );
    assert_eq!(ready, 503);
    assert_eq!(app.store.build_state(&dedupe_key(&payload)).await.unwrap(), None);

    // Once the broker is back the same delivery is accepted.
    let recovered = app
        .eventually(Duration::from_secs(30), || async {
            app.post_signed("build.finished", payload.to_string().as_bytes()).await.status() == 202
        })
        .await;
    assert!(recovered, "publishing did not recover after the broker came back");
}

#[tokio::test]
async fn a_broker_restart_while_serving_loses_no_confirmed_event() {
    if !require_rabbitmq().await {
        return;
    }
    let _exclusive = BROKER.write().await;
    let receiver = spawn_app_with(TestConfig {
        overrides: vec![("queue.publish_timeout_ms", json!(2000))],
        ..rabbit(Role::Receiver)
    })
    .await;
    let restorer = BrokerRestorer;

    // Send webhooks continuously while the broker restarts in the middle.
    let sender = {
        let client = receiver.client.clone();
        let address = receiver.address.clone();
        tokio::spawn(async move {
            let mut accepted = Vec::new();
            let mut refused = 0;
            for n in 0..150u64 {
                let payload = failed_build(1000 + n);
                let body = payload.to_string();
                let header = kitefix::webhook::signature::sign(
                    crate::helpers::WEBHOOK_TOKEN,
                    chrono::Utc::now().timestamp(),
                    body.as_bytes(),
                );
                let status = client
                    .post(format!("{address}/webhooks/buildkite"))
                    .header("X-Buildkite-Event", "build.finished")
                    .header("X-Buildkite-Signature", header)
                    .body(body)
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
                    .unwrap_or(0);
                if status == 202 {
                    accepted.push(payload);
                } else {
                    refused += 1;
                }
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
            (accepted, refused)
        })
    };
    tokio::time::sleep(Duration::from_millis(1500)).await;
    rabbitmqctl(&["stop_app"]).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    rabbitmqctl(&["start_app"]).await;
    let (accepted, refused) = sender.await.unwrap();
    drop(restorer);
    eprintln!("broker restart: {} accepted, {refused} refused with 503", accepted.len());
    assert!(
        refused > 0,
        "the restart should have caused some 503s; the test did not exercise an outage"
    );
    assert!(accepted.len() > 50, "too few accepted events to prove anything");

    // Every event that got 202 reaches a worker.
    let shared = receiver.stop().await;
    let worker = spawn_app_with(TestConfig { reuse: Some(shared), ..rabbit(Role::Worker) }).await;
    let wanted: HashSet<_> = accepted.iter().map(dedupe_key).collect();
    let all_received = worker
        .eventually(Duration::from_secs(60), || async {
            let mut done = 0;
            for key in &wanted {
                if worker.store.build_state(key).await.unwrap() == Some(BuildState::Skipped) {
                    done += 1;
                }
            }
            done == wanted.len()
        })
        .await;
    assert!(all_received, "an event acknowledged with 202 was lost across the broker restart");
}
