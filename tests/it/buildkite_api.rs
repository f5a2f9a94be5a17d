//! The Buildkite client against a wiremock Buildkite speaking the documented REST API
//! (docs/buildkite.md#rest-api): what the worker sees for builds, rate limits, faults, and that the
//! token never leaves the configured host.

use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use kitefix::buildkite::{
    BuildkiteClient, BuildkiteError, BuildkiteMetrics, ClientOptions, JobLog, RateLimitScope,
    TimeoutKind, select,
};
use kitefix::domain::{BuildNumber, BuildPath, JobId, OrgSlug, PipelineSlug};
use kitefix::github::{GitHubHost, repo_from_pipeline};
use prometheus::Registry;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use url::Url;
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const TOKEN: &str = "bkua_0123456789abcdef0123456789abcdef01234567";
const BUILD_PATH: &str = "/v2/organizations/acme/pipelines/web/builds/42";
const JOB: &str = "0190a6f5-3c1d-4c6c-9d6e-1f6f0d1c2a01";

fn token() -> SecretString {
    SecretString::from(TOKEN)
}

fn org() -> OrgSlug {
    OrgSlug::parse("acme").expect("org")
}

/// Build 42 of acme/web.
fn build() -> BuildPath {
    BuildPath {
        org: org(),
        pipeline: PipelineSlug::parse("web").expect("pipeline"),
        number: BuildNumber::new(42),
    }
}

fn job() -> JobId {
    JobId::parse(JOB).expect("job")
}

fn options() -> ClientOptions {
    ClientOptions {
        request_timeout: Duration::from_secs(5),
        max_rate_limit_wait: Duration::from_secs(3),
        ..ClientOptions::default()
    }
}

fn client(server: &MockServer, options: ClientOptions) -> (BuildkiteClient, Registry) {
    let registry = Registry::new();
    let metrics = BuildkiteMetrics::register(&registry).expect("metrics");
    let url = Url::parse(&server.uri()).expect("server url");
    (BuildkiteClient::new(url, options).expect("client").with_metrics(metrics), registry)
}

/// The value of a counter or gauge sample whose labels include all of `labels`.
fn metric(registry: &Registry, name: &str, labels: &[(&str, &str)]) -> f64 {
    let family = registry.gather().into_iter().find(|f| f.name() == name);
    let Some(family) = family else { return 0.0 };
    family
        .get_metric()
        .iter()
        .filter(|m| {
            labels
                .iter()
                .all(|(k, v)| m.get_label().iter().any(|l| l.name() == *k && l.value() == *v))
        })
        // A sample is either a counter or a gauge; the other part reads as zero.
        .map(|m| m.get_counter().get_value() + m.get_gauge().get_value())
        .sum()
}

fn script_job(id: &str, name: &str, state: &str, exit: Option<i64>) -> Value {
    json!({
        "id": id, "graphql_id": "Sm9i", "type": "script", "name": name, "step_key": null,
        "state": state, "exit_status": exit, "soft_failed": false, "signal": null,
        "signal_reason": null, "retried": false, "retried_in_job_id": null, "retries_count": null,
        "retry_source": null, "web_url": format!("https://buildkite.com/acme/web/builds/42#{id}"),
        "log_url": format!("https://api.buildkite.com/v2/organizations/acme/pipelines/web/builds/42/jobs/{id}/log"),
        "raw_log_url": "https://evil.example/steal", "agent": null,
        "created_at": "2026-08-21T10:00:00.000Z", "started_at": "2026-08-21T10:00:05.000Z",
        "finished_at": "2026-08-21T10:03:00.000Z"
    })
}

