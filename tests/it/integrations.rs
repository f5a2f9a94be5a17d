//! Connecting Buildkite organisations (`/api/integrations`, `kitefix integrations`):
//! every outcome of connect against a Buildkite stub that speaks `GET /v2/access-token`,
//! tokens sealed at rest, the per-organisation webhook route, the worker using the
//! organisation's own token, removal, key rotation, and the admin bearer token.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use kitefix::integrations::{IntegrationMetrics, Integrations, StoreTokens};
use kitefix::store::BuildState;
use kitefix::tokens::{TokenError, TokenSource};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{
    StoreKind, TestApp, TestConfig, failed_build, metric, require_postgres, spawn_app_with,
};
use crate::serve_process::ServeProcess;
use crate::stubs::buildkite::{self as bk, JobSpec};

/// A second organisation's token, and one without every scope.
const OTHER_TOKEN: &str = "bkua_other56789abcdef0123456789abcdef0123";
const CONFIG_TOKEN: &str = "bkua_config789abcdef0123456789abcdef01234";

pub(crate) const ALL_SCOPES: [&str; 10] = [
    "read_teams",
    "read_artifacts",
    "read_builds",
    "read_job_env",
    "read_build_logs",
    "read_organizations",
    "read_pipelines",
    "read_user",
    "read_suites",
    "write_builds",
];

/// `GET /v2/access-token` for `token`, as documented: `{uuid, scopes, …}`.
pub(crate) async fn mount_access_token(server: &MockServer, token: &str, scopes: &[&str]) {
    Mock::given(method("GET"))
        .and(path("/v2/access-token"))
        .and(header("authorization", format!("Bearer {token}").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "uuid": uuid::Uuid::new_v4().to_string(),
            "scopes": scopes,
            "description": "kitefix",
            "created_at": "2026-11-01T10:00:00.000Z",
            "user": {"name": "CI Admin", "email": "ci@acme.test"}
        })))
        .mount(server)
        .await;
}

/// `GET /v2/organizations/{org}` answering `status` for `token`.
async fn mount_org(server: &MockServer, token: &str, org: &str, status: u16) {
    let body = if status == 200 {
        json!({"id": uuid::Uuid::new_v4().to_string(), "slug": org, "name": org})
    } else {
        json!({"message": "No organization found"})
    };
    Mock::given(method("GET"))
        .and(path(format!("/v2/organizations/{org}")))
        .and(header("authorization", format!("Bearer {token}").as_str()))
        .respond_with(ResponseTemplate::new(status).set_body_json(body))
        .mount(server)
        .await;
}

/// A Buildkite where `bk::API_TOKEN` is a good token for `acme` and `OTHER_TOKEN` for `other`.
pub(crate) async fn buildkite() -> MockServer {
    let server = MockServer::start().await;
    mount_access_token(&server, bk::API_TOKEN, &ALL_SCOPES).await;
    mount_org(&server, bk::API_TOKEN, bk::ORG, 200).await;
    mount_access_token(&server, OTHER_TOKEN, &ALL_SCOPES).await;
    mount_org(&server, OTHER_TOKEN, "other", 200).await;
    server
}

pub(crate) async fn app_with(
    buildkite: &MockServer,
    store: StoreKind,
    processor_real: bool,
) -> TestApp {
    let mut config = TestConfig {
        store,
        overrides: vec![
            ("buildkite.api_url", json!(buildkite.uri())),
            ("buildkite.token", json!(CONFIG_TOKEN)),
        ],
        ..Default::default()
    };
    if processor_real {
        config.processor = None;
    }
    spawn_app_with(config).await
}

pub(crate) async fn connect(app: &TestApp, org: &str, token: &str) -> reqwest::Response {
    app.client
        .post(format!("{}/api/integrations/buildkite", app.address))
        .json(&json!({"org_slug": org, "api_token": token}))
        .send()
        .await
        .unwrap()
}

pub(crate) async fn list(app: &TestApp) -> Vec<Value> {
    let body: Value = app.get("/api/integrations").await.json().await.unwrap();
    body["integrations"].as_array().unwrap().clone()
}

