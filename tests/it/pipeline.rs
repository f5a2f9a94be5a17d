//! The whole pipeline as a user sees it: a signed `build.finished` webhook → queue
//! (embedded and RabbitMQ) → Buildkite (stub) → classifier → GitHub (stub) receives one
//! check run with the right commit, cause and a redacted excerpt; and what the user sees
//! when Buildkite or the log misbehave.

use std::time::Duration;

use kitefix::store::BuildState;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::helpers::{
    BROKER, QueueKind, REPO, TestApp, TestConfig, dedupe_key, failed_build, metric,
    require_rabbitmq, spawn_app_with, world,
};
use crate::stubs::buildkite::{self as bk, JobSpec};
use crate::stubs::github as gh;

const CHECKOUT: &str = "/var/lib/buildkite-agent/builds/ci-agent-1/acme/web-app";
const DB_URL: &str = "postgres://app:s3cr3t-pass@db:5432/app";
const DEPLOY_KEY: &str = "super-secret-value-123";
const GH_TOKEN: &str = "ghp_abcdefghijklmnopqrstuvwxyz0123456789";

/// A Buildkite job log of a Rust compile failure, with the agent's timestamps, colours
/// and CRLFs, and secrets printed the ways they leak: an env value, an env value split
/// by colour codes, and a token that is in no env at all.
pub(crate) fn compile_failure_log() -> String {
    let t = |ms: u64| format!("\u{1b}_bk;t={ms}\u{7}");
    [
        format!("{}~~~ Running commands\r\n", t(1_764_064_510_000)),
        format!("{}$ cargo test --locked\r\n", t(1_764_064_510_010)),
        format!("{}migrating {DB_URL}\r\n", t(1_764_064_510_020)),
        format!("{}deploy key super-\u{1b}[1msecret-value-\u{1b}[0m123 loaded\r\n", t(1_764_064_510_030)),
        format!("{}curl -H 'Authorization: token {GH_TOKEN}' https://api.github.com/user\r\n", t(1_764_064_510_040)),
        format!("{}\u{1b}[1m\u{1b}[32m   Compiling\u{1b}[0m web-app v0.1.0 ({CHECKOUT})\r\n", t(1_764_064_511_000)),
        format!("{}\u{1b}[0m\u{1b}[1m\u{1b}[38;5;9merror[E0308]\u{1b}[0m\u{1b}[0m\u{1b}[1m: mismatched types\u{1b}[0m\r\n", t(1_764_064_512_000)),
        "  \u{1b}[0m\u{1b}[1m\u{1b}[38;5;12m--> \u{1b}[0m\u{1b}[0msrc/login.rs:42:13\u{1b}[0m\r\n".into(),
        "   |\r\n".into(),
        "42 |     let id: u64 = form.user_id;\r\n".into(),
        "   |             ---   ^^^^^^^^^^^^ expected `u64`, found `String`\r\n".into(),
        "\r\n".into(),
        "\u{1b}[1mFor more information about this error, try `rustc --explain E0308`.\u{1b}[0m\r\n".into(),
        "\u{1b}[1m\u{1b}[31merror\u{1b}[0m: could not compile `web-app` (lib) due to 1 previous error\r\n".into(),
        format!("{}\u{1b}[31m🚨 Error: The command exited with status 101\u{1b}[0m\r\n", t(1_764_064_513_000)),
        "^^^ +++\r\n".into(),
    ]
    .concat()
}

pub(crate) fn env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("BUILDKITE_BUILD_CHECKOUT_PATH", CHECKOUT),
        ("BUILDKITE_BRANCH", "feature/login"),
        ("DATABASE_URL", DB_URL),
        ("DEPLOY_KEY", DEPLOY_KEY),
        ("CI", "true"),
    ]
}