/// A finished build: one failure, one soft failure, one flaky step (failed then passed
/// on retry), one step that failed twice, a waiter.
fn multi_job_build() -> Value {
    let mut flaky_first =
        script_job("0190a6f5-3c1d-4c6c-9d6e-1f6f0d1c2a03", "integration", "failed", Some(1));
    flaky_first["retried"] = json!(true);
    flaky_first["retried_in_job_id"] = json!("0190a6f5-3c1d-4c6c-9d6e-1f6f0d1c2a04");
    let mut flaky_retry =
        script_job("0190a6f5-3c1d-4c6c-9d6e-1f6f0d1c2a04", "integration", "passed", Some(0));
    flaky_retry["retry_source"] =
        json!({"job_id": "0190a6f5-3c1d-4c6c-9d6e-1f6f0d1c2a03", "retry_type": "automatic"});
    let mut twice_first =
        script_job("0190a6f5-3c1d-4c6c-9d6e-1f6f0d1c2a05", "e2e", "failed", Some(2));
    twice_first["retried"] = json!(true);
    twice_first["retried_in_job_id"] = json!("0190a6f5-3c1d-4c6c-9d6e-1f6f0d1c2a06");
    let twice_second =
        script_job("0190a6f5-3c1d-4c6c-9d6e-1f6f0d1c2a06", "e2e", "timed_out", Some(-1));
    let mut soft =
        script_job("0190a6f5-3c1d-4c6c-9d6e-1f6f0d1c2a07", "lint (optional)", "failed", Some(1));
    soft["soft_failed"] = json!(true);
    json!({
        "id": "f0d1a5e6-1c2b-4e3a-9d8f-0123456789ab", "graphql_id": "QnVpbGQ=",
        "url": "https://api.buildkite.com/v2/organizations/acme/pipelines/web/builds/42",
        "web_url": "https://buildkite.com/acme/web/builds/42", "number": 42, "state": "failed",
        "blocked": false, "cancel_reason": null, "message": "Fix things\n\nlonger body",
        "commit": "1b4c7e2", "branch": "main", "tag": null, "env": {}, "source": "webhook",
        "creator": null, "created_at": "2026-08-21T10:00:00.000Z", "finished_at": "2026-08-21T10:05:00.000Z",
        "meta_data": {"buildkite:git:commit": "1b4c7e2"}, "pull_request": {"id": "7", "base": "main",
        "repository": "https://github.com/acme/web.git"},
        "jobs": [
            script_job(JOB, ":rust: test", "failed", Some(101)),
            {"id": "0190a6f5-3c1d-4c6c-9d6e-1f6f0d1c2a02", "type": "waiter", "state": "passed"},
            flaky_first, flaky_retry, twice_first, twice_second, soft,
        ],
        "pipeline": {"id": "p1", "slug": "web", "name": "Web", "repository": "git@github.com:acme/web.git",
                     "provider": {"id": "github", "webhook_url": "", "settings": {"repository": "acme/web"}}}
    })
}

#[tokio::test]
async fn get_build_returns_jobs_and_selection_picks_latest_failures() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(BUILD_PATH))
        .and(query_param("include_retried_jobs", "true"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .and(header("accept", "application/json"))
        .respond_with(ResponseTemplate::new(200).set_body_json(multi_job_build()))
        .expect(1)
        .mount(&server)
        .await;
    let (client, registry) = client(&server, options());
    let build = client.get_build(&token(), &build()).await.expect("build");
    assert_eq!(build.jobs.len(), 7);
    let repository = build.pipeline.as_ref().and_then(|p| {
        repo_from_pipeline(&p.source(), &GitHubHost::github_com()).ok().map(|r| r.to_string())
    });
    assert_eq!(repository.as_deref(), Some("acme/web"));

    let selection = select(&build);
    let failed: Vec<(&str, usize)> =
        selection.failed.iter().map(|f| (f.job.display_name(), f.earlier_attempts.len())).collect();
    assert_eq!(failed, [(":rust: test", 0), ("e2e", 1)]);
    let flaky: Vec<&str> = selection.flaky.iter().map(|f| f.passed.display_name()).collect();
    assert_eq!(flaky, ["integration"]);
    assert_eq!(
        metric(
            &registry,
            "kitefix_buildkite_requests_total",
            &[("endpoint", "get_build"), ("status", "200")]
        ),
        1.0
    );
}

#[tokio::test]
async fn a_429_with_a_short_reset_waits_and_then_succeeds() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(BUILD_PATH))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("RateLimit-Remaining", "0")
                .insert_header("RateLimit-Limit", "200")
                .insert_header("RateLimit-Reset", "1")
                .set_body_json(json!({"message": "You have exceeded your API rate limit. Please wait 1 seconds before making more requests.",
                                      "scope": "rest", "limit": 200, "current": 201, "reset": 1})),
        )
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(BUILD_PATH))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("RateLimit-Remaining", "199")
                .insert_header("RateLimit-Reset", "60")
                .set_body_json(multi_job_build()),
        )
        .mount(&server)
        .await;
    let (client, registry) = client(&server, options());
    let started = Instant::now();
    let build = client.get_build(&token(), &build()).await.expect("build");
    assert_eq!(build.number.get(), 42);
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "did not wait: {:?}",
        started.elapsed()
    );
    assert_eq!(server.received_requests().await.expect("recorded").len(), 2);
    assert_eq!(metric(&registry, "kitefix_buildkite_rate_limit_waits_total", &[]), 1.0);
    assert_eq!(
        metric(
            &registry,
            "kitefix_buildkite_rate_limit_remaining",
            &[("org", "acme"), ("scope", "organization")]
        ),
        199.0
    );
}