/// Posts `body` signed with `token` to `path`.
pub(crate) async fn post_signed_to(
    app: &TestApp,
    path: &str,
    token: &str,
    body: &[u8],
) -> reqwest::Response {
    let signature = kitefix::webhook::signature::sign(token, chrono::Utc::now().timestamp(), body);
    app.client
        .post(format!("{}{path}", app.address))
        .header("Content-Type", "application/json")
        .header("X-Buildkite-Event", "build.finished")
        .header("X-Buildkite-Signature", signature)
        .body(body.to_vec())
        .send()
        .await
        .unwrap()
}

/// Every file of the SQLite database (main file, WAL, shared memory), concatenated.
fn sqlite_bytes(app: &TestApp) -> Vec<u8> {
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(app.shared._dir.path()).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name().to_string_lossy().starts_with("kitefix.db")
            && !entry.file_name().to_string_lossy().ends_with(".key")
        {
            bytes.extend(std::fs::read(entry.path()).unwrap());
        }
    }
    bytes
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// A service on the app's store and key, as the CLI builds it.
pub(crate) async fn service(app: &TestApp, buildkite: &MockServer) -> Integrations {
    let key = std::path::PathBuf::from(format!(
        "{}.key",
        app.shared.store_url.strip_prefix("sqlite://").unwrap()
    ));
    Integrations::new(
        app.store.clone(),
        kitefix::integrations::TokenCipher::from_file(&key).await.unwrap(),
        kitefix::buildkite::BuildkiteClient::new(
            buildkite.uri().parse().unwrap(),
            Default::default(),
        )
        .unwrap(),
        IntegrationMetrics::unregistered().unwrap(),
    )
}

#[tokio::test]
async fn connect_returns_the_webhook_once_and_stores_only_ciphertext() {
    let buildkite = buildkite().await;
    let app = app_with(&buildkite, StoreKind::Sqlite, false).await;

    let response = connect(&app, "acme", bk::API_TOKEN).await;

    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    let id = body["id"].as_str().unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok());
    assert_eq!(body["webhook_path"], format!("/webhooks/buildkite/{id}"));
    let webhook_token = body["webhook_token"].as_str().unwrap().to_owned();
    assert_eq!(webhook_token.len(), 64);
    assert!(!body.to_string().contains(bk::API_TOKEN));

    let listed = list(&app).await;
    assert_eq!(listed.len(), 1);
    let listed_text = serde_json::to_string(&listed).unwrap();
    assert_eq!(listed[0]["org_slug"], "acme");
    assert_eq!(listed[0]["status"], "connected");
    assert_eq!(listed[0]["token_last4"], &bk::API_TOKEN[bk::API_TOKEN.len() - 4..]);
    assert!(listed[0]["verified_at"].is_i64());
    assert!(listed[0]["last_webhook_at"].is_null());
    assert!(!listed_text.contains(bk::API_TOKEN), "the API token is never listed");
    assert!(!listed_text.contains(&webhook_token), "the webhook token is shown only once");

    // Neither token is in the database files, in any form SQLite keeps.
    app.store.close().await;
    let bytes = sqlite_bytes(&app);
    assert!(contains(&bytes, "acme"), "sanity: the org slug is stored in clear");
    assert!(!contains(&bytes, bk::API_TOKEN), "API token plaintext in the SQLite file");
    assert!(!contains(&bytes, &webhook_token), "webhook token plaintext in the SQLite file");
}

