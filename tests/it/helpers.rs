//! Test harness: `spawn_app()` and friends (zero2prod's `spawn_app`, svix's prefixes).
//!
//! Each app gets its own SQLite file (or its own PostgreSQL database) and its own
//! RabbitMQ prefix, so tests run in parallel without seeing each other's messages.
//! Tests that need PostgreSQL or RabbitMQ call `require_postgres()` /
//! `require_rabbitmq()`: when the service is missing they skip with a message, except
//! under `CI=true`, where a missing service fails the test.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use figment::providers::Serialized;
use kitefix::config::Settings;
use kitefix::queue::rabbitmq::{RabbitMqOptions, RabbitMqQueue};
use kitefix::startup::{Application, Role};
use kitefix::store::Store;
use kitefix::webhook::signature;
use kitefix::worker::{Outcome, Processor};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use wiremock::MockServer;

use crate::stubs::buildkite as bk;
use crate::stubs::github::{self as gh, FakeChecks};

pub const WEBHOOK_TOKEN: &str = "it-webhook-token-0123456789";
pub const POSTGRES_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
pub const RABBITMQ_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

static TRACING: LazyLock<()> = LazyLock::new(|| {
    // Quiet unless TEST_LOG is set, as in zero2prod.
    if std::env::var("TEST_LOG").is_ok() {
        kitefix::telemetry::init(&kitefix::config::LogSettings {
            format: kitefix::config::LogFormat::Pretty,
            level: "info,kitefix=debug".into(),
        });
    }
});

/// Serialises tests that stop or restart the shared RabbitMQ broker against every other
/// RabbitMQ test (they take the read side).
pub static BROKER: LazyLock<tokio::sync::RwLock<()>> =
    LazyLock::new(|| tokio::sync::RwLock::new(()));

pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

async fn reachable(addr: &str) -> bool {
    tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(addr))
        .await
        .is_ok_and(|r| r.is_ok())
}

/// `true` when RabbitMQ is up; `false` (skip) when it is not, outside CI.
pub async fn require_rabbitmq() -> bool {
    require("RabbitMQ", "127.0.0.1:5672").await
}

pub async fn require_postgres() -> bool {
    require("PostgreSQL", "127.0.0.1:5432").await
}

async fn require(name: &str, addr: &str) -> bool {
    if reachable(addr).await {
        return true;
    }
    assert!(!in_ci(), "{name} is not reachable on {addr}, and CI=true: start it (see .ci/run)");
    eprintln!("SKIPPED: {name} is not reachable on {addr}");
    false
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    Sqlite,
    Postgres,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueKind {
    Embedded,
    RabbitMq,
}

/// How to start an app; `TestConfig::default()` is the embedded default with a webhook
/// token set.
pub struct TestConfig {
    pub store: StoreKind,
    pub queue: QueueKind,
    pub role: Role,
    pub webhook_token: Option<String>,
    /// The worker's pipeline; `None` runs the real one (Buildkite, classifier, GitHub).
    pub processor: Option<Arc<dyn Processor>>,
    /// Extra `key = value` settings, applied last.
    pub overrides: Vec<(&'static str, Value)>,
    /// Reuse this app's SQLite file / database / queue prefix (restart tests).
    pub reuse: Option<Shared>,
}

impl Default for TestConfig {
    fn default() -> Self {
        Self {
            store: StoreKind::Sqlite,
            queue: QueueKind::Embedded,
            role: Role::All,
            webhook_token: Some(WEBHOOK_TOKEN.into()),
            processor: Some(Arc::new(RecordOnly)),
            overrides: vec![],
            reuse: None,
        }
    }
}

/// What identifies an app's data: reuse it to start a second app on the same state.
#[derive(Clone)]
pub struct Shared {
    pub store_url: String,
    pub queue_prefix: String,
    /// Keeps the SQLite file's directory alive as long as any app uses it.
    pub _dir: Arc<tempfile::TempDir>,
    /// Deletes the RabbitMQ queues once no app uses this prefix any more.
    pub _rabbit: Option<Arc<RabbitCleanup>>,
}

/// Deletes a test's RabbitMQ topology when dropped: quorum queues left behind pile up
/// in the shared broker and make every later restart slow.
pub struct RabbitCleanup {
    prefix: String,
}

impl Drop for RabbitCleanup {
    fn drop(&mut self) {
        let prefix = self.prefix.clone();
        // Drop cannot await; a throwaway runtime on its own thread does the deleting.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Runtime::new().expect("runtime");
            runtime.block_on(async {
                let queue = RabbitMqQueue::start(rabbit_options(&prefix, 8));
                if let Err(e) = queue.delete_topology().await {
                    eprintln!("could not delete RabbitMQ topology {prefix}: {e}");
                }
            });
        })
        .join();
    }
}