#[tokio::test]
async fn a_429_with_a_long_reset_is_handed_back_and_blocks_only_that_org() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(BUILD_PATH))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("RateLimit-Remaining", "0")
                .insert_header("RateLimit-Reset", "120")
                .set_body_json(
                    json!({"message": "You have exceeded your API rate limit.", "scope": "rest"}),
                ),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v2/organizations/other"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"slug": "other", "name": "Other"})),
        )
        .mount(&server)
        .await;
    let (client, registry) = client(&server, options());
    let started = Instant::now();
    let err = client.get_build(&token(), &build()).await.expect_err("limited");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "held the worker for {:?}",
        started.elapsed()
    );
    let BuildkiteError::RateLimited { retry_after, scope } = &err else { panic!("{err:?}") };
    assert_eq!(*scope, RateLimitScope::Organization);
    assert_eq!(*retry_after, Duration::from_secs(120));
    assert!(err.is_transient());
    assert_eq!(err.retry_after(), Some(Duration::from_secs(120)));

    // The next call for that org is refused locally, without spending a request.
    let again = client.get_build(&token(), &build()).await.expect_err("limited");
    assert!(matches!(again, BuildkiteError::RateLimited { .. }), "{again:?}");
    assert_eq!(server.received_requests().await.expect("recorded").len(), 1);
    // Another organization has its own budget.
    let other = OrgSlug::parse("other").expect("org");
    client.get_organization(&token(), &other).await.expect("other org is not limited");
    assert_eq!(
        metric(&registry, "kitefix_buildkite_rate_limited_total", &[("scope", "organization")]),
        2.0
    );
}

#[tokio::test]
async fn a_spent_user_budget_blocks_that_token_in_every_org() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("RateLimit-Remaining", "150")
                .insert_header("RateLimit-Reset", "30")
                .insert_header("RateLimit-User-Remaining", "0")
                .insert_header("RateLimit-User-Reset", "45")
                .set_body_json(json!({"slug": "acme"})),
        )
        .mount(&server)
        .await;
    let (client, _) = client(&server, options());
    client.get_organization(&token(), &org()).await.expect("first call passes");
    let other = OrgSlug::parse("other").expect("org");
    let err = client.get_organization(&token(), &other).await.expect_err("user budget spent");
    let BuildkiteError::RateLimited { scope, retry_after } = err else { panic!("{err:?}") };
    assert_eq!(scope, RateLimitScope::User);
    assert!(retry_after > Duration::from_secs(40) && retry_after <= Duration::from_secs(45));
    // A different token (another user) is not affected.
    let other_token = SecretString::from("bkua_another_users_token_abcdefghijklmnop");
    client.get_organization(&other_token, &other).await.expect("other user's budget is intact");
    assert_eq!(server.received_requests().await.expect("recorded").len(), 2);
}

#[tokio::test]
async fn a_500_storm_is_transient_and_each_call_sends_one_request() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(500).set_body_string("<html>oops</html>"))
        .mount(&server)
        .await;
    let (client, registry) = client(&server, options());
    for _ in 0..3 {
        let err = client.get_build(&token(), &build()).await.expect_err("500");
        assert!(matches!(err, BuildkiteError::Server { status: 500 }), "{err:?}");
        assert!(err.is_transient());
        assert_eq!(err.retry_after(), None, "the queue picks the backoff");
    }
    assert_eq!(server.received_requests().await.expect("recorded").len(), 3);
    assert_eq!(
        metric(
            &registry,
            "kitefix_buildkite_errors_total",
            &[("endpoint", "get_build"), ("kind", "server")]
        ),
        3.0
    );
}

