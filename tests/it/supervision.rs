//! A task that dies takes the application down with it, says which one and why, and
//! `/readyz` reports it while the rest stops.
//!
//! The deaths are real ones, reachable from the configuration today: a reconciler
//! lookback too far back for a calendar date (chrono panics subtracting it) and a
//! verification interval too long for a clock instant (tokio panics adding it). If the
//! config starts refusing those values, these tests need another real way to kill a task.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kitefix::worker::Outcome;
use serde_json::{Value, json};

use crate::helpers::{Scripted, TestConfig, failed_build, spawn_app_with};

/// About 317,000 years: more than chrono can subtract from today.
const LOOKBACK_BEFORE_ANY_DATE: u64 = 10_000_000_000_000;

#[tokio::test]
async fn a_dead_reconciler_stops_the_app_and_readiness_names_it() {
    // A build stays in flight, so the worker has something to finish while going down.
    let slow = Scripted::slow(vec![Outcome::Reported { note: None }], Duration::from_secs(60));
    let mut app = spawn_app_with(TestConfig {
        processor: Some(slow.clone()),
        overrides: vec![
            ("reconciler.interval_secs", json!(30)),
            ("reconciler.lookback_secs", json!(LOOKBACK_BEFORE_ANY_DATE)),
        ],
        ..Default::default()
    })
    .await;
    // The first pass, at start, had no organisation to look at. This build makes `acme`
    // one, so the second pass looks back for it and dies.
    let payload = failed_build(90);
    assert_eq!(
        app.post_signed("build.finished", payload.to_string().as_bytes()).await.status(),
        202
    );
    assert!(app.eventually(Duration::from_secs(10), || async { slow.calls() == 1 }).await);
    assert_eq!(app.get("/readyz").await.status(), 200, "every task runs");

    let mut readiness = None;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(45);
    while readiness.is_none() && tokio::time::Instant::now() < deadline {
        let response = app.get("/readyz").await;
        if response.status() == 503 {
            readiness = Some(response.json::<Value>().await.unwrap());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let Some(readiness) = readiness else { panic!("/readyz never answered 503") };
    assert_eq!(readiness["status"], "unavailable");
    let tasks = readiness["tasks"].as_str().unwrap();
    assert!(tasks.starts_with("reconciler stopped: panicked"), "{readiness}");
    let ended = app.stopped_by_itself(Duration::from_secs(15)).await.expect("the app stopped");
    let error = ended.expect_err("a dead task is a failure").to_string();
    assert!(error.contains("reconciler stopped unexpectedly"), "{error}");
}

#[test]
fn serve_exits_non_zero_naming_the_task_that_died() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_kitefix"))
        .current_dir(dir.path())
        .args(["serve"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("KITEFIX_SERVER__BIND", "127.0.0.1:0")
        // Longer than a clock instant can hold.
        .env("KITEFIX_INTEGRATIONS__VERIFY_INTERVAL_SECS", "10000000000000000000")
        .env("KITEFIX_RECONCILER__INTERVAL_SECS", "0")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();

    let status =
        status.unwrap_or_else(|| panic!("still running 30 s after the task died: {stderr}"));
    assert_eq!(status.code(), Some(1), "{stderr}");
    let logged = stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["message"] == "a task stopped before shutdown was asked for; shutting down")
        .unwrap_or_else(|| panic!("no log line names the dead task: {stderr}"));
    assert_eq!(logged["task"], "integration verifier", "{logged}");
    assert!(logged["cause"].as_str().unwrap().starts_with("panicked"), "{logged}");
    assert!(stderr.contains("kitefix: the integration verifier stopped unexpectedly"), "{stderr}");
}
