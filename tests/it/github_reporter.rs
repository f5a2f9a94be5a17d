//! `GitHubReporter` against a wiremock stand-in for GitHub that answers with GitHub's own
//! example payloads (from `tests/fixtures/github/openapi-subset.json`, extracted from
//! `@octokit/openapi`), and every request body kitefix sends validated against GitHub's
//! published request schema for that operation.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use kitefix::classify::{Analysis, Category, Excerpt, Location};
use kitefix::domain::{
    BuildId, BuildNumber, BuildRef, BuildReport, CommitSha, JobId, JobRef, JobReport, OrgSlug,
    PipelineSlug, RepoFullName,
};
use kitefix::github::{
    GitHubAppConfig, GitHubClient, GitHubError, GitHubMetrics, GitHubReporter, PublishedCheckRun,
};
use kitefix::render::{CheckRunContent, Conclusion};
use serde_json::{Value, json};
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::stubs::github::*;

struct Harness {
    server: MockServer,
    reporter: GitHubReporter,
    metrics: GitHubMetrics,
    checks: Arc<FakeChecks>,
}

impl Harness {
    /// GitHub with the App installed on acme/web (installation 1, GitHub's example).
    async fn start() -> Self {
        let harness = Self::bare(Duration::from_secs(10)).await;
        mount_app(&harness.server, "acme/web").await;
        harness
    }

    /// A server with nothing mounted.
    async fn bare(timeout: Duration) -> Self {
        let server = MockServer::start().await;
        let mut config = GitHubAppConfig::from_key_file(
            url::Url::parse(&server.uri()).unwrap(),
            APP_ID,
            std::path::Path::new(&format!("{FIXTURES}/test-app-private-key.pem")),
        )
        .unwrap();
        config.request_timeout = timeout;
        let metrics = GitHubMetrics::unregistered().unwrap();
        let client = GitHubClient::new(&config, metrics.clone()).unwrap();
        Self {
            server,
            reporter: GitHubReporter::new(Arc::new(client)),
            metrics,
            checks: Arc::default(),
        }
    }

    /// Mounts the stateful check-run endpoints.
    async fn with_checks(self) -> Self {
        mount_checks(&self.server, &self.checks, "acme/web", SHA).await;
        self
    }

    async fn requests(&self, verb: &str, route_prefix: &str) -> Vec<Request> {
        self.server
            .received_requests()
            .await
            .unwrap()
            .into_iter()
            .filter(|r| r.method.as_str() == verb && r.url.path().starts_with(route_prefix))
            .collect()
    }

    /// Checks every check-run body sent so far against GitHub's request schemas.
    async fn assert_bodies_match_schemas(&self) {
        assert_check_run_bodies_match_schemas(&self.server, "acme/web").await;
    }

    /// Publishes `report` as the worker does: rendered once, posted to its repository.
    async fn publish(
        &self,
        report: &BuildReport,
        known: Option<u64>,
    ) -> Result<PublishedCheckRun, GitHubError> {
        let repo = report.build.repository.as_ref().expect("test reports name a repository");
        self.reporter.publish(repo, &CheckRunContent::render(report), known).await
    }

    fn requests_metric(&self, endpoint: &str, status: &str) -> u64 {
        self.metrics.requests.with_label_values(&[endpoint, status]).get()
    }
}