#[tokio::test]
async fn every_connect_outcome_has_its_status_and_message() {
    let buildkite = buildkite().await;
    let rejected = "bkua_revoked89abcdef0123456789abcdef012345";
    Mock::given(method("GET"))
        .and(path("/v2/access-token"))
        .and(header("authorization", format!("Bearer {rejected}").as_str()))
        .respond_with(
            ResponseTemplate::new(401).set_body_json(json!({"message": "Authentication required"})),
        )
        .mount(&buildkite)
        .await;
    let narrow = "bkua_narrow89abcdef0123456789abcdef0123456";
    mount_access_token(&buildkite, narrow, &["read_builds", "read_build_logs", "read_user"]).await;
    let outsider = "bkua_outsider9abcdef0123456789abcdef012345";
    mount_access_token(&buildkite, outsider, &ALL_SCOPES).await;
    mount_org(&buildkite, outsider, "acme", 404).await;
    let flaky = "bkua_flaky789abcdef0123456789abcdef0123456";
    Mock::given(method("GET"))
        .and(path("/v2/access-token"))
        .and(header("authorization", format!("Bearer {flaky}").as_str()))
        .respond_with(ResponseTemplate::new(503))
        .mount(&buildkite)
        .await;
    let app = app_with(&buildkite, StoreKind::Sqlite, false).await;

    let cases: [(&str, &str, u16, &str, &str); 5] = [
        ("acme", rejected, 422, "token_rejected", "token rejected by Buildkite"),
        (
            "acme",
            narrow,
            422,
            "missing_scopes",
            "missing required scopes: read_teams, read_artifacts, read_job_env, read_organizations, read_pipelines, read_suites",
        ),
        ("acme", outsider, 422, "org_not_visible", "cannot see organisation `acme`"),
        ("acme", flaky, 502, "buildkite_unreachable", "nothing was stored"),
        ("Not A Slug", bk::API_TOKEN, 400, "invalid_org_slug", "org_slug"),
    ];
    for (org, token, status, code, message) in cases {
        let response = connect(&app, org, token).await;
        assert_eq!(response.status(), status, "{code}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["code"], code, "{body}");
        let text = body["message"].as_str().unwrap();
        assert!(text.contains(message), "{code}: {text}");
        assert!(!body.to_string().contains(token), "{code}: the token is echoed: {body}");
        if code == "missing_scopes" {
            assert_eq!(
                body["missing_scopes"],
                json!([
                    "read_teams",
                    "read_artifacts",
                    "read_job_env",
                    "read_organizations",
                    "read_pipelines",
                    "read_suites"
                ])
            );
        }
    }
    let bad_json = app
        .client
        .post(format!("{}/api/integrations/buildkite", app.address))
        .header("Content-Type", "application/json")
        .body(format!("{{\"org_slug\": \"acme\", \"api_token\": \"{}\"", bk::API_TOKEN))
        .send()
        .await
        .unwrap();
    assert_eq!(bad_json.status(), 400);
    assert!(!bad_json.text().await.unwrap().contains(bk::API_TOKEN));
    assert!(list(&app).await.is_empty(), "no failed attempt is stored");

    // Connected once; the second time the organisation is already there.
    assert_eq!(connect(&app, "acme", bk::API_TOKEN).await.status(), 201);
    assert_eq!(connect(&app, "acme", bk::API_TOKEN).await.status(), 409);

    let text = app.metrics().await;
    for (outcome, n) in [
        ("connected", 1.0),
        ("token_rejected", 1.0),
        ("missing_scopes", 1.0),
        ("org_not_visible", 1.0),
        ("buildkite_unreachable", 1.0),
        ("already_connected", 1.0),
    ] {
        let series = format!("kitefix_integration_connects_total{{outcome=\"{outcome}\"}}");
        assert_eq!(metric(&text, &series), Some(n), "{series}\n{text}");
    }
    assert_eq!(metric(&text, "kitefix_integrations{status=\"connected\"}"), Some(1.0));
}

#[tokio::test]
async fn the_webhook_route_takes_only_its_integrations_token() {
    let buildkite = buildkite().await;
    let app = app_with(&buildkite, StoreKind::Sqlite, false).await;
    let acme: Value = connect(&app, "acme", bk::API_TOKEN).await.json().await.unwrap();
    let other: Value = connect(&app, "other", OTHER_TOKEN).await.json().await.unwrap();
    let acme_path = acme["webhook_path"].as_str().unwrap();
    let acme_token = acme["webhook_token"].as_str().unwrap();
    let other_token = other["webhook_token"].as_str().unwrap();
    let payload = failed_build(5);
    let body = payload.to_string();

    // Another integration's token, and the single-org token, are refused.
    let wrong = post_signed_to(&app, acme_path, other_token, body.as_bytes()).await;
    assert_eq!(wrong.status(), 401);
    let wrong_body = wrong.text().await.unwrap();
    let legacy =
        post_signed_to(&app, acme_path, crate::helpers::WEBHOOK_TOKEN, body.as_bytes()).await;
    assert_eq!(legacy.status(), 401);
    // An unknown id answers exactly as a wrong token does.
    let unknown_path = format!("/webhooks/buildkite/{}", uuid::Uuid::new_v4());
    let unknown = post_signed_to(&app, &unknown_path, other_token, body.as_bytes()).await;
    assert_eq!(unknown.status(), 401);
    assert_eq!(unknown.text().await.unwrap(), wrong_body);
    let garbage =
        post_signed_to(&app, "/webhooks/buildkite/..%2Fx", other_token, body.as_bytes()).await;
    assert_eq!(garbage.status(), 401);

    // Its own token is accepted, and the build carries the integration id.
    let accepted = post_signed_to(&app, acme_path, acme_token, body.as_bytes()).await;
    assert_eq!(accepted.status(), 202);
    let key = crate::helpers::dedupe_key(&payload);
    let store = app.store.clone();
    assert!(
        app.eventually(Duration::from_secs(10), || {
            let (store, key) = (store.clone(), key.clone());
            async move { store.build(&key).await.unwrap().is_some() }
        })
        .await
    );
    let record = app.store.build(&key).await.unwrap().unwrap();
    assert_eq!(record.integration_id.as_ref().map(|id| id.as_str()), acme["id"].as_str());
    let listed = list(&app).await;
    let acme_listed = listed.iter().find(|i| i["org_slug"] == "acme").unwrap();
    assert!(acme_listed["last_webhook_at"].is_i64(), "{acme_listed}");

    // Removed: the route refuses its own token, as for an unknown id.
    let removed = app
        .client
        .delete(format!("{}/api/integrations/{}", app.address, acme["id"].as_str().unwrap()))
        .send()
        .await
        .unwrap();
    assert_eq!(removed.status(), 204);
    let after =
        post_signed_to(&app, acme_path, acme_token, failed_build(6).to_string().as_bytes()).await;
    assert_eq!(after.status(), 401);
    assert_eq!(after.text().await.unwrap(), wrong_body);
    let again = app
        .client
        .delete(format!("{}/api/integrations/{}", app.address, acme["id"].as_str().unwrap()))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 404);
}