async fn one_check_run_end_to_end(queue: QueueKind) {
    // Arrange: a build whose two jobs fail the same way and a third passes.
    let w = world(queue, true, vec![]).await;
    let payload = failed_build(42);
    let jobs = [
        JobSpec::failed("cargo test (linux)", 101),
        JobSpec::failed("cargo test (macos)", 101),
        JobSpec::passed("lint"),
    ];
    bk::mount_build(&w.buildkite, &payload, &jobs).await;
    for job in &jobs[..2] {
        bk::mount_log(&w.buildkite, 42, job, &compile_failure_log()).await;
        bk::mount_env(&w.buildkite, 42, job, &env()).await;
    }

    // Act: Buildkite delivers the webhook.
    let response = w.app.post_signed("build.finished", payload.to_string().as_bytes()).await;

    // Assert: GitHub has exactly one check run with the cause, redacted.
    assert_eq!(response.status(), 202);
    w.app.drain_queue_within(Duration::from_secs(30)).await;
    assert_eq!(
        w.app.state_of(&payload).await,
        Some(BuildState::Reported),
        "{:#}",
        w.app.analysis_of(&payload).await
    );
    let runs = w.checks.runs();
    assert_eq!(runs.len(), 1, "exactly one check run");
    let run = &runs[0];
    assert_eq!(run["name"], "kitefix");
    assert_eq!(run["head_sha"], payload["build"]["commit"]);
    assert_eq!(run["external_id"], payload["build"]["id"]);
    assert_eq!(run["conclusion"], "failure");
    assert_eq!(run["output"]["title"], "Compile error in `cargo test (linux)` (+1 more job)");
    let everything = run.to_string();
    for secret in [DB_URL, "s3cr3t-pass", DEPLOY_KEY, GH_TOKEN] {
        assert!(!everything.contains(secret), "{secret} reached GitHub");
    }
    let summary = run["output"]["summary"].as_str().unwrap();
    assert!(summary.contains("mismatched types"), "{summary}");
    assert!(
        summary.contains("cargo test (macos)"),
        "the identical failure is listed with the first: {summary}"
    );
    assert!(summary.contains("[REDACTED]"), "the excerpt shows where secrets were: {summary}");
    let annotation = &run["annotations"][0];
    assert_eq!(annotation["path"], "src/login.rs");
    assert_eq!(annotation["start_line"], 42);
    gh::assert_check_run_bodies_match_schemas(&w.github, REPO).await;

    // What the admin API shows: one analysed failure, two jobs, no secret.
    let stored = w.app.analysis_of(&payload).await;
    assert_eq!(stored["state"], "reported");
    assert_eq!(stored["report"]["jobs"].as_array().unwrap().len(), 1);
    assert_eq!(stored["report"]["jobs"][0]["analysis"]["category"], "compile");
    assert_eq!(
        stored["report"]["jobs"][0]["failing_step"], "Running commands",
        "`^^^ +++` expands the group the failure was in"
    );
    assert_eq!(stored["report"]["jobs"][0]["checkout_path"], CHECKOUT);
    assert!(!stored.to_string().contains("s3cr3t-pass"));

    // A second delivery of the same webhook changes nothing.
    let again = w.app.post_signed("build.finished", payload.to_string().as_bytes()).await;
    assert_eq!(again.status(), 200);
    // The same build finishing again (a job retried) updates the same check run.
    let mut refinished = payload.clone();
    refinished["build"]["finished_at"] = json!("2026-11-25T10:30:00.000Z");
    assert_eq!(
        w.app.post_signed("build.finished", refinished.to_string().as_bytes()).await.status(),
        202
    );
    w.app.drain_queue_within(Duration::from_secs(30)).await;
    assert_eq!(w.app.state_of(&refinished).await, Some(BuildState::Reported));
    assert_eq!(w.checks.runs().len(), 1, "re-processing must update the run, not add one");
    let posts = w
        .github
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.method.as_str() == "POST" && r.url.path().ends_with("/check-runs"))
        .count();
    assert_eq!(posts, 1);
    let metrics = w.app.metrics().await;
    assert_eq!(metric(&metrics, "kitefix_check_runs_total{conclusion=\"failure\"}"), Some(2.0));
    assert_eq!(metric(&metrics, "kitefix_jobs_analysed_total{category=\"compile\"}"), Some(4.0));
}

#[tokio::test]
async fn a_failed_build_becomes_one_redacted_check_run_embedded() {
    one_check_run_end_to_end(QueueKind::Embedded).await;
}

#[tokio::test]
async fn a_failed_build_becomes_one_redacted_check_run_rabbitmq() {
    if !require_rabbitmq().await {
        return;
    }
    let _shared = BROKER.read().await;
    one_check_run_end_to_end(QueueKind::RabbitMq).await;
}

