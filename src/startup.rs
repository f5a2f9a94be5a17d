//! Wiring: build the store, queue, HTTP server and worker from `Settings`, run them
//! until SIGTERM (or until one of them dies), then stop in order (zero2prod's
//! `Application`, svix's roles).

mod supervisor;

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::{App, HttpServer, web};
use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::buildkite::{BuildkiteClient, BuildkiteMetrics, ClientOptions};
use crate::classify::Classifier;
use crate::config::{BuildkiteSettings, GitHubSettings, Settings};
use crate::github::{GitHubAppConfig, GitHubClient, GitHubHost, GitHubMetrics, GitHubReporter};
use crate::intake::Intake;
use crate::integrations::{self, IntegrationMetrics, Integrations, StoreTokens};
use crate::metrics::Metrics;
use crate::queue;
use crate::reconciler::{Reconciler, ReconcilerMetrics, Schedule};
use crate::routes;
use crate::state::{AppState, TaskHealth};
use crate::store::Store;
use crate::tokens::TokenSource;
use crate::worker::{Pipeline, Processor, Reporter, Worker};
use supervisor::{Part, Supervisor};

/// Which parts run in this process (`serve --role`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    /// Receiver and workers in one process.
    All,
    /// Webhooks and the admin API; publishes to the queue. Polls nothing.
    Receiver,
    /// Consumes the queue, and polls Buildkite: the reconciler and the token verifier.
    /// Still serves /healthz, /readyz and /metrics.
    Worker,
}

impl Role {
    fn receives(self) -> bool {
        matches!(self, Role::All | Role::Receiver)
    }

    fn works(self) -> bool {
        matches!(self, Role::All | Role::Worker)
    }
}

/// A built application, bound to its port, not yet running.
pub struct Application {
    port: u16,
    server: Server,
    worker: Option<Worker>,
    reconciler: Option<Reconciler>,
    /// How often this process re-verifies connected organisations.
    verify_every: Option<Duration>,
    state: web::Data<AppState>,
    shutdown: CancellationToken,
    grace: Duration,
}

impl Application {
    /// Connects the store and queue, builds the worker's pipeline and binds the listener
    /// (`server.bind`; port 0 picks a free port, which the tests use).
    pub async fn build(settings: Settings, role: Role) -> anyhow::Result<Self> {
        Self::build_inner(settings, role, None).await
    }

    /// As `build`, with the worker's pipeline given by the caller (tests).
    pub async fn build_with_processor(
        settings: Settings,
        role: Role,
        processor: Arc<dyn Processor>,
    ) -> anyhow::Result<Self> {
        Self::build_inner(settings, role, Some(processor)).await
    }