fn test_job(name: &str) -> JobReport {
    JobReport {
        job: JobRef {
            id: JobId::parse("0190c0de-2222-7000-8000-000000000001").unwrap(),
            name: name.into(),
            web_url: Some(format!("https://buildkite.com/acme/web/builds/42#{name}")),
        },
        state: "failed".into(),
        exit_status: Some(101),
        signal_reason: None,
        failing_step: Some(":rust: Test".into()),
        checkout_path: Some("/var/lib/buildkite-agent/builds/agent-1/acme/web".into()),
        log_bytes: 48_213,
        log_unavailable: None,
        analysis: Analysis {
            category: Category::Test,
            confidence: 0.93,
            rule: "rust.test.panicked".into(),
            title: "3 tests failed in kitefix::parser".into(),
            key_line: Some(212),
            excerpt: Some(Excerpt {
                start: 208,
                end: 214,
                text: "running 42 tests\n\
                       test parser::empty ... ok\n\
                       ---- parser::quoted stdout ----\n\
                       connecting with DATABASE_URL=postgres://app:[REDACTED]@db/app\n\
                       thread 'parser::quoted' panicked at src/parser.rs:88:9:\n\
                       assertion `left == right` failed\n\
                       test result: FAILED. 39 passed; 3 failed"
                    .into(),
            }),
            failing_tests: vec![
                "parser::quoted".into(),
                "parser::escaped".into(),
                "parser::nested".into(),
            ],
            locations: vec![Location {
                path: "/var/lib/buildkite-agent/builds/agent-1/acme/web/src/parser.rs".into(),
                line: 88,
                column: Some(9),
                message: "assertion `left == right` failed".into(),
            }],
            secondary: vec![],
        },
        also_failed: vec![],
    }
}

fn test_report(jobs: Vec<JobReport>) -> BuildReport {
    BuildReport {
        build: BuildRef {
            org: OrgSlug::parse("acme").unwrap(),
            pipeline: PipelineSlug::parse("web").unwrap(),
            number: BuildNumber::new(42),
            id: BuildId::parse(BUILD_ID).unwrap(),
            web_url: "https://buildkite.com/acme/web/builds/42".into(),
            commit: CommitSha::parse(SHA).unwrap(),
            branch: "fix/parser".into(),
            pull_request: Some(7),
            repository: Some(RepoFullName::parse("acme/web").unwrap()),
        },
        jobs,
        flaky: vec![],
    }
}

#[tokio::test]
async fn app_flow_creates_one_check_run_on_the_head_sha_with_the_excerpt() {
    let gh = Harness::start().await.with_checks().await;

    let published = gh.publish(&test_report(vec![test_job("unit")]), None).await.unwrap();

    assert_eq!(published.id, 4);
    assert_eq!(published.html_url.as_deref(), Some("https://github.com/acme/web/runs/4"));
    assert_eq!(published.conclusion, Conclusion::Failure);
    // The installation is looked up with the App's JWT, the token minted with it, and the
    // check run written with the installation token.
    let lookup = &gh.requests("GET", "/repos/acme/web/installation").await[0];
    let jwt = lookup.headers.get("authorization").unwrap().to_str().unwrap();
    assert!(jwt.starts_with("Bearer ey") && jwt.matches('.').count() == 2, "{jwt}");
    let mint = &gh.requests("POST", "/app/installations/1/access_tokens").await[0];
    assert!(mint.headers.get("authorization").unwrap().to_str().unwrap().starts_with("Bearer ey"));
    let creates = gh.requests("POST", "/repos/acme/web/check-runs").await;
    assert_eq!(creates.len(), 1);
    let body: Value = creates[0].body_json().unwrap();
    assert_eq!(body["name"], "kitefix");
    assert_eq!(body["head_sha"], SHA);
    assert_eq!(body["external_id"], BUILD_ID);
    assert_eq!(body["details_url"], "https://buildkite.com/acme/web/builds/42");
    assert_eq!((&body["status"], &body["conclusion"]), (&json!("completed"), &json!("failure")));
    assert_eq!(body["output"]["title"], "Test failed: 3 tests in `unit`");
    let summary = body["output"]["summary"].as_str().unwrap();
    assert!(
        summary.contains("connecting with DATABASE_URL=postgres://app:[REDACTED]@db/app"),
        "{summary}"
    );
    assert!(
        summary.contains("[`unit`](https://buildkite.com/acme/web/builds/42#unit)"),
        "{summary}"
    );
    assert_eq!(
        body["output"]["annotations"],
        json!([{
            "path": "src/parser.rs", "start_line": 88, "end_line": 88, "start_column": 9,
            "end_column": 9, "annotation_level": "failure",
            "message": "assertion `left == right` failed", "title": "Test failure in unit"
        }])
    );
    gh.assert_bodies_match_schemas().await;
    assert_eq!(gh.requests_metric("checks/create", "201"), 1);
    assert_eq!(gh.metrics.token_refreshes.get(), 1);
    assert_eq!(gh.metrics.check_runs.with_label_values(&["failure"]).get(), 1);
}

