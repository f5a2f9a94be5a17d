//! A stand-in for GitHub that speaks its documented API: GitHub's own example payloads
//! (from `tests/fixtures/github/openapi-subset.json`, extracted from `@octokit/openapi`)
//! as answers, stateful check runs, and GitHub's request schemas to check what kitefix
//! sends.

use std::sync::{Arc, LazyLock, Mutex};

use kitefix::render::CHECK_RUN_NAME;
use serde_json::{Value, json};
use wiremock::matchers::{header, method, path, path_regex, query_param};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

pub const APP_ID: u64 = 4242;
pub const SHA: &str = "ce587453ced02b1526dfb4cb910479d431683101";
pub const BUILD_ID: &str = "0190c0de-1111-7000-8000-000000000042";
pub const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/github");
/// The token in GitHub's `installation-token` example.
pub const EXAMPLE_TOKEN: &str = "ghs_16C7e42F292c6912E7710c838347Ae178B4a";

pub static OPENAPI: LazyLock<Value> = LazyLock::new(|| {
    let text = std::fs::read_to_string(format!("{FIXTURES}/openapi-subset.json")).unwrap();
    serde_json::from_str(&text).unwrap()
});

pub fn example(name: &str) -> Value {
    OPENAPI["examples"][name].clone()
}

/// Fails the test when `body` breaks GitHub's schema for `operation` (a `requests` or
/// `responses` entry of the fixture).
pub fn assert_matches_schema(kind: &str, operation: &str, body: &Value) {
    let mut schema = OPENAPI[kind][operation].clone();
    assert!(schema.is_object(), "no {kind} schema for {operation}");
    schema["$defs"] = OPENAPI["$defs"].clone();
    let validator = jsonschema::validator_for(&schema).expect("GitHub's schema compiles");
    let errors: Vec<String> =
        validator.iter_errors(body).map(|e| format!("{e} at {}", e.instance_path)).collect();
    assert!(errors.is_empty(), "{operation} {kind} body breaks GitHub's schema: {errors:#?}");
}

/// GitHub's example installation token, with an `expires_at` in the future (the example's
/// is in 2016, which would make every request mint a new token).
pub fn token_body(token: &str) -> Value {
    let mut body = example("installation-token");
    body["token"] = json!(token);
    body["expires_at"] = json!((chrono::Utc::now() + chrono::TimeDelta::hours(1)).to_rfc3339());
    body
}

/// A stateful stand-in for GitHub's check runs: creates, updates (appending annotations,
/// as GitHub does) and lists runs, answering with GitHub's example run as the template.
#[derive(Default)]
pub struct FakeChecks {
    pub runs: Mutex<Vec<Value>>,
}

impl FakeChecks {
    pub fn runs(&self) -> Vec<Value> {
        self.runs.lock().unwrap().clone()
    }

    fn apply(run: &mut Value, body: &Value) {
        for field in ["name", "details_url", "external_id", "status", "conclusion"] {
            if let Some(v) = body.get(field) {
                run[field] = v.clone();
            }
        }
        if let Some(output) = body.get("output") {
            for field in ["title", "summary", "text"] {
                run["output"][field] = output.get(field).cloned().unwrap_or(Value::Null);
            }
            let added = output.get("annotations").and_then(Value::as_array).map_or(0, Vec::len);
            let before = run["output"]["annotations_count"].as_u64().unwrap_or(0);
            run["output"]["annotations_count"] = json!(before + added as u64);
            let mut all = run["annotations"].as_array().cloned().unwrap_or_default();
            all.extend(
                output.get("annotations").and_then(Value::as_array).cloned().unwrap_or_default(),
            );
            run["annotations"] = Value::Array(all);
        }
    }
}

pub struct CreateRun(pub Arc<FakeChecks>);
impl Respond for CreateRun {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let body: Value = request.body_json().unwrap();
        let mut runs = self.0.runs.lock().unwrap();
        let id = 4 + runs.len() as u64;
        let mut run = example("check-run-example-of-completed-conclusion");
        run["id"] = json!(id);
        run["html_url"] = json!(format!("https://github.com/acme/web/runs/{id}"));
        run["head_sha"] = body["head_sha"].clone();
        run["output"]["annotations_count"] = json!(0);
        FakeChecks::apply(&mut run, &body);
        runs.push(run.clone());
        run.as_object_mut().unwrap().remove("annotations");
        ResponseTemplate::new(201).set_body_json(run)
    }
}