/// Queue options for a test's own prefix on the local broker.
pub fn rabbit_options(prefix: &str, max_attempts: u32) -> RabbitMqOptions {
    RabbitMqOptions {
        url: secrecy::SecretString::from(RABBITMQ_URL.to_owned()),
        prefix: prefix.into(),
        max_attempts,
        publish_timeout: Duration::from_secs(3),
        prefetch: 4,
    }
}

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub store: Store,
    pub shared: Shared,
    shutdown: CancellationToken,
    running: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(TestConfig::default()).await
}

pub async fn spawn_app_with(config: TestConfig) -> TestApp {
    LazyLock::force(&TRACING);
    let shared = match config.reuse {
        Some(shared) => shared,
        None => {
            let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
            let store_url = match config.store {
                StoreKind::Sqlite => {
                    format!("sqlite://{}", dir.path().join("kitefix.db").display())
                }
                StoreKind::Postgres => create_postgres_database().await,
            };
            let queue_prefix = format!("kitefix-it-{}", uuid::Uuid::new_v4().simple());
            let rabbit = (config.queue == QueueKind::RabbitMq)
                .then(|| Arc::new(RabbitCleanup { prefix: queue_prefix.clone() }));
            Shared { store_url, queue_prefix, _dir: dir, _rabbit: rabbit }
        }
    };
    let mut figment = Settings::default_figment()
        .merge(Serialized::default("server.bind", "127.0.0.1:0"))
        .merge(Serialized::default("server.shutdown_grace_secs", 5))
        .merge(Serialized::default("store.url", &shared.store_url))
        .merge(Serialized::default("queue.prefix", &shared.queue_prefix))
        .merge(Serialized::default("queue.url", RABBITMQ_URL))
        .merge(Serialized::default(
            "queue.kind",
            match config.queue {
                QueueKind::Embedded => "embedded",
                QueueKind::RabbitMq => "rabbitmq",
            },
        ))
        .merge(Serialized::default("log.format", "pretty"))
        // The reconciler polls Buildkite on its own schedule, which would add requests a
        // test does not expect; tests/it/reconciler.rs runs passes itself.
        .merge(Serialized::default("reconciler.interval_secs", 0));
    if shared.store_url.starts_with("postgres") {
        // PostgreSQL needs an explicit key (config refuses to start without one).
        figment = figment
            .merge(Serialized::default("security.encryption_key_file", key_file(&shared._dir)));
    }
    if let Some(token) = &config.webhook_token {
        figment = figment.merge(Serialized::default("webhook.token", token));
    }
    for (key, value) in &config.overrides {
        figment = figment.merge(Serialized::default(key, value));
    }
    let settings = Settings::from_figment(figment).expect("test settings are valid");
    let app = match config.processor {
        Some(processor) => {
            Application::build_with_processor(settings, config.role, processor).await
        }
        None => Application::build(settings, config.role).await,
    }
    .expect("app builds");
    let port = app.port();
    let store = app.state().store.clone();
    let shutdown = app.shutdown_token();
    let running = tokio::spawn(app.run_until_stopped());
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        client: reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap(),
        store,
        shared,
        shutdown,
        running: Some(running),
    }
}

/// A key file in `dir`, created on first use (kept across restarts with `reuse`).
pub fn key_file(dir: &tempfile::TempDir) -> std::path::PathBuf {
    let path = dir.path().join("encryption.key");
    if !path.exists() {
        std::fs::write(&path, format!("{}\n", "ab".repeat(32))).expect("key file written");
    }
    path
}