#[tokio::test]
async fn publishing_a_build_again_updates_its_run_and_never_creates_a_second() {
    let gh = Harness::start().await.with_checks().await;
    let report = test_report(vec![test_job("unit")]);

    let first = gh.publish(&report, None).await.unwrap();
    let again_by_id = gh.publish(&report, Some(first.id)).await.unwrap();
    // A worker that lost the stored id (crash before the store committed) finds the run
    // by the build id instead.
    let again_by_lookup = gh.publish(&report, None).await.unwrap();

    assert_eq!((again_by_id.id, again_by_lookup.id), (first.id, first.id));
    assert_eq!(gh.requests("POST", "/repos/acme/web/check-runs").await.len(), 1);
    let patches = gh.requests("PATCH", "/repos/acme/web/check-runs/").await;
    assert_eq!(patches.len(), 2);
    assert!(patches.iter().all(|p| p.url.path() == "/repos/acme/web/check-runs/4"));
    // The run's one annotation is not appended again.
    let runs = gh.checks.runs();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["output"]["annotations_count"], 1);
    // The installation and its token are reused across publishes.
    assert_eq!(gh.requests("GET", "/repos/acme/web/installation").await.len(), 1);
    assert_eq!(gh.metrics.token_refreshes.get(), 1);
    gh.assert_bodies_match_schemas().await;
}

#[tokio::test]
async fn a_run_created_earlier_is_found_by_external_id() {
    let gh = Harness::start().await;
    let mut ours = example("check-run");
    ours["id"] = json!(77);
    ours["external_id"] = json!(BUILD_ID);
    let mut other_build = example("check-run");
    other_build["id"] = json!(76);
    other_build["external_id"] = json!("0190c0de-1111-7000-8000-000000000041");
    Mock::given(method("GET"))
        .and(path(format!("/repos/acme/web/commits/{SHA}/check-runs")))
        .and(query_param("check_name", "kitefix"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "total_count": 2, "check_runs": [other_build, ours.clone()]
        })))
        .expect(1)
        .mount(&gh.server)
        .await;
    Mock::given(method("PATCH"))
        .and(path("/repos/acme/web/check-runs/77"))
        .respond_with(ResponseTemplate::new(200).set_body_json(ours))
        .mount(&gh.server)
        .await;
    Mock::given(method("POST"))
        .and(path("/repos/acme/web/check-runs"))
        .respond_with(ResponseTemplate::new(500))
        .expect(0)
        .mount(&gh.server)
        .await;

    let published = gh.publish(&test_report(vec![test_job("unit")]), None).await.unwrap();

    assert_eq!(published.id, 77);
    // GitHub's example run already has 2 annotations; ours has 1, so nothing is appended.
    let patches = gh.requests("PATCH", "/repos/acme/web/check-runs/77").await;
    assert_eq!(patches.len(), 1);
    assert!(patches[0].body_json::<Value>().unwrap()["output"].get("annotations").is_none());
    gh.assert_bodies_match_schemas().await;
}

