//! The reconciler: failed builds whose webhook never arrived are queued once, builds that
//! did arrive are not queued again, and each pass asks only for what finished since the
//! last one. Real store and embedded queue; Buildkite is a stub of its REST API.

use std::sync::Arc;
use std::time::Duration;

use kitefix::buildkite::{BuildkiteClient, ClientOptions};
use kitefix::domain::{IntegrationId, OrgSlug};
use kitefix::intake::{Accepted, Intake};
use kitefix::metrics::Metrics;
use kitefix::queue::Queue;
use kitefix::queue::embedded::EmbeddedQueue;
use kitefix::reconciler::{IntegrationTargets, Reconciler, ReconcilerMetrics, Schedule, Target};
use kitefix::tokens::{TokenError, TokenSource};
use secrecy::SecretString;
use serde_json::Value;
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{StoreKind, dedupe_key, failed_build, metric, test_store};
use crate::stubs::buildkite::{self as bk, JobSpec};

/// Passes are run by the tests themselves; the schedule only sets the first lookback.
const SCHEDULE: Schedule =
    Schedule { every: Duration::from_secs(300), lookback: Duration::from_secs(3600) };

struct Setup {
    reconciler: Reconciler,
    intake: Intake,
    store: kitefix::store::Store,
    queue: Arc<dyn Queue>,
    buildkite: MockServer,
    metrics: Metrics,
    _dir: Arc<tempfile::TempDir>,
}

async fn setup(kind: StoreKind) -> Option<Setup> {
    let (store, dir) = test_store(kind).await?;
    let metrics = Metrics::new();
    let queue: Arc<dyn Queue> =
        Arc::new(EmbeddedQueue::new(store.db().clone(), Duration::from_secs(60), 3));
    let intake = Intake::new(store.clone(), queue.clone(), metrics.clone());
    let buildkite = MockServer::start().await;
    let client =
        BuildkiteClient::new(buildkite.uri().parse().unwrap(), ClientOptions::default()).unwrap();
    let reconciler = Reconciler::new(
        client,
        Arc::new(ConfigToken(Some(SecretString::from(bk::API_TOKEN)))),
        intake.clone(),
        store.clone(),
        Arc::new(NoIntegrations),
        SCHEDULE,
        ReconcilerMetrics::register(metrics.registry()).unwrap(),
    );
    Some(Setup { reconciler, intake, store, queue, buildkite, metrics, _dir: dir })
}