/// A fresh, empty database per test; leftovers are dropped by `.ci/run`.
async fn create_postgres_database() -> String {
    use sqlx::Connection;
    let name = format!("kitefix_it_{}", uuid::Uuid::new_v4().simple());
    let mut admin =
        sqlx::PgConnection::connect(POSTGRES_ADMIN_URL).await.expect("PostgreSQL admin connection");
    let statement = format!("CREATE DATABASE {name}");
    sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
        .execute(&mut admin)
        .await
        .expect("create test database");
    format!("postgres://postgres@127.0.0.1:5432/{name}")
}

impl TestApp {
    /// Stops the app as SIGTERM would and waits for it to finish.
    pub async fn stop(mut self) -> Shared {
        self.shutdown.cancel();
        if let Some(running) = self.running.take() {
            running.await.expect("app task").expect("app stopped cleanly");
        }
        self.shared.clone()
    }

    /// Waits up to `within` for the app to stop without being asked (a task died), and
    /// returns how `run_until_stopped` ended; `None` if it is still running.
    pub async fn stopped_by_itself(&mut self, within: Duration) -> Option<anyhow::Result<()>> {
        let running = self.running.as_mut()?;
        let ended = tokio::time::timeout(within, running).await.ok()?;
        self.running = None;
        Some(ended.expect("app task"))
    }

    /// Posts a body with a valid signature made now.
    pub async fn post_signed(&self, event: &str, body: &[u8]) -> reqwest::Response {
        let header = signature::sign(WEBHOOK_TOKEN, chrono::Utc::now().timestamp(), body);
        self.post_webhook(event, body, &[("X-Buildkite-Signature", &header)]).await
    }

    pub async fn post_webhook(
        &self,
        event: &str,
        body: &[u8],
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut request = self
            .client
            .post(format!("{}/webhooks/buildkite", self.address))
            .header("Content-Type", "application/json")
            .header("X-Buildkite-Event", event)
            .body(body.to_vec());
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.expect("request sent")
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(format!("{}{path}", self.address)).send().await.expect("request sent")
    }

    pub async fn metrics(&self) -> String {
        self.get("/metrics").await.text().await.unwrap()
    }

    /// Waits until `check` holds, polling, for up to `within`.
    pub async fn eventually<F, Fut>(&self, within: Duration, mut check: F) -> bool
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = bool>,
    {
        let deadline = tokio::time::Instant::now() + within;
        while tokio::time::Instant::now() < deadline {
            if check().await {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }
}

/// A metric's value from the Prometheus text, e.g. `metric(&text, "kitefix_webhooks_total{event=\"ping\",outcome=\"ping\"}")`.
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series).and_then(|rest| rest.trim().parse().ok()))
}

/// A `build.finished` payload for a failed build (the README's example), made unique by
/// a fresh build id; `n` is the build number.
pub fn failed_build(n: u64) -> Value {
    let mut payload: Value =
        serde_json::from_str(include_str!("../../deploy/examples/build-finished-failed.json"))
            .unwrap();
    payload["build"]["id"] = json!(uuid::Uuid::new_v4().to_string());
    payload["build"]["number"] = json!(n);
    payload["build"]["url"] = json!(format!(
        "https://api.buildkite.com/v2/organizations/acme/pipelines/web-app/builds/{n}"
    ));
    payload
}

/// The parsed event of `failed_build(n)`.
pub fn failed_event(n: u64) -> kitefix::domain::BuildFinished {
    parse_failed(&failed_build(n))
}

fn parse_failed(payload: &Value) -> kitefix::domain::BuildFinished {
    let body = payload.to_string();
    match kitefix::webhook::event::parse(Some("build.finished"), verified(body.as_bytes())).unwrap()
    {
        kitefix::webhook::WebhookEvent::Failed(b) => *b,
        other => panic!("not a failed build: {other:?}"),
    }
}