#[tokio::test]
async fn a_revoked_token_is_permanent_and_its_message_holds_no_token() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({
            "message": format!("Authentication required. Token {TOKEN} is revoked")
        })))
        .mount(&server)
        .await;
    let (client, _) = client(&server, options());
    let err = client.get_build(&token(), &build()).await.expect_err("401");
    let BuildkiteError::Unauthorized { message } = &err else { panic!("{err:?}") };
    assert!(message.starts_with("Authentication required."), "{message}");
    assert!(!err.is_transient());
    for shown in [err.to_string(), format!("{err:?}")] {
        assert!(!shown.contains(TOKEN), "{shown}");
    }
}

#[tokio::test]
async fn a_missing_scope_is_named() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("{BUILD_PATH}/jobs/{JOB}/env")))
        .respond_with(ResponseTemplate::new(403).set_body_json(json!({
            "message": "Your access token doesn't have the read_job_env scope"
        })))
        .mount(&server)
        .await;
    let (client, _) = client(&server, options());
    let err = client.job_env(&token(), &build(), &job()).await.expect_err("403");
    let BuildkiteError::Forbidden { missing_scope, .. } = &err else { panic!("{err:?}") };
    assert_eq!(missing_scope.as_deref(), Some("read_job_env"));
    assert!(!err.is_transient());
}

#[tokio::test]
async fn job_env_values_stay_secret() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("{BUILD_PATH}/jobs/{JOB}/env")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "env": {"CI": "true", "DATABASE_URL": "postgres://app:hunter2hunter2@db/app",
                    "BUILDKITE_BRANCH": "main"}
        })))
        .mount(&server)
        .await;
    let (client, _) = client(&server, options());
    let env = client.job_env(&token(), &build(), &job()).await.expect("env");
    assert!(!format!("{env:?}").contains("hunter2"));
    let db = env
        .iter()
        .find(|(name, _)| *name == "DATABASE_URL")
        .map(|(_, v)| v.expose_secret().to_owned());
    assert_eq!(db.as_deref(), Some("postgres://app:hunter2hunter2@db/app"));
}

#[tokio::test]
async fn a_deleted_log_is_unavailable_not_an_error() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("{BUILD_PATH}/jobs/{JOB}/log")))
        .and(header("accept", "text/plain"))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({"message": "No job found"})))
        .mount(&server)
        .await;
    let (client, registry) = client(&server, options());
    let log =
        client.job_log(&token(), &build(), &job()).await.expect("a missing log is an outcome");
    let JobLog::Unavailable(unavailable) = log else { panic!("{log:?}") };
    assert_eq!((unavailable.status, unavailable.message.as_str()), (404, "No job found"));
    assert_eq!(metric(&registry, "kitefix_buildkite_logs_unavailable_total", &[]), 1.0);
}

#[tokio::test]
async fn a_small_log_streams_as_text() {
    let server = MockServer::start().await;
    let body = "~~~ Running commands\r\n$ cargo test\r\nerror[E0308]: mismatched types\r\n";
    Mock::given(method("GET"))
        .and(path(format!("{BUILD_PATH}/jobs/{JOB}/log")))
        .and(header("accept", "text/plain"))
        .respond_with(ResponseTemplate::new(200).set_body_string(body))
        .mount(&server)
        .await;
    let (client, _) = client(&server, options());
    let log = client.job_log(&token(), &build(), &job()).await.expect("log");
    let JobLog::Available(mut stream) = log else { panic!("{log:?}") };
    assert_eq!(stream.content_length(), Some(body.len() as u64));
    let mut received = Vec::new();
    while let Some(chunk) = futures::StreamExt::next(&mut stream).await {
        received.extend_from_slice(&chunk.expect("chunk"));
    }
    assert_eq!(received, body.as_bytes());
}