#[tokio::test]
async fn the_worker_uses_the_integrations_token_until_it_is_removed() {
    let buildkite = buildkite().await;
    let app = app_with(&buildkite, StoreKind::Sqlite, true).await;
    let acme: Value = connect(&app, "acme", bk::API_TOKEN).await.json().await.unwrap();
    let id = acme["id"].as_str().unwrap().to_owned();
    let payload = failed_build(9);
    let job = JobSpec::failed("cargo test", 101);
    // The stub serves the build only to the integration's token (not `buildkite.token`).
    bk::mount_build(&buildkite, &payload, std::slice::from_ref(&job)).await;
    bk::mount_log(&buildkite, 9, &job, "error[E0308]: mismatched types\r\n").await;
    bk::mount_env(&buildkite, 9, &job, &[("CI", "true")]).await;

    let response = post_signed_to(
        &app,
        acme["webhook_path"].as_str().unwrap(),
        acme["webhook_token"].as_str().unwrap(),
        payload.to_string().as_bytes(),
    )
    .await;

    assert_eq!(response.status(), 202);
    app.drain_queue_within(Duration::from_secs(30)).await;
    assert_eq!(app.state_of(&payload).await, Some(BuildState::Reported));
    let build_calls: Vec<_> = buildkite
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.url.path().contains("/pipelines/"))
        .collect();
    assert!(!build_calls.is_empty());
    for request in &build_calls {
        assert_eq!(
            request.headers.get("authorization").unwrap().to_str().unwrap(),
            format!("Bearer {}", bk::API_TOKEN),
            "{}",
            request.url
        );
    }

    // Removed: a message still queued for it is refused with a reason; an organisation
    // without an integration falls back to buildkite.token.
    let tokens = StoreTokens::new(
        service(&app, &buildkite).await,
        Some(SecretString::from(CONFIG_TOKEN.to_owned())),
    );
    let org = kitefix::domain::OrgSlug::parse("acme").unwrap();
    let integration = kitefix::domain::IntegrationId::parse(&id).unwrap();
    let before = tokens.token_for(&org, Some(&integration)).await.unwrap();
    assert_eq!(before.expose_secret(), bk::API_TOKEN);
    assert_eq!(tokens.token_for(&org, None).await.unwrap().expose_secret(), bk::API_TOKEN);
    app.client.delete(format!("{}/api/integrations/{id}", app.address)).send().await.unwrap();
    let err = tokens.token_for(&org, Some(&integration)).await.unwrap_err();
    assert!(matches!(err, TokenError::Disabled { .. }), "{err:?}");
    assert!(err.to_string().contains("removed"), "{err}");
    assert_eq!(tokens.token_for(&org, None).await.unwrap().expose_secret(), CONFIG_TOKEN);
    // Another organisation's integration never lends its token.
    let other = kitefix::domain::OrgSlug::parse("other").unwrap();
    let other_id: Value = connect(&app, "other", OTHER_TOKEN).await.json().await.unwrap();
    let other_id = kitefix::domain::IntegrationId::parse(other_id["id"].as_str().unwrap()).unwrap();
    assert!(matches!(
        tokens.token_for(&org, Some(&other_id)).await,
        Err(TokenError::Disabled { .. })
    ));
    assert_eq!(tokens.token_for(&other, None).await.unwrap().expose_secret(), OTHER_TOKEN);
}