#[tokio::test]
async fn without_a_github_app_the_check_run_is_stored_not_posted() {
    let w = world(QueueKind::Embedded, false, vec![]).await;
    let payload = failed_build(43);
    let job = JobSpec::failed("cargo test", 101);
    bk::mount_build(&w.buildkite, &payload, std::slice::from_ref(&job)).await;
    bk::mount_log(&w.buildkite, 43, &job, &compile_failure_log()).await;
    bk::mount_env(&w.buildkite, 43, &job, &env()).await;

    w.app.post_signed("build.finished", payload.to_string().as_bytes()).await;

    w.app.drain_queue_within(Duration::from_secs(30)).await;
    assert_eq!(w.app.state_of(&payload).await, Some(BuildState::Reported));
    assert!(w.github.received_requests().await.unwrap().is_empty(), "dry-run posts nothing");
    let stored = w.app.analysis_of(&payload).await;
    assert!(stored["reason"].as_str().unwrap().contains("dry-run"));
    assert_eq!(stored["check_run"]["title"], "Compile error in `cargo test`");
    assert_eq!(stored["check_run"]["head_sha"], payload["build"]["commit"]);
    assert!(!stored.to_string().contains(DEPLOY_KEY));
}

#[tokio::test]
async fn a_deleted_log_is_reported_as_unavailable_and_the_check_run_still_goes_out() {
    let w = world(QueueKind::Embedded, true, vec![]).await;
    let payload = failed_build(44);
    let job = JobSpec::failed("integration tests", 1);
    bk::mount_build(&w.buildkite, &payload, std::slice::from_ref(&job)).await;
    bk::mount_env(&w.buildkite, 44, &job, &env()).await;
    Mock::given(method("GET"))
        .and(path(bk::log_path(44, &job)))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({"message": "No job found"})))
        .mount(&w.buildkite)
        .await;

    w.app.post_signed("build.finished", payload.to_string().as_bytes()).await;

    w.app.drain_queue_within(Duration::from_secs(30)).await;
    assert_eq!(w.app.state_of(&payload).await, Some(BuildState::Reported));
    let runs = w.checks.runs();
    assert_eq!(runs.len(), 1);
    let summary = runs[0]["output"]["summary"].as_str().unwrap();
    assert!(summary.contains("No job found"), "{summary}");
}

/// Waits for the build to reach `state` and returns the recorded reason.
async fn reason_when(app: &TestApp, payload: &Value, state: BuildState) -> String {
    app.drain_queue().await;
    assert_eq!(app.state_of(payload).await, Some(state), "{:#}", app.analysis_of(payload).await);
    app.store.build(&dedupe_key(payload)).await.unwrap().unwrap().reason.unwrap_or_default()
}

#[tokio::test]
async fn a_revoked_token_is_recorded_as_the_reason_and_not_retried() {
    let w = world(QueueKind::Embedded, true, vec![]).await;
    let payload = failed_build(45);
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(401).set_body_json(
            json!({"message": "Authentication required. Please supply a valid API Access Token"}),
        ))
        .expect(1)
        .mount(&w.buildkite)
        .await;

    w.app.post_signed("build.finished", payload.to_string().as_bytes()).await;

    let reason = reason_when(&w.app, &payload, BuildState::Failed).await;
    assert!(reason.contains("401"), "{reason}");
    assert!(!reason.contains(bk::API_TOKEN));
    assert!(w.checks.runs().is_empty());
}

#[tokio::test]
async fn a_missing_scope_is_named_in_the_recorded_reason() {
    let w = world(QueueKind::Embedded, true, vec![]).await;
    let payload = failed_build(46);
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(403).set_body_json(
            json!({"message": "Your access token doesn't have the read_builds scope"}),
        ))
        .mount(&w.buildkite)
        .await;

    w.app.post_signed("build.finished", payload.to_string().as_bytes()).await;

    let reason = reason_when(&w.app, &payload, BuildState::Failed).await;
    assert!(reason.contains("read_builds"), "{reason}");
}

#[tokio::test]
async fn a_server_error_storm_is_retried_then_dead_lettered() {
    let w = world(QueueKind::Embedded, true, vec![("queue.max_attempts", json!(2))]).await;
    let payload = failed_build(47);
    Mock::given(method("GET")).respond_with(ResponseTemplate::new(502)).mount(&w.buildkite).await;

    w.app.post_signed("build.finished", payload.to_string().as_bytes()).await;

    // The first retry waits a jittered 2.5–5 s backoff.
    let reason = reason_when(&w.app, &payload, BuildState::Dead).await;
    assert!(reason.contains("gave up after 2 attempts") && reason.contains("502"), "{reason}");
    let calls = w.buildkite.received_requests().await.unwrap().len();
    assert_eq!(calls, 2, "one request per attempt, no retry storm inside an attempt");
    let metrics = w.app.metrics().await;
    assert_eq!(metric(&metrics, "kitefix_queue_messages_total{outcome=\"retried\"}"), Some(1.0));
}