    /// The parts, each from its own section. Everything that calls Buildkite on its own
    /// schedule (the worker, the reconciler, the verifier) exists only in worker roles:
    /// N receivers never poll N times.
    async fn build_inner(
        settings: Settings,
        role: Role,
        processor: Option<Arc<dyn Processor>>,
    ) -> anyhow::Result<Self> {
        let metrics = Metrics::new();
        let store = Store::connect(&settings.store.backend, settings.store.max_connections)
            .await
            .context("store.url: cannot open the store")?;
        let queue = queue::connect(&settings.queue, store.db());
        let intake = Intake::new(store.clone(), queue.clone(), metrics.clone());
        let buildkite = buildkite_client(&settings.buildkite, &metrics)?;
        let integrations = Integrations::from_settings(
            &settings.security,
            store.clone(),
            buildkite.clone(),
            IntegrationMetrics::register(metrics.registry())?,
        )
        .await
        .context("security.encryption_key_file")?;
        integrations.refresh_gauge().await;
        // Connected organisations' tokens first, then `buildkite.token`.
        let tokens: Arc<dyn TokenSource> =
            Arc::new(StoreTokens::new(integrations.clone(), settings.buildkite.token.clone()));
        let reconciler = match Schedule::from_settings(&settings.reconciler) {
            Some(schedule) if role.works() => Some(Reconciler::new(
                buildkite.clone(),
                tokens.clone(),
                intake.clone(),
                store.clone(),
                Arc::new(integrations.clone()),
                schedule,
                ReconcilerMetrics::register(metrics.registry())?,
            )),
            _ => None,
        };
        let verify_every = settings.integrations.verify_interval.filter(|_| role.works());
        let worker = if role.works() {
            let processor = match processor {
                Some(p) => p,
                None => Arc::new(pipeline(&settings, &store, &metrics, buildkite, tokens)?),
            };
            Some(Worker::new(
                queue.clone(),
                store.clone(),
                metrics.clone(),
                processor,
                &settings.worker,
            ))
        } else {
            None
        };

        let listener = TcpListener::bind(settings.server.bind)
            .with_context(|| format!("server.bind: cannot listen on {}", settings.server.bind))?;
        let port = listener.local_addr()?.port();
        let grace = settings.server.shutdown_grace;
        let state = web::Data::new(AppState {
            settings,
            store,
            queue,
            intake,
            integrations,
            metrics,
            tasks: TaskHealth::default(),
        });
        let server = run_http(listener, state.clone(), role, grace)?;
        tracing::info!(port, ?role, "kitefix listening");
        Ok(Self {
            port,
            server,
            worker,
            reconciler,
            verify_every,
            state,
            shutdown: CancellationToken::new(),
            grace,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Cancel it to stop the application as SIGTERM would.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    pub fn state(&self) -> web::Data<AppState> {
        self.state.clone()
    }

    /// Runs until SIGTERM/SIGINT or the shutdown token, then stops: the server stops
    /// accepting and finishes requests in flight, the worker takes no new message and
    /// finishes the builds it has; nothing unfinished is acked.
    ///
    /// If a part ends on its own first, that is a failure: it is logged, `/readyz`
    /// answers 503 naming it while the others stop (the worker finishing its builds, the
    /// server still answering), and the result is `Err`, so `kitefix serve` exits
    /// non-zero and its supervisor (Kubernetes, systemd) restarts it.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let Application {
            server, worker, reconciler, verify_every, state, shutdown, grace, ..
        } = self;
        let handle = server.handle();
        tokio::spawn(stop_on_signal(shutdown.clone()));
        let mut parts = Supervisor::default();
        parts.spawn_fallible(
            Part::Server,
            async move { server.await.context("HTTP server failed") },
        );
        if let Some(every) = verify_every {
            let verifier =
                integrations::verifier::run(state.integrations.clone(), every, shutdown.clone());
            parts.spawn(Part::Verifier, verifier);
        }
        if let Some(worker) = worker {
            parts.spawn(Part::Worker, worker.run(shutdown.clone(), grace));
        }
        if let Some(reconciler) = reconciler {
            parts.spawn(Part::Reconciler, reconciler.run(shutdown.clone()));
        }

        let died = tokio::select! {
            _ = shutdown.cancelled() => None,
            Some(ended) = parts.next() => Some(ended),
        };
        let result = match died {
            None => {
                tracing::info!("shutting down");
                stop_server(handle).await;
                Ok(())
            }
            Some((part, ending)) => {
                let cause = ending.unwrap_or_else(|| "it returned".into());
                tracing::error!(task = %part, cause = %cause, "a task stopped before shutdown was asked for; shutting down");
                state.tasks.died(format!("{part} stopped: {cause}"));
                shutdown.cancel();
                // The server goes last, so /readyz keeps telling the load balancer why
                // while the worker finishes its builds.
                while parts.runs_besides(Part::Server) {
                    let Some(ended) = parts.next().await else { break };
                    log_failure(ended);
                }
                stop_server(handle).await;
                Err(anyhow::anyhow!("the {part} stopped unexpectedly: {cause}"))
            }
        };
        let mut failed = Vec::new();
        while let Some(ended) = parts.next().await {
            failed.extend(log_failure(ended));
        }
        state.store.close().await;
        result?;
        if !failed.is_empty() {
            anyhow::bail!("{} while stopping", failed.join("; "));
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// Logs a part that failed while stopping and returns what it says; `None` for a part
/// that stopped cleanly.
fn log_failure((part, ending): (Part, supervisor::Ending)) -> Option<String> {
    let cause = ending?;
    tracing::error!(task = %part, cause = %cause, "a task failed while stopping");
    Some(format!("the {part} failed: {cause}"))
}

/// The Buildkite REST client every part shares, counting its calls in `metrics`.
fn buildkite_client(
    settings: &BuildkiteSettings,
    metrics: &Metrics,
) -> anyhow::Result<BuildkiteClient> {
    Ok(BuildkiteClient::new(settings.api_url.clone(), ClientOptions::default())
        .context("buildkite.api_url")?
        .with_metrics(BuildkiteMetrics::register(metrics.registry())?))
}

/// The worker's real pipeline: Buildkite client, classifier, GitHub (or dry-run).
fn pipeline(
    settings: &Settings,
    store: &Store,
    metrics: &Metrics,
    buildkite: BuildkiteClient,
    tokens: Arc<dyn TokenSource>,
) -> anyhow::Result<Pipeline> {
    let classifier = Classifier::from_settings(&settings.classifier)
        .context("classifier rules (built in, and classifier.rules_dir)")?;
    Ok(Pipeline {
        buildkite,
        tokens,
        classifier: Arc::new(classifier),
        reporter: github_reporter(&settings.github, metrics)?,
        github_host: github_host(&settings.github),
        store: store.clone(),
        metrics: metrics.clone(),
        jobs_per_build: settings.worker.jobs_per_build,
    })
}

/// The host pipelines' git URLs must name to count as GitHub: `github.web_host`, or the
/// one `github.api_url` implies.
fn github_host(settings: &GitHubSettings) -> GitHubHost {
    match &settings.web_host {
        Some(host) => GitHubHost::new(host),
        None => GitHubHost::from_api_url(&settings.api_url).unwrap_or_else(GitHubHost::github_com),
    }
}

/// Check runs go to GitHub through the configured App, or nowhere (dry-run).
fn github_reporter(settings: &GitHubSettings, metrics: &Metrics) -> anyhow::Result<Reporter> {
    let Some(app) = &settings.app else {
        tracing::info!(
            "no GitHub App configured (github.app_id): dry-run, check runs are stored, not posted"
        );
        return Ok(Reporter::DryRun);
    };
    let config =
        GitHubAppConfig::from_key_file(settings.api_url.clone(), app.app_id, &app.private_key_path)
            .context("github.private_key_path")?;
    let client = GitHubClient::new(&config, GitHubMetrics::register(metrics.registry())?)
        .context("github")?;
    Ok(Reporter::GitHub(GitHubReporter::new(Arc::new(client))))
}

fn run_http(
    listener: TcpListener,
    state: web::Data<AppState>,
    role: Role,
    grace: Duration,
) -> anyhow::Result<Server> {
    let server = HttpServer::new(move || {
        let app = App::new()
            .wrap(tracing_actix_web::TracingLogger::default())
            .app_data(state.clone())
            .configure(routes::configure_common);
        if role.receives() { app.configure(routes::configure_receiver) } else { app }
    })
    // Signals are ours: one token stops the server and the worker in order.
    .disable_signals()
    .shutdown_timeout(grace.as_secs())
    .listen(listener)?
    .run();
    Ok(server)
}

async fn stop_server(handle: ServerHandle) {
    handle.stop(true).await;
}

async fn stop_on_signal(shutdown: CancellationToken) {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("can listen for SIGTERM");
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
        _ = shutdown.cancelled() => {}
    }
    shutdown.cancel();
}