#[tokio::test]
async fn a_ciphertext_moved_to_another_integration_does_not_decrypt() {
    let buildkite = buildkite().await;
    let app = app_with(&buildkite, StoreKind::Sqlite, false).await;
    let acme: Value = connect(&app, "acme", bk::API_TOKEN).await.json().await.unwrap();
    let other: Value = connect(&app, "other", OTHER_TOKEN).await.json().await.unwrap();
    let kitefix::store::Db::Sqlite(pool) = app.store.db() else { unreachable!() };
    sqlx::query(
        "UPDATE integrations SET \
         api_token_ciphertext = (SELECT api_token_ciphertext FROM integrations WHERE id = $1), \
         api_token_nonce = (SELECT api_token_nonce FROM integrations WHERE id = $1) WHERE id = $2",
    )
    .bind(acme["id"].as_str().unwrap())
    .bind(other["id"].as_str().unwrap())
    .execute(pool)
    .await
    .unwrap();

    let tokens = StoreTokens::new(service(&app, &buildkite).await, None);
    let other_org = kitefix::domain::OrgSlug::parse("other").unwrap();
    let other_id = kitefix::domain::IntegrationId::parse(other["id"].as_str().unwrap()).unwrap();
    let err = tokens.token_for(&other_org, Some(&other_id)).await.unwrap_err();

    assert!(matches!(err, TokenError::Unavailable(_)), "{err:?}");
    assert!(err.to_string().contains("failed to decrypt"), "{err}");
    let verify = app
        .client
        .post(format!("{}/api/integrations/{}/verify", app.address, other["id"].as_str().unwrap()))
        .send()
        .await
        .unwrap();
    assert_eq!(verify.status(), 500);
}

#[tokio::test]
async fn verify_records_a_revoked_token() {
    let buildkite = MockServer::start().await;
    mount_access_token(&buildkite, bk::API_TOKEN, &ALL_SCOPES).await;
    mount_org(&buildkite, bk::API_TOKEN, bk::ORG, 200).await;
    let app = app_with(&buildkite, StoreKind::Sqlite, false).await;
    let acme: Value = connect(&app, "acme", bk::API_TOKEN).await.json().await.unwrap();
    let verify_path =
        format!("{}/api/integrations/{}/verify", app.address, acme["id"].as_str().unwrap());
    let ok: Value = app.client.post(&verify_path).send().await.unwrap().json().await.unwrap();
    assert_eq!(ok["status"], "connected");

    // The token is revoked on Buildkite's side.
    buildkite.reset().await;
    Mock::given(method("GET"))
        .and(path("/v2/access-token"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({"message": "Unauthorized"})))
        .mount(&buildkite)
        .await;
    let revoked: Value = app.client.post(&verify_path).send().await.unwrap().json().await.unwrap();

    assert_eq!(revoked["status"], "token_rejected");
    assert!(revoked["reason"].as_str().unwrap().contains("token rejected by Buildkite"));
    let text = app.metrics().await;
    assert_eq!(metric(&text, "kitefix_integrations{status=\"token_rejected\"}"), Some(1.0));
}