#[tokio::test]
async fn more_than_fifty_annotations_go_out_in_batches_and_are_not_repeated() {
    let gh = Harness::start().await.with_checks().await;
    let mut job = test_job("build");
    job.analysis.category = Category::Compile;
    job.analysis.locations = (1..=120)
        .map(|n| Location {
            path: format!("src/module_{}.rs", n % 7),
            line: n,
            column: None,
            message: format!("error {n}"),
        })
        .collect();
    let report = test_report(vec![job]);

    let published = gh.publish(&report, None).await.unwrap();

    let sizes: Vec<usize> = gh
        .server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path().starts_with("/repos/acme/web/check-runs"))
        .map(|r| {
            r.body_json::<Value>().unwrap()["output"]["annotations"].as_array().map_or(0, Vec::len)
        })
        .collect();
    assert_eq!(sizes, [50, 50, 20]);
    let run = &gh.checks.runs()[0];
    let lines: Vec<u64> = run["annotations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["start_line"].as_u64().unwrap())
        .collect();
    assert_eq!(lines, (1..=120).collect::<Vec<u64>>());
    gh.assert_bodies_match_schemas().await;

    // Publishing again sends the state once and no annotation twice.
    gh.publish(&report, Some(published.id)).await.unwrap();
    assert_eq!(gh.checks.runs()[0]["output"]["annotations_count"], 120);
}

#[tokio::test]
async fn an_interrupted_publish_resumes_the_missing_annotations() {
    let gh = Harness::start().await.with_checks().await;
    let mut job = test_job("build");
    job.analysis.locations = (1..=70)
        .map(|n| Location { path: "src/a.rs".into(), line: n, column: None, message: "e".into() })
        .collect();
    let report = test_report(vec![job]);
    // The run exists with only the first batch (the append PATCH never happened).
    let mut partial = example("check-run");
    partial["id"] = json!(4);
    partial["external_id"] = json!(BUILD_ID);
    partial["output"]["annotations_count"] = json!(50);
    gh.checks.runs.lock().unwrap().push(partial);

    gh.publish(&report, None).await.unwrap();

    let patches = gh.requests("PATCH", "/repos/acme/web/check-runs/4").await;
    let first: Vec<u64> = patches[0].body_json::<Value>().unwrap()["output"]["annotations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["start_line"].as_u64().unwrap())
        .collect();
    assert_eq!(patches.len(), 1);
    assert_eq!(first, (51..=70).collect::<Vec<u64>>());
    assert_eq!(gh.checks.runs()[0]["output"]["annotations_count"], 70);
}

#[tokio::test]
async fn rate_limit_with_retry_after_is_returned_not_retried() {
    let gh = Harness::start().await;
    Mock::given(method("GET"))
        .and(path(format!("/repos/acme/web/commits/{SHA}/check-runs")))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"total_count": 0, "check_runs": []})),
        )
        .mount(&gh.server)
        .await;
    Mock::given(method("POST"))
        .and(path("/repos/acme/web/check-runs"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "17").set_body_json(json!({
            "message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
            "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"
        })))
        .expect(1)
        .mount(&gh.server)
        .await;

    let err = gh.publish(&test_report(vec![test_job("unit")]), None).await.unwrap_err();

    assert_eq!(
        err,
        GitHubError::RateLimited {
            endpoint: "checks/create",
            retry_after: Duration::from_secs(17)
        }
    );
    assert!(err.is_transient());
    assert_eq!(gh.metrics.rate_limited.with_label_values(&["checks/create"]).get(), 1);
    assert_eq!(gh.requests_metric("checks/create", "429"), 1);
}

#[tokio::test]
async fn exhausted_primary_limit_waits_until_the_reset() {
    let gh = Harness::start().await;
    let reset = chrono::Utc::now().timestamp() + 600;
    Mock::given(method("GET"))
        .and(path(format!("/repos/acme/web/commits/{SHA}/check-runs")))
        .respond_with(
            ResponseTemplate::new(403)
                .insert_header("x-ratelimit-remaining", "0")
                .insert_header("x-ratelimit-reset", reset.to_string().as_str())
                .set_body_json(
                    json!({"message": "API rate limit exceeded for installation ID 1."}),
                ),
        )
        .expect(1)
        .mount(&gh.server)
        .await;

    let err = gh.publish(&test_report(vec![test_job("unit")]), None).await.unwrap_err();

    let wait = err.retry_after().expect("a rate limit");
    assert!((Duration::from_secs(595)..=Duration::from_secs(602)).contains(&wait), "{wait:?}");
}