pub struct UpdateRun(pub Arc<FakeChecks>);
impl Respond for UpdateRun {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let id: u64 = request.url.path().rsplit('/').next().unwrap().parse().unwrap();
        let body: Value = request.body_json().unwrap();
        let mut runs = self.0.runs.lock().unwrap();
        match runs.iter_mut().find(|r| r["id"] == json!(id)) {
            Some(run) => {
                FakeChecks::apply(run, &body);
                let mut answer = run.clone();
                answer.as_object_mut().unwrap().remove("annotations");
                ResponseTemplate::new(200).set_body_json(answer)
            }
            None => ResponseTemplate::new(404).set_body_json(json!({
                "message": "Not Found",
                "documentation_url": "https://docs.github.com/rest/checks/runs#update-a-check-run",
                "status": "404"
            })),
        }
    }
}

pub struct ListRuns(pub Arc<FakeChecks>);
impl Respond for ListRuns {
    fn respond(&self, _request: &Request) -> ResponseTemplate {
        let runs: Vec<Value> = self
            .0
            .runs()
            .into_iter()
            .map(|mut r| {
                r.as_object_mut().unwrap().remove("annotations");
                r
            })
            .collect();
        ResponseTemplate::new(200)
            .set_body_json(json!({"total_count": runs.len(), "check_runs": runs}))
    }
}

/// Mounts App authentication for `repo` (installation 1, GitHub's example) on `server`.
pub async fn mount_app(server: &MockServer, repo: &str) {
    Mock::given(method("GET"))
        .and(path(format!("/repos/{repo}/installation")))
        .respond_with(ResponseTemplate::new(200).set_body_json(example("installation")))
        .mount(server)
        .await;
    Mock::given(method("POST"))
        .and(path("/app/installations/1/access_tokens"))
        .respond_with(ResponseTemplate::new(201).set_body_json(token_body(EXAMPLE_TOKEN)))
        .mount(server)
        .await;
}

/// Mounts the stateful check-run endpoints for `repo` and commit `sha` on `server`.
pub async fn mount_checks(server: &MockServer, checks: &Arc<FakeChecks>, repo: &str, sha: &str) {
    Mock::given(method("POST"))
        .and(path(format!("/repos/{repo}/check-runs")))
        .and(header("authorization", format!("Bearer {EXAMPLE_TOKEN}").as_str()))
        .respond_with(CreateRun(checks.clone()))
        .mount(server)
        .await;
    Mock::given(method("PATCH"))
        .and(path_regex(format!(r"^/repos/{repo}/check-runs/\d+$")))
        .and(header("authorization", format!("Bearer {EXAMPLE_TOKEN}").as_str()))
        .respond_with(UpdateRun(checks.clone()))
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/repos/{repo}/commits/{sha}/check-runs")))
        .and(query_param("check_name", CHECK_RUN_NAME))
        .and(query_param("filter", "all"))
        .and(query_param("app_id", APP_ID.to_string()))
        .respond_with(ListRuns(checks.clone()))
        .mount(server)
        .await;
}

/// Every check-run request `server` received for `repo`, checked against GitHub's
/// request schemas for `checks/create` and `checks/update`.
pub async fn assert_check_run_bodies_match_schemas(server: &MockServer, repo: &str) {
    for r in server.received_requests().await.unwrap() {
        let route = r.url.path();
        if r.method.as_str() == "POST" && route == format!("/repos/{repo}/check-runs") {
            assert_matches_schema("requests", "checks/create", &r.body_json().unwrap());
        }
        if r.method.as_str() == "PATCH" && route.starts_with(&format!("/repos/{repo}/check-runs/"))
        {
            assert_matches_schema("requests", "checks/update", &r.body_json().unwrap());
        }
    }
}