#[tokio::test]
async fn integrations_work_on_postgres() {
    if !require_postgres().await {
        return;
    }
    let buildkite = buildkite().await;
    let app = app_with(&buildkite, StoreKind::Postgres, false).await;

    let acme: Value = connect(&app, "acme", bk::API_TOKEN).await.json().await.unwrap();
    assert_eq!(connect(&app, "acme", bk::API_TOKEN).await.status(), 409);
    let accepted = post_signed_to(
        &app,
        acme["webhook_path"].as_str().unwrap(),
        acme["webhook_token"].as_str().unwrap(),
        failed_build(3).to_string().as_bytes(),
    )
    .await;
    assert_eq!(accepted.status(), 202);
    let id = acme["id"].as_str().unwrap();
    assert_eq!(
        app.client
            .delete(format!("{}/api/integrations/{id}", app.address))
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    // Removed organisations can be connected again.
    assert_eq!(connect(&app, "acme", bk::API_TOKEN).await.status(), 201);
    let listed = list(&app).await;
    assert_eq!(listed.len(), 2);
    assert_eq!(listed.iter().filter(|i| i["status"] == "removed").count(), 1);
}

#[tokio::test]
async fn the_admin_api_needs_the_bearer_token_and_never_logs_it() {
    let dir = tempfile::tempdir().unwrap();
    let admin_token = "admin-token-0123456789abcdef";
    let presented = "presented-wrong-bearer-value-42";
    let serve = ServeProcess::start(
        dir.path(),
        &[("KITEFIX_ADMIN__TOKEN", admin_token), ("KITEFIX_LOG__LEVEL", "debug")],
    );
    let client = reqwest::Client::new();
    let url = serve.url("/api/integrations");

    let missing = client.get(&url).send().await.unwrap();
    let wrong = client.get(&url).bearer_auth(presented).send().await.unwrap();
    let right = client.get(&url).bearer_auth(admin_token).send().await.unwrap();
    let connect = client
        .post(format!("{url}/buildkite"))
        .bearer_auth(presented)
        .json(&json!({"org_slug": "acme", "api_token": bk::API_TOKEN}))
        .send()
        .await
        .unwrap();

    assert_eq!(missing.status(), 401);
    assert_eq!(wrong.status(), 401);
    assert_eq!(connect.status(), 401);
    assert_eq!(right.status(), 200);
    let (_, seen) = serve.stop().await;
    let seen: Vec<String> = seen.iter().map(Value::to_string).collect();
    let log = seen.join("\n");
    assert!(log.contains("admin: missing or wrong token"), "{log}");
    assert!(!log.contains(presented), "the presented bearer value was logged:\n{log}");
    assert!(!log.contains(admin_token), "the admin token was logged");
    assert!(!log.contains(bk::API_TOKEN), "a refused request's API token was logged");
}

/// Runs `kitefix integrations ARGS --config CONFIG` with `stdin`, off the test's runtime
/// (the Buildkite stub is served by it).
async fn cli(config: &Path, args: &[&str], stdin: &str) -> (i32, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kitefix"));
    command.arg("integrations").args(args).arg("--config").arg(config);
    let stdin = stdin.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env_remove("RUST_LOG")
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    })
    .await
    .unwrap()
}