#[tokio::test]
async fn server_error_is_transient_and_sent_exactly_once() {
    let gh = Harness::start().await;
    Mock::given(method("GET"))
        .and(path(format!("/repos/acme/web/commits/{SHA}/check-runs")))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"total_count": 0, "check_runs": []})),
        )
        .mount(&gh.server)
        .await;
    Mock::given(method("POST"))
        .and(path("/repos/acme/web/check-runs"))
        .respond_with(ResponseTemplate::new(502).set_body_string("Bad Gateway"))
        .expect(1)
        .mount(&gh.server)
        .await;

    let err = gh.publish(&test_report(vec![test_job("unit")]), None).await.unwrap_err();

    assert!(matches!(err, GitHubError::Transient { status: Some(502), .. }), "{err:?}");
    assert_eq!(err.retry_after(), None);
    // `expect(1)` on the mock is verified when the server drops; check it here too so the
    // failure message says what went wrong.
    assert_eq!(gh.requests("POST", "/repos/acme/web/check-runs").await.len(), 1);
}

#[tokio::test]
async fn a_slow_github_is_a_transient_timeout() {
    let gh = Harness::bare(Duration::from_millis(500)).await;
    Mock::given(method("GET"))
        .and(path("/repos/acme/web/installation"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(example("installation"))
                .set_delay(Duration::from_secs(3)),
        )
        .expect(1)
        .mount(&gh.server)
        .await;

    let err = gh.publish(&test_report(vec![test_job("unit")]), None).await.unwrap_err();

    assert!(matches!(err, GitHubError::Transient { status: None, .. }), "{err:?}");
    assert_eq!(gh.requests_metric("apps/get-repo-installation", "timeout"), 1);
}

/// Mints `ghs_first`, then `ghs_second`, … on each call.
struct Mint(AtomicUsize);
impl Respond for Mint {
    fn respond(&self, _request: &Request) -> ResponseTemplate {
        let n = self.0.fetch_add(1, Ordering::SeqCst);
        let token = ["ghs_first", "ghs_second", "ghs_third"][n.min(2)];
        ResponseTemplate::new(201).set_body_json(token_body(token))
    }
}

async fn revoked_token_harness(second_token_works: bool) -> Harness {
    let gh = Harness::bare(Duration::from_secs(10)).await;
    Mock::given(method("GET"))
        .and(path("/repos/acme/web/installation"))
        .respond_with(ResponseTemplate::new(200).set_body_json(example("installation")))
        .mount(&gh.server)
        .await;
    Mock::given(method("POST"))
        .and(path("/app/installations/1/access_tokens"))
        .respond_with(Mint(AtomicUsize::new(0)))
        .mount(&gh.server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/repos/acme/web/commits/{SHA}/check-runs")))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"total_count": 0, "check_runs": []})),
        )
        .mount(&gh.server)
        .await;
    let bad_credentials = ResponseTemplate::new(401).set_body_json(json!({
        "message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"
    }));
    Mock::given(method("POST"))
        .and(path("/repos/acme/web/check-runs"))
        .and(header("authorization", "Bearer ghs_first"))
        .respond_with(bad_credentials.clone())
        .mount(&gh.server)
        .await;
    let mut created = example("check-run-example-of-completed-conclusion");
    created["id"] = json!(4);
    Mock::given(method("POST"))
        .and(path("/repos/acme/web/check-runs"))
        .and(header("authorization", "Bearer ghs_second"))
        .respond_with(if second_token_works {
            ResponseTemplate::new(201).set_body_json(created)
        } else {
            bad_credentials
        })
        .mount(&gh.server)
        .await;
    gh
}

#[tokio::test]
async fn a_refused_token_is_replaced_once_and_the_request_succeeds() {
    // The list call succeeds with the first token; GitHub then revokes it before the POST.
    let gh = revoked_token_harness(true).await;

    let published = gh.publish(&test_report(vec![test_job("unit")]), None).await.unwrap();

    assert_eq!(published.id, 4);
    assert_eq!(gh.requests("POST", "/app/installations/1/access_tokens").await.len(), 2);
    assert_eq!(gh.requests("POST", "/repos/acme/web/check-runs").await.len(), 2);
    assert_eq!(gh.metrics.token_refreshes.get(), 2);
}

#[tokio::test]
async fn a_second_refusal_is_permanent() {
    let gh = revoked_token_harness(false).await;

    let err = gh.publish(&test_report(vec![test_job("unit")]), None).await.unwrap_err();

    assert!(
        matches!(&err, GitHubError::Unauthorized { message, .. } if message == "Bad credentials"),
        "{err:?}"
    );
    assert!(!err.is_transient());
    assert_eq!(gh.requests("POST", "/repos/acme/web/check-runs").await.len(), 2);
    assert_eq!(gh.requests("POST", "/app/installations/1/access_tokens").await.len(), 2);
}

#[tokio::test]
async fn not_found_is_permanent_with_githubs_message() {
    let gh = Harness::start().await;
    Mock::given(method("GET"))
        .and(path(format!("/repos/acme/web/commits/{SHA}/check-runs")))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({
            "message": "No commit found for SHA: ce587453ced02b1526dfb4cb910479d431683101",
            "documentation_url": "https://docs.github.com/rest/checks/runs#list-check-runs-for-a-git-reference"
        })))
        .expect(1)
        .mount(&gh.server)
        .await;

    let err = gh.publish(&test_report(vec![test_job("unit")]), None).await.unwrap_err();

    assert_eq!(
        err,
        GitHubError::NotFound {
            endpoint: "checks/list-for-ref",
            message: format!("No commit found for SHA: {SHA}"),
        }
    );
    assert!(!err.is_transient());
}