async fn mount_failed_builds(server: &MockServer, builds: Vec<Value>) {
    Mock::given(method("GET"))
        .and(path("/v2/organizations/acme/builds"))
        .and(query_param("state", "failed"))
        .and(header("authorization", format!("Bearer {}", bk::API_TOKEN).as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(Value::Array(builds)))
        .mount(server)
        .await;
}

fn api_build(payload: &Value) -> Value {
    bk::build_json(payload, &[JobSpec::failed("cargo test", 101)])
}

async fn lost_webhook_is_queued_once(kind: StoreKind) {
    let Some(s) = setup(kind).await else { return };
    // Build 70 arrived by webhook; build 71's webhook was lost.
    let delivered = failed_build(70);
    let lost = failed_build(71);
    assert_eq!(s.intake.accept(failed_event_of(&delivered), None).await.unwrap(), Accepted::Queued);
    s.intake.accept(failed_event_of(&delivered), None).await.unwrap();
    wait_recorded(&s, &delivered).await;
    mount_failed_builds(&s.buildkite, vec![api_build(&delivered), api_build(&lost)]).await;

    let results = s.reconciler.pass().await;

    assert_eq!(results.len(), 1, "one organisation polled: {results:?}");
    let summary = results[0].1.clone().unwrap();
    assert_eq!((summary.found, summary.queued), (2, 1));
    wait_recorded(&s, &lost).await;
    assert_eq!(s.queue.depth().await.unwrap().ready, 2, "one message per build, no duplicate");
    let text = s.metrics.render();
    assert_eq!(metric(&text, "kitefix_reconciler_builds_total{outcome=\"queued\"}"), Some(1.0));
    assert_eq!(metric(&text, "kitefix_reconciler_builds_total{outcome=\"duplicate\"}"), Some(1.0));

    // The next pass asks only from where this one started (minus a small overlap) and
    // queues nothing new.
    let again = s.reconciler.pass().await;
    assert_eq!(again[0].1.clone().unwrap().queued, 0);
    let requests = s.buildkite.received_requests().await.unwrap();
    let froms: Vec<String> = requests
        .iter()
        .filter_map(|r| {
            r.url.query_pairs().find(|(k, _)| k == "finished_from").map(|(_, v)| v.into())
        })
        .collect();
    assert_eq!(froms.len(), 2);
    assert!(froms[1] > froms[0], "the cursor moved forward: {froms:?}");
}

/// `buildkite.token` alone, for every organisation.
struct ConfigToken(Option<SecretString>);

#[async_trait::async_trait]
impl TokenSource for ConfigToken {
    async fn token_for(
        &self,
        org: &OrgSlug,
        _integration_id: Option<&IntegrationId>,
    ) -> Result<SecretString, TokenError> {
        self.0.clone().ok_or_else(|| TokenError::NotConnected { org: org.to_string() })
    }
}

/// No connected organisations: only those seen on the shared webhook route are polled.
struct NoIntegrations;

#[async_trait::async_trait]
impl IntegrationTargets for NoIntegrations {
    async fn targets(&self) -> Vec<Target> {
        Vec::new()
    }
}

fn failed_event_of(payload: &Value) -> kitefix::domain::BuildFinished {
    let body = payload.to_string();
    match kitefix::webhook::event::parse(
        Some("build.finished"),
        crate::helpers::verified(body.as_bytes()),
    )
    .unwrap()
    {
        kitefix::webhook::WebhookEvent::Failed(b) => *b,
        other => panic!("{other:?}"),
    }
}

/// The intake records accepted builds in the background; the reconciler learns which
/// organisations to poll from those records.
async fn wait_recorded(s: &Setup, payload: &Value) {
    for _ in 0..100 {
        if s.store.build(&dedupe_key(payload)).await.unwrap().is_some() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the webhook's build was never recorded");
}

#[tokio::test]
async fn a_build_whose_webhook_was_lost_is_queued_once_sqlite() {
    lost_webhook_is_queued_once(StoreKind::Sqlite).await;
}

#[tokio::test]
async fn a_build_whose_webhook_was_lost_is_queued_once_postgres() {
    lost_webhook_is_queued_once(StoreKind::Postgres).await;
}

#[test]
fn a_build_from_the_api_has_the_same_dedupe_key_as_its_webhook() {
    let payload = failed_build(72);
    let build: kitefix::buildkite::Build = serde_json::from_value(api_build(&payload)).unwrap();
    let org = kitefix::domain::OrgSlug::parse("acme").unwrap();
    let event = build.finished_event(&org).unwrap();
    assert_eq!(event.dedupe_key(), dedupe_key(&payload));
    assert_eq!(event, failed_event_of(&payload), "the same event the webhook carries");
}

#[tokio::test]
async fn an_unreachable_buildkite_leaves_the_cursor_where_it_was() {
    let Some(s) = setup(StoreKind::Sqlite).await else { return };
    let delivered = failed_build(73);
    s.intake.accept(failed_event_of(&delivered), None).await.unwrap();
    wait_recorded(&s, &delivered).await;
    Mock::given(method("GET")).respond_with(ResponseTemplate::new(502)).mount(&s.buildkite).await;

    let results = s.reconciler.pass().await;

    assert!(results[0].1.is_err(), "{results:?}");
    assert_eq!(s.store.reconcile_cursor("acme").await.unwrap(), None);
    let text = s.metrics.render();
    assert_eq!(metric(&text, "kitefix_reconciler_polls_total{outcome=\"error\"}"), Some(1.0));
}

#[tokio::test]
async fn a_connected_organisation_is_polled_with_its_own_token() {
    use kitefix::integrations::StoreTokens;
    use kitefix::reconciler::IntegrationTargets;

    let buildkite = crate::integrations::buildkite().await;
    let app = crate::integrations::app_with(&buildkite, StoreKind::Sqlite, false).await;
    assert_eq!(crate::integrations::connect(&app, "acme", bk::API_TOKEN).await.status(), 201);
    let integrations = crate::integrations::service(&app, &buildkite).await;
    // One of acme's webhooks also came on the shared route: still one poll for acme.
    let shared = failed_build(77);
    assert_eq!(
        app.post_signed("build.finished", shared.to_string().as_bytes()).await.status(),
        202
    );
    assert!(
        app.eventually(Duration::from_secs(10), || async {
            app.store.build(&dedupe_key(&shared)).await.unwrap().is_some()
        })
        .await
    );
    let lost = failed_build(74);
    mount_failed_builds(&buildkite, vec![api_build(&lost)]).await;

    let targets = integrations.targets().await;
    assert_eq!(targets.len(), 1);
    assert_eq!(targets[0].org.as_str(), "acme");
    let integration_id = targets[0].integration_id.clone().expect("polled as the integration");
    let metrics = Metrics::new();
    let queue: Arc<dyn Queue> =
        Arc::new(EmbeddedQueue::new(app.store.db().clone(), Duration::from_secs(60), 3));
    let reconciler = Reconciler::new(
        BuildkiteClient::new(buildkite.uri().parse().unwrap(), ClientOptions::default()).unwrap(),
        // No config token: only the integration's own token can work.
        Arc::new(StoreTokens::new(integrations.clone(), None)),
        Intake::new(app.store.clone(), queue, metrics.clone()),
        app.store.clone(),
        Arc::new(integrations),
        SCHEDULE,
        ReconcilerMetrics::register(metrics.registry()).unwrap(),
    );

    let results = reconciler.pass().await;

    assert_eq!(results.len(), 1, "{results:?}");
    assert_eq!(results[0].1.clone().unwrap().queued, 1);
    for _ in 0..100 {
        if let Some(record) = app.store.build(&dedupe_key(&lost)).await.unwrap() {
            assert_eq!(record.integration_id.as_ref(), Some(&integration_id));
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the lost build was not recorded");
}

#[tokio::test]
async fn after_an_outage_the_receiver_catches_up_on_builds_it_never_heard_of() {
    use crate::helpers::{TestConfig, spawn_app_with};
    let buildkite = MockServer::start().await;
    let config = |reuse, interval: u64| TestConfig {
        reuse,
        overrides: vec![
            ("buildkite.api_url", serde_json::json!(buildkite.uri())),
            ("buildkite.token", serde_json::json!(bk::API_TOKEN)),
            ("reconciler.interval_secs", serde_json::json!(interval)),
        ],
        ..Default::default()
    };
    // Before the outage: acme's webhooks arrive.
    let before = spawn_app_with(config(None, 0)).await;
    let delivered = failed_build(75);
    before.post_signed("build.finished", delivered.to_string().as_bytes()).await;
    assert!(
        before
            .eventually(Duration::from_secs(10), || async {
                before.store.build(&dedupe_key(&delivered)).await.unwrap().is_some()
            })
            .await
    );
    let shared = before.stop().await;
    // During the outage build 76 failed; Buildkite lists it.
    let lost = failed_build(76);
    mount_failed_builds(&buildkite, vec![api_build(&delivered), api_build(&lost)]).await;

    let after = spawn_app_with(config(Some(shared), 300)).await;

    assert!(
        after
            .eventually(Duration::from_secs(20), || async {
                after.store.build(&dedupe_key(&lost)).await.unwrap().is_some()
            })
            .await,
        "the reconciler's first pass queued the build whose webhook was lost"
    );
    let text = after.metrics().await;
    assert_eq!(metric(&text, "kitefix_reconciler_builds_total{outcome=\"queued\"}"), Some(1.0));
    assert_eq!(metric(&text, "kitefix_reconciler_builds_total{outcome=\"duplicate\"}"), Some(1.0));
}

#[tokio::test]
async fn only_worker_processes_poll_buildkite() {
    use crate::helpers::{TestConfig, spawn_app_with};
    use kitefix::startup::Role;
    let buildkite = MockServer::start().await;
    mount_failed_builds(&buildkite, vec![]).await;
    let config = |role, reuse, interval: u64| TestConfig {
        role,
        reuse,
        overrides: vec![
            ("buildkite.api_url", serde_json::json!(buildkite.uri())),
            ("buildkite.token", serde_json::json!(bk::API_TOKEN)),
            ("reconciler.interval_secs", serde_json::json!(interval)),
        ],
        ..Default::default()
    };
    // acme's webhooks arrive, so a reconciler's first pass (at start) would poll acme.
    let first = spawn_app_with(config(Role::All, None, 0)).await;
    let seen = failed_build(78);
    first.post_signed("build.finished", seen.to_string().as_bytes()).await;
    assert!(
        first
            .eventually(Duration::from_secs(10), || async {
                first.store.build(&dedupe_key(&seen)).await.unwrap().is_some()
            })
            .await
    );
    let shared = first.stop().await;

    let receiver = spawn_app_with(config(Role::Receiver, Some(shared), 300)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let polled_by_receiver = buildkite.received_requests().await.unwrap().len();
    let receiver_metrics = receiver.metrics().await;
    let shared = receiver.stop().await;
    let worker = spawn_app_with(config(Role::Worker, Some(shared), 300)).await;
    let worker_polled = worker
        .eventually(Duration::from_secs(10), || async {
            !buildkite.received_requests().await.unwrap().is_empty()
        })
        .await;

    assert_eq!(polled_by_receiver, 0, "the receiver called Buildkite");
    assert!(!receiver_metrics.contains("kitefix_reconciler_polls_total"), "{receiver_metrics}");
    assert!(worker_polled, "the worker's first pass polls acme at start");
}