fn write_config(dir: &Path, buildkite: &MockServer, key: Option<&Path>) -> std::path::PathBuf {
    let path = dir.join(if key.is_some() { "rotated.toml" } else { "kitefix.toml" });
    let mut text = format!(
        "[store]\nurl = \"sqlite://{}\"\n\n[buildkite]\napi_url = \"{}\"\n",
        dir.join("kitefix.db").display(),
        buildkite.uri()
    );
    if let Some(key) = key {
        text.push_str(&format!("\n[security]\nencryption_key_file = \"{}\"\n", key.display()));
    }
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test]
async fn the_cli_adds_lists_rotates_and_removes() {
    let buildkite = buildkite().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &buildkite, None);

    let (code, out, err) =
        cli(&config, &["add", "--org", "acme"], &format!("{}\n", bk::API_TOKEN)).await;
    assert_eq!(code, 0, "{out}{err}");
    let id = out
        .lines()
        .find_map(|l| l.strip_prefix("integration id: "))
        .expect("prints the id")
        .to_owned();
    assert!(out.contains(&format!("/webhooks/buildkite/{id}")), "{out}");
    assert!(out.contains("webhook token (shown once"), "{out}");
    assert!(err.contains("generated the encryption key"), "{err}");
    assert!(!out.contains(bk::API_TOKEN));
    let key_file = dir.path().join("kitefix.db.key");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&key_file).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "the generated key is private");

    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "bkua_bad").unwrap();
    Mock::given(method("GET"))
        .and(path("/v2/access-token"))
        .and(header("authorization", "Bearer bkua_bad"))
        .respond_with(ResponseTemplate::new(401))
        .mount(&buildkite)
        .await;
    let (code, _, err) =
        cli(&config, &["add", "--org", "other", "--token-file", token_file.to_str().unwrap()], "")
            .await;
    assert_eq!(code, 1);
    assert!(err.contains("token rejected by Buildkite"), "{err}");

    let (code, out, _) = cli(&config, &["list"], "").await;
    assert_eq!(code, 0);
    assert!(out.contains(&id) && out.contains("connected") && out.contains("…0123"), "{out}");
    assert!(!out.contains(bk::API_TOKEN));

    // Rotate to a new key: the old key no longer opens the rows, the new one does.
    let new_key = dir.path().join("new.key");
    let (code, out, err) =
        cli(&config, &["rotate-key", "--new-key-file", new_key.to_str().unwrap()], "").await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("1 integration(s) re-encrypted"), "{out}");
    let (code, _, err) = cli(&config, &["verify", &id], "").await;
    assert_eq!(code, 1);
    assert!(err.contains("encrypted under key"), "{err}");
    let rotated = write_config(dir.path(), &buildkite, Some(&new_key));
    let (code, out, err) = cli(&rotated, &["verify", &id], "").await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("connected"), "{out}");

    let (code, out, _) = cli(&rotated, &["remove", &id], "").await;
    assert_eq!(code, 0);
    assert!(out.contains("removed"));
    let (code, _, err) = cli(&rotated, &["remove", &id], "").await;
    assert_eq!(code, 1);
    assert!(err.contains("no integration with id"), "{err}");
    let (_, out, _) = cli(&rotated, &["list"], "").await;
    assert!(out.contains("removed"), "{out}");
}

#[tokio::test]
async fn periodic_verification_disables_a_revoked_token_and_the_worker_refuses_it() {
    let buildkite = buildkite().await;
    let app = spawn_app_with(TestConfig {
        processor: None,
        overrides: vec![
            ("buildkite.api_url", json!(buildkite.uri())),
            ("buildkite.token", json!(CONFIG_TOKEN)),
            ("integrations.verify_interval_secs", json!(1)),
        ],
        ..Default::default()
    })
    .await;
    let acme: Value = connect(&app, "acme", bk::API_TOKEN).await.json().await.unwrap();

    // The token is revoked on Buildkite's side.
    buildkite.reset().await;
    Mock::given(method("GET"))
        .and(path("/v2/access-token"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({"message": "Unauthorized"})))
        .mount(&buildkite)
        .await;

    let marked = app
        .eventually(Duration::from_secs(10), || async {
            list(&app).await[0]["status"] == "token_rejected"
        })
        .await;
    assert!(marked, "{:?}", list(&app).await);
    assert!(
        list(&app).await[0]["reason"].as_str().unwrap().contains("token rejected by Buildkite")
    );

    // A build for it still arrives (the webhook token is fine) and fails with the reason,
    // without falling back to buildkite.token.
    let payload = failed_build(11);
    let response = post_signed_to(
        &app,
        acme["webhook_path"].as_str().unwrap(),
        acme["webhook_token"].as_str().unwrap(),
        payload.to_string().as_bytes(),
    )
    .await;
    assert_eq!(response.status(), 202);
    app.drain_queue_within(Duration::from_secs(20)).await;
    assert_eq!(app.state_of(&payload).await, Some(BuildState::Failed));
    let record = app.store.build(&crate::helpers::dedupe_key(&payload)).await.unwrap().unwrap();
    let reason = record.reason.unwrap();
    assert!(reason.contains("not usable") && reason.contains("token rejected"), "{reason}");
    let used_config_token = buildkite.received_requests().await.unwrap().iter().any(|r| {
        r.headers.get("authorization").is_some_and(|v| v.to_str().unwrap().contains(CONFIG_TOKEN))
    });
    assert!(!used_config_token, "a disabled integration must not fall back to buildkite.token");
}