#[tokio::test]
async fn app_not_installed_on_the_repository_is_permanent() {
    let gh = Harness::bare(Duration::from_secs(10)).await;
    Mock::given(method("GET"))
        .and(path("/repos/acme/web/installation"))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({"message": "Not Found"})))
        .expect(1)
        .mount(&gh.server)
        .await;

    let err = gh.publish(&test_report(vec![test_job("unit")]), None).await.unwrap_err();

    assert_eq!(err.to_string(), "the GitHub App is not installed on acme/web");
    assert!(!err.is_transient());
}

#[tokio::test]
async fn missing_permission_names_the_permission_needed() {
    let gh = Harness::start().await;
    Mock::given(method("GET"))
        .and(path(format!("/repos/acme/web/commits/{SHA}/check-runs")))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"total_count": 0, "check_runs": []})),
        )
        .mount(&gh.server)
        .await;
    Mock::given(method("POST"))
        .and(path("/repos/acme/web/check-runs"))
        .respond_with(
            ResponseTemplate::new(403)
                .insert_header("x-accepted-github-permissions", "checks=write")
                .insert_header("x-ratelimit-remaining", "4990")
                .set_body_json(json!({
                    "message": "Resource not accessible by integration",
                    "documentation_url": "https://docs.github.com/rest/checks/runs#create-a-check-run"
                })),
        )
        .expect(1)
        .mount(&gh.server)
        .await;

    let err = gh.publish(&test_report(vec![test_job("unit")]), None).await.unwrap_err();

    assert_eq!(
        err,
        GitHubError::PermissionDenied {
            endpoint: "checks/create",
            message: "Resource not accessible by integration".into(),
            accepted_permissions: Some("checks=write".into()),
        }
    );
}