#[tokio::test]
async fn a_redirect_is_not_followed_so_the_token_stays_home() {
    let server = MockServer::start().await;
    let stranger = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_string("stolen"))
        .expect(0)
        .mount(&stranger)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{BUILD_PATH}/jobs/{JOB}/log")))
        .respond_with(
            ResponseTemplate::new(302)
                .insert_header("Location", format!("{}/log.txt", stranger.uri())),
        )
        .mount(&server)
        .await;
    let (client, _) = client(&server, options());
    let err = client.job_log(&token(), &build(), &job()).await.expect_err("redirect refused");
    assert!(matches!(err, BuildkiteError::Unexpected { status: 302, .. }), "{err:?}");
    assert!(stranger.received_requests().await.expect("recorded").is_empty());
}

fn failed_build(number: u64) -> Value {
    let mut build = multi_job_build();
    build["number"] = json!(number);
    build
}

#[tokio::test]
async fn failed_builds_are_listed_across_pages_on_the_same_host() {
    let server = MockServer::start().await;
    let list = "/v2/organizations/acme/builds";
    Mock::given(method("GET"))
        .and(path(list))
        .and(query_param("state", "failed"))
        .and(query_param("finished_from", "2026-08-21T09:00:00Z"))
        .and(query_param("per_page", "100"))
        .and(query_param("page", "1"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header(
                    "Link",
                    format!("<{}{list}?page=2&per_page=100&state=failed>; rel=\"next\", <{}{list}?page=2>; rel=\"last\"",
                        server.uri(), server.uri()).as_str(),
                )
                .set_body_json(json!([failed_build(1), failed_build(2)])),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(list))
        .and(query_param("page", "2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([failed_build(3)])))
        .expect(1)
        .mount(&server)
        .await;
    let (client, _) = client(&server, options());
    let since = Utc.with_ymd_and_hms(2026, 8, 21, 9, 0, 0).single().expect("time");
    let builds = client.list_failed_builds(&token(), &org(), since).await.expect("list");
    let numbers: Vec<u64> = builds.iter().map(|b| b.number.get()).collect();
    assert_eq!(numbers, [1, 2, 3]);
}

#[tokio::test]
async fn a_next_link_to_another_host_is_not_followed() {
    let server = MockServer::start().await;
    let stranger = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .expect(0)
        .mount(&stranger)
        .await;
    Mock::given(method("GET"))
        .and(path("/v2/organizations/acme/builds"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header(
                    "Link",
                    format!(
                        "<{}/v2/organizations/acme/builds?page=2>; rel=\"next\"",
                        stranger.uri()
                    )
                    .as_str(),
                )
                .set_body_json(json!([failed_build(1)])),
        )
        .mount(&server)
        .await;
    let (client, _) = client(&server, options());
    let err =
        client.list_failed_builds(&token(), &org(), Utc::now()).await.expect_err("untrusted link");
    assert!(matches!(err, BuildkiteError::UntrustedLink { .. }), "{err:?}");
    assert!(stranger.received_requests().await.expect("recorded").is_empty());
}

#[tokio::test]
async fn a_slow_answer_times_out_as_transient() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"slug": "acme"}))
                .set_delay(Duration::from_secs(3)),
        )
        .mount(&server)
        .await;
    let options = ClientOptions { request_timeout: Duration::from_millis(300), ..options() };
    let (client, _) = client(&server, options);
    let started = Instant::now();
    let err = client.get_organization(&token(), &org()).await.expect_err("timeout");
    assert!(matches!(err, BuildkiteError::Timeout { kind: TimeoutKind::Request, .. }), "{err:?}");
    assert!(err.is_transient());
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn the_access_token_check_reports_scopes() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v2/access-token"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "uuid": "b63254c0-3271-4a98-8270-7cfbd6c2f14e", "scopes": ["read_builds", "read_build_logs"],
            "description": "kitefix", "created_at": "2026-01-01T00:00:00.000Z", "expires_at": null,
            "user": {"name": "CI bot", "email": "ci@acme.test"}
        })))
        .mount(&server)
        .await;
    let (client, _) = client(&server, options());
    let info = client.access_token(&token()).await.expect("token info");
    assert_eq!(info.missing_scopes(kitefix::buildkite::models::REQUIRED_SCOPES), ["read_job_env"]);
}