/// Key rotation on one store kind: all rows move, or (one row unreadable) none does.
async fn rotation_is_all_or_nothing(kind: StoreKind) {
    let Some((store, _dir)) = crate::helpers::test_store(kind).await else { return };
    let buildkite = buildkite().await;
    let client = kitefix::buildkite::BuildkiteClient::new(
        buildkite.uri().parse().unwrap(),
        Default::default(),
    )
    .unwrap();
    let old = kitefix::integrations::TokenCipher::ephemeral();
    let new = kitefix::integrations::TokenCipher::ephemeral();
    let service = Integrations::new(
        store.clone(),
        old.clone(),
        client.clone(),
        IntegrationMetrics::unregistered().unwrap(),
    );
    let acme = service.connect("acme", SecretString::from(bk::API_TOKEN.to_owned())).await.unwrap();
    let other = service.connect("other", SecretString::from(OTHER_TOKEN.to_owned())).await.unwrap();
    // Rows are re-sealed in id order: tamper with the later one, so the earlier one is
    // re-sealed before the failure and must be rolled back.
    let (first, last) = if acme.id < other.id {
        ((&acme, bk::API_TOKEN), &other)
    } else {
        ((&other, OTHER_TOKEN), &acme)
    };
    let first_before = store.integration(&first.0.id).await.unwrap().unwrap();
    let mut tampered = store.integration(&last.id).await.unwrap().unwrap().webhook_token.ciphertext;
    tampered[0] ^= 1;
    let sql = "UPDATE integrations SET webhook_token_ciphertext = $1 WHERE id = $2";
    match store.db() {
        kitefix::store::Db::Sqlite(pool) => {
            sqlx::query(sql).bind(&tampered).bind(&last.id).execute(pool).await.map(|_| ())
        }
        kitefix::store::Db::Postgres(pool) => {
            sqlx::query(sql).bind(&tampered).bind(&last.id).execute(pool).await.map(|_| ())
        }
    }
    .unwrap();

    let failed = service.rotate_key(&new).await;

    assert!(failed.is_err(), "a row that does not decrypt stops the rotation");
    let first_after = store.integration(&first.0.id).await.unwrap().unwrap();
    assert_eq!(first_after.api_token, first_before.api_token, "rolled back: still the old key");

    // Repaired (the tampered row removed), the rotation moves every live row.
    service.remove(&last.id).await.unwrap();
    assert_eq!(service.rotate_key(&new).await.unwrap(), 1);
    assert_eq!(service.rotate_key(&new).await.unwrap(), 0, "running it again moves nothing");
    let rotated =
        Integrations::new(store.clone(), new, client, IntegrationMetrics::unregistered().unwrap());
    let tokens = StoreTokens::new(rotated, None);
    let org = first.0.org.clone();
    let id = kitefix::domain::IntegrationId::parse(&first.0.id).unwrap();
    let token = tokens.token_for(&org, Some(&id)).await.unwrap();
    assert_eq!(token.expose_secret(), first.1);
    let old_tokens = StoreTokens::new(service, None);
    let err = old_tokens.token_for(&org, Some(&id)).await.unwrap_err();
    assert!(err.to_string().contains(old.key_id()), "names the key: {err}");
}

#[tokio::test]
async fn key_rotation_is_all_or_nothing_on_sqlite() {
    rotation_is_all_or_nothing(StoreKind::Sqlite).await;
}

#[tokio::test]
async fn key_rotation_is_all_or_nothing_on_postgres() {
    rotation_is_all_or_nothing(StoreKind::Postgres).await;
}