/// `body` verified as the webhook route verifies it (token mode): `event::parse` takes
/// nothing else.
pub fn verified(body: &[u8]) -> signature::Verified<'_> {
    let token = secrecy::SecretString::from(WEBHOOK_TOKEN.to_owned());
    let credential = signature::Credential::Token(WEBHOOK_TOKEN.to_owned());
    signature::verify(&token, &credential, body, 0, 0).expect("the test token verifies")
}

pub fn dedupe_key(payload: &Value) -> kitefix::domain::DedupeKey {
    parse_failed(payload).dedupe_key()
}

/// A store of the given kind on fresh storage, with the directory that holds it.
pub async fn test_store(kind: StoreKind) -> Option<(Store, Arc<tempfile::TempDir>)> {
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    let url = match kind {
        StoreKind::Sqlite => format!("sqlite://{}", dir.path().join("kitefix.db").display()),
        StoreKind::Postgres => {
            if !require_postgres().await {
                return None;
            }
            create_postgres_database().await
        }
    };
    let backend = kitefix::config::StoreBackend::parse(secrecy::SecretString::from(url))
        .expect("a store URL");
    let store = Store::connect(&backend, 4).await.expect("store connects");
    Some((store, dir))
}

/// The apps' processor unless a test names another: records that the build arrived (the
/// worker does that before any processor runs) and skips it, so the queue, the store and
/// the worker loop are tested without Buildkite or GitHub.
pub struct RecordOnly;

/// The reason `RecordOnly` skips with.
pub const RECORDED_ONLY: &str = "recorded only: the tests' stand-in for the pipeline";

#[async_trait::async_trait]
impl Processor for RecordOnly {
    async fn process(&self, _message: &kitefix::queue::QueueMessage) -> Outcome {
        Outcome::Skipped { reason: RECORDED_ONLY.into() }
    }
}

/// A processor that plays back a script of outcomes, then repeats the last one, and
/// counts its calls.
pub struct Scripted {
    script: std::sync::Mutex<std::collections::VecDeque<kitefix::worker::Outcome>>,
    last: std::sync::Mutex<kitefix::worker::Outcome>,
    pub calls: std::sync::atomic::AtomicU32,
    pub delay: Duration,
}

impl Scripted {
    pub fn new(outcomes: Vec<kitefix::worker::Outcome>) -> Arc<Self> {
        Self::slow(outcomes, Duration::ZERO)
    }

    pub fn slow(outcomes: Vec<kitefix::worker::Outcome>, delay: Duration) -> Arc<Self> {
        let last = outcomes.last().cloned().expect("at least one outcome");
        Arc::new(Self {
            script: std::sync::Mutex::new(outcomes.into()),
            last: std::sync::Mutex::new(last),
            calls: Default::default(),
            delay,
        })
    }