#[tokio::test]
async fn validation_failure_is_permanent_with_githubs_reasons() {
    let gh = Harness::start().await;
    Mock::given(method("GET"))
        .and(path(format!("/repos/acme/web/commits/{SHA}/check-runs")))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"total_count": 0, "check_runs": []})),
        )
        .mount(&gh.server)
        .await;
    Mock::given(method("POST"))
        .and(path("/repos/acme/web/check-runs"))
        .respond_with(ResponseTemplate::new(422).set_body_json(json!({
            "message": "Invalid request.",
            "errors": ["summary exceeds a maximum bytesize of 65535"],
            "documentation_url": "https://docs.github.com/rest/checks/runs#create-a-check-run"
        })))
        .expect(1)
        .mount(&gh.server)
        .await;

    let err = gh.publish(&test_report(vec![test_job("unit")]), None).await.unwrap_err();

    assert!(
        matches!(&err, GitHubError::Rejected { status: 422, message, .. }
            if message.contains("summary exceeds a maximum bytesize of 65535")),
        "{err:?}"
    );
    assert!(!err.is_transient());
}

#[tokio::test]
async fn a_stale_stored_id_falls_back_to_finding_or_creating_the_run() {
    let gh = Harness::start().await.with_checks().await;

    let published = gh.publish(&test_report(vec![test_job("unit")]), Some(999)).await.unwrap();

    assert_eq!(published.id, 4);
    assert_eq!(gh.requests("PATCH", "/repos/acme/web/check-runs/999").await.len(), 1);
    assert_eq!(gh.requests("POST", "/repos/acme/web/check-runs").await.len(), 1);
}

#[tokio::test]
async fn huge_multibyte_reports_fit_githubs_byte_limits() {
    let gh = Harness::start().await.with_checks().await;
    let jobs = (0..15)
        .map(|i| {
            let mut job = test_job(&format!("shard {i}"));
            let line = format!("データベース接続エラー: {}", "🦀é".repeat(700));
            job.analysis.excerpt =
                Some(Excerpt { start: 1, end: 40, text: vec![line; 40].join("\n") });
            job.analysis.key_line = Some(20);
            job
        })
        .collect();

    gh.publish(&test_report(jobs), None).await.unwrap();

    let body: Value =
        gh.requests("POST", "/repos/acme/web/check-runs").await[0].body_json().unwrap();
    for field in ["summary", "text"] {
        let s = body["output"][field].as_str().unwrap();
        assert!(s.len() <= 65_535, "{field} is {} bytes", s.len());
        assert!(
            s.contains("cut to fit GitHub's 65,535-byte limit"),
            "{field} has no truncation note"
        );
    }
    gh.assert_bodies_match_schemas().await;
}

#[tokio::test]
async fn infrastructure_failures_conclude_neutral() {
    let gh = Harness::start().await.with_checks().await;
    let mut job = test_job("deploy");
    job.analysis.category = Category::Network;
    job.analysis.title = "Could not resolve host: registry.npmjs.org".into();
    job.analysis.locations.clear();

    let published = gh.publish(&test_report(vec![job]), None).await.unwrap();

    assert_eq!(published.conclusion, Conclusion::Neutral);
    assert_eq!(gh.checks.runs()[0]["conclusion"], "neutral");
    assert_eq!(gh.metrics.check_runs.with_label_values(&["neutral"]).get(), 1);
}

#[test]
fn stub_payloads_are_githubs_own_and_match_its_response_schemas() {
    assert_matches_schema(
        "responses",
        "checks/create",
        &example("check-run-example-of-completed-conclusion"),
    );
    assert_matches_schema("responses", "checks/update", &example("check-run"));
    assert_matches_schema("responses", "checks/list-for-ref", &example("check-run-paginated"));
    assert_matches_schema("responses", "apps/get-repo-installation", &example("installation"));
    assert_matches_schema(
        "responses",
        "apps/create-installation-access-token",
        &token_body(EXAMPLE_TOKEN),
    );
    assert_eq!(OPENAPI["source"]["package"], "@octokit/openapi");
}