#[tokio::test]
async fn a_rate_limit_is_waited_out_then_the_build_is_analysed() {
    let w = world(QueueKind::Embedded, true, vec![]).await;
    let payload = failed_build(48);
    let job = JobSpec::failed("cargo test", 101);
    // The first call is refused with the documented 429; the reset is a second away.
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("RateLimit-Remaining", "0")
                .insert_header("RateLimit-Limit", "200")
                .insert_header("RateLimit-Reset", "1")
                .set_body_json(
                    json!({"message": "You have exceeded your API rate limit.", "scope": "rest"}),
                ),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&w.buildkite)
        .await;
    bk::mount_build(&w.buildkite, &payload, std::slice::from_ref(&job)).await;
    bk::mount_log(&w.buildkite, 48, &job, &compile_failure_log()).await;
    bk::mount_env(&w.buildkite, 48, &job, &env()).await;

    let posted = std::time::Instant::now();
    w.app.post_signed("build.finished", payload.to_string().as_bytes()).await;

    w.app.drain_queue_within(Duration::from_secs(30)).await;
    assert_eq!(w.app.state_of(&payload).await, Some(BuildState::Reported));
    assert_eq!(w.checks.runs().len(), 1);
    // Nothing was asked again before the reset: whether the client slept until then or the
    // machine was slow enough that the reset had passed, the build took at least that long.
    assert!(posted.elapsed() >= Duration::from_millis(900), "{:?}", posted.elapsed());
    let metrics = w.app.metrics().await;
    let get_build = |status: &str| {
        metric(
            &metrics,
            &format!(
                "kitefix_buildkite_requests_total{{endpoint=\"get_build\",status=\"{status}\"}}"
            ),
        )
    };
    assert_eq!((get_build("429"), get_build("200")), (Some(1.0), Some(1.0)), "{metrics}");
}

#[tokio::test]
async fn a_pipeline_not_on_github_is_skipped_with_the_reason() {
    let w = world(QueueKind::Embedded, true, vec![]).await;
    let mut payload = failed_build(49);
    payload["pipeline"]["provider"] = json!({"id": "gitlab", "settings": {}});
    payload["pipeline"]["repository"] = json!("git@gitlab.com:acme/web-app.git");

    w.app.post_signed("build.finished", payload.to_string().as_bytes()).await;

    let reason = reason_when(&w.app, &payload, BuildState::Skipped).await;
    assert!(reason.contains("gitlab.com"), "{reason}");
    assert!(
        w.buildkite.received_requests().await.unwrap().is_empty(),
        "nothing fetched for a build that cannot be reported"
    );
}

#[tokio::test]
async fn a_log_of_hundreds_of_mib_is_streamed_and_its_failure_found_at_the_end() {
    // A 300 MiB log of harmless build output with the failure (and a secret) at the end.
    const FILLER: u64 = 300 << 20;
    const TAIL: &str = "error[E0425]: cannot find value `tokn` in this scope\r\n  --> src/auth.rs:7:9\r\nsecret was super-secret-value-123\r\nerror: could not compile `web-app` (lib) due to 1 previous error\r\n";
    let payload = failed_build(50);
    let job = JobSpec::failed("cargo build", 101);
    let env: serde_json::Map<String, Value> =
        env().into_iter().map(|(k, v)| (k.into(), json!(v))).collect();
    let streaming = bk::StreamingBuildkite::start(
        bk::build_json(&payload, std::slice::from_ref(&job)),
        json!({ "env": env }),
        FILLER,
        TAIL,
    )
    .await;
    let app = spawn_app_with(TestConfig {
        processor: None,
        overrides: vec![
            ("buildkite.api_url", json!(streaming.uri)),
            ("buildkite.token", json!(bk::API_TOKEN)),
        ],
        ..Default::default()
    })
    .await;

    app.post_signed("build.finished", payload.to_string().as_bytes()).await;

    app.drain_queue_within(Duration::from_secs(300)).await;
    assert_eq!(
        app.state_of(&payload).await,
        Some(BuildState::Reported),
        "{:#}",
        app.analysis_of(&payload).await
    );
    let stored = app.analysis_of(&payload).await;
    let job = &stored["report"]["jobs"][0];
    assert_eq!(job["log_bytes"], FILLER + TAIL.len() as u64, "every byte was read");
    assert_eq!(job["analysis"]["category"], "compile", "{job:#}");
    assert_eq!(job["analysis"]["locations"][0]["path"], "src/auth.rs");
    let excerpt = job["analysis"]["excerpt"]["text"].as_str().unwrap();
    assert!(excerpt.contains("cannot find value") && !excerpt.contains(DEPLOY_KEY), "{excerpt}");
}