    pub fn calls(&self) -> u32 {
        self.calls.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[async_trait::async_trait]
impl Processor for Scripted {
    async fn process(&self, _message: &kitefix::queue::QueueMessage) -> Outcome {
        self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        tokio::time::sleep(self.delay).await;
        let next = self.script.lock().unwrap().pop_front();
        next.unwrap_or_else(|| self.last.lock().unwrap().clone())
    }
}

impl TestApp {
    /// Waits until the app's worker has nothing left to do, then returns: the queue holds
    /// nothing ready or in flight, every message the worker took is settled, and every
    /// build the store knows is in a settled state (reported, skipped, failed or dead).
    /// Seen so twice in a row, 100 ms apart, so a message on its way from the broker to
    /// the worker is not missed. The one way tests wait for the worker's work; panics,
    /// naming what is still pending, after `within`.
    pub async fn drain_queue_within(&self, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        let mut quiet = 0;
        loop {
            let pending = self.pending_work().await;
            quiet = if pending.is_empty() { quiet + 1 } else { 0 };
            if quiet == 2 {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the queue did not drain within {within:?}: {pending}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// [`drain_queue_within`](Self::drain_queue_within) a minute.
    pub async fn drain_queue(&self) {
        self.drain_queue_within(Duration::from_secs(60)).await
    }

    /// What the worker still has to do, in words; empty when nothing.
    async fn pending_work(&self) -> String {
        let metrics = self.metrics().await;
        let count = |series: &str| metric(&metrics, series).unwrap_or(0.0);
        let ready = count("kitefix_queue_depth{state=\"ready\"}");
        let in_flight = count("kitefix_queue_depth{state=\"in_flight\"}");
        let taken = count("kitefix_queue_messages_total{outcome=\"consumed\"}");
        let settled = ["acked", "retried", "dead_lettered"]
            .iter()
            .map(|o| count(&format!("kitefix_queue_messages_total{{outcome=\"{o}\"}}")))
            .sum::<f64>();
        let unsettled: Vec<String> = self
            .store
            .recent_builds(10_000)
            .await
            .expect("store readable")
            .into_iter()
            .filter(|b| !b.state.is_final() && b.state != kitefix::store::BuildState::Dead)
            .map(|b| format!("{} is {}", b.dedupe_key, b.state))
            .collect();
        let mut pending = Vec::new();
        if ready + in_flight > 0.0 {
            pending.push(format!("{ready} ready and {in_flight} in flight"));
        }
        if taken > settled {
            pending.push(format!("{} taken but not settled", taken - settled));
        }
        if !unsettled.is_empty() {
            pending.push(unsettled.join(", "));
        }
        pending.join("; ")
    }

    /// The state of the build behind `payload`, if the store knows it.
    pub async fn state_of(&self, payload: &Value) -> Option<kitefix::store::BuildState> {
        self.store.build_state(&dedupe_key(payload)).await.expect("store readable")
    }
}

/// Waits for the build behind `payload` to reach `state`.
pub async fn wait_for_state(
    app: &TestApp,
    payload: &Value,
    state: kitefix::store::BuildState,
    within: Duration,
) -> bool {
    let key = dedupe_key(payload);
    let store = app.store.clone();
    app.eventually(within, || {
        let store = store.clone();
        let key = key.clone();
        async move { store.build_state(&key).await.unwrap() == Some(state) }
    })
    .await
}

/// The repository the stub pipeline builds.
pub const REPO: &str = "acme/web-app";

/// An app wired to Buildkite and GitHub stubs, running the real pipeline.
pub struct World {
    pub app: TestApp,
    pub buildkite: MockServer,
    pub github: MockServer,
    pub checks: Arc<FakeChecks>,
}

/// Buildkite and GitHub stubs, and the app wired to both with the real pipeline.
pub async fn world(
    queue: QueueKind,
    github_app: bool,
    overrides: Vec<(&'static str, Value)>,
) -> World {
    let buildkite = MockServer::start().await;
    let github = MockServer::start().await;
    let checks = Arc::new(FakeChecks::default());
    let commit = failed_build(0)["build"]["commit"].as_str().unwrap().to_owned();
    gh::mount_app(&github, REPO).await;
    gh::mount_checks(&github, &checks, REPO, &commit).await;
    let mut settings = vec![
        ("buildkite.api_url", json!(buildkite.uri())),
        ("buildkite.token", json!(bk::API_TOKEN)),
        ("github.api_url", json!(github.uri())),
        // The stub serves the API on 127.0.0.1; the repositories are still on github.com,
        // as with GitHub Enterprise behind a separate API host.
        ("github.web_host", json!("github.com")),
    ];
    if github_app {
        settings.push(("github.app_id", json!(gh::APP_ID)));
        settings.push((
            "github.private_key_path",
            json!(format!("{}/test-app-private-key.pem", gh::FIXTURES)),
        ));
    }
    settings.extend(overrides);
    let app = spawn_app_with(TestConfig {
        queue,
        processor: None,
        overrides: settings,
        ..Default::default()
    })
    .await;
    World { app, buildkite, github, checks }
}

impl TestApp {
    /// What `/api/analyses` says about the build behind `payload`.
    pub async fn analysis_of(&self, payload: &Value) -> Value {
        let id = payload["build"]["id"].as_str().unwrap();
        let body: Value =
            self.get(&format!("/api/analyses?build_id={id}")).await.json().await.unwrap();
        body["analyses"][0].clone()
    }
}
