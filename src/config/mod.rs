//! Layered configuration: built-in defaults (`config/default.toml`), then the TOML file
//! given with `--config`, then `KITEFIX_<SECTION>__<KEY>` environment variables.
//!
//! Loading is two steps. figment extracts the sections (type errors name the key and
//! where the value came from); then each section checks its values (`check`, one per
//! section, plus the rules that span two sections) and *all* problems are reported at
//! once, each naming the key and how to fix it, so an operator fixes a broken deployment
//! in one round.
//!
//! A section whose checked form has the same fields as the file is extracted straight
//! into its settings type; the others (`Raw*`) are read as the file writes them and
//! turned into what the code uses: the queue and store backends resolved
//! ([`QueueBackend`], [`StoreBackend`]), secrets read from their `*_file`, URLs parsed.
//! Durations are `Duration` everywhere; their keys keep the `_secs`/`_ms` names of the
//! contract (`docs/design.md`, `config/default.toml`).

mod backend;
mod byte_size;
mod duration;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

pub use backend::{QueueBackend, StoreBackend, UnknownStoreUrl};
pub use byte_size::ByteSize;

const DEFAULTS: &str = include_str!("../../config/default.toml");
const ENV_PREFIX: &str = "KITEFIX_";

/// Everything kitefix needs to run, checked.
#[derive(Debug, Clone)]
pub struct Settings {
    pub server: ServerSettings,
    pub webhook: WebhookSettings,
    pub queue: QueueSettings,
    pub store: StoreSettings,
    pub worker: WorkerSettings,
    pub classifier: ClassifierSettings,
    pub reconciler: ReconcilerSettings,
    pub buildkite: BuildkiteSettings,
    pub github: GitHubSettings,
    pub admin: AdminSettings,
    pub security: SecuritySettings,
    pub integrations: IntegrationsSettings,
    pub log: LogSettings,
}

#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub bind: SocketAddr,
    /// Larger webhook bodies get 413.
    pub max_body_bytes: ByteSize,
    /// On shutdown, how long requests and builds in flight may take to finish
    /// (`server.shutdown_grace_secs`).
    pub shutdown_grace: Duration,
}

#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// The single-organisation webhook token; `None` refuses every webhook on
    /// `/webhooks/buildkite` with 401.
    pub token: Option<SecretString>,
    /// Signature timestamps further than this from now are refused
    /// (`webhook.max_skew_secs`).
    pub max_skew: Duration,
}

/// `queue.kind` as written; the checked form is [`QueueBackend`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QueueKind {
    Embedded,
    RabbitMq,
}

#[derive(Debug, Clone)]
pub struct QueueSettings {
    pub backend: QueueBackend,
    /// A message is dead-lettered after this many failed deliveries (both backends).
    pub max_attempts: u32,
}

impl QueueSettings {
    pub fn kind(&self) -> QueueKind {
        match self.backend {
            QueueBackend::Embedded { .. } => QueueKind::Embedded,
            QueueBackend::RabbitMq { .. } => QueueKind::RabbitMq,
        }
    }
}

#[derive(Debug, Clone)]
pub struct StoreSettings {
    pub backend: StoreBackend,
    pub max_connections: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerSettings {
    /// Builds processed at once by one worker process.
    pub concurrency: usize,
    /// Time limit for one build's work (`worker.build_timeout_secs`).
    #[serde(rename = "build_timeout_secs", deserialize_with = "duration::secs")]
    pub build_timeout: Duration,
    /// Failed jobs of one build analysed at once.
    pub jobs_per_build: usize,
}

/// Polling Buildkite for failed builds whose webhook never arrived.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReconcilerSettings {
    /// Time between passes; `None` (`reconciler.interval_secs = 0`) turns it off.
    #[serde(rename = "interval_secs", deserialize_with = "duration::secs_or_off")]
    pub interval: Option<Duration>,
    /// How far back the first pass for an organisation looks
    /// (`reconciler.lookback_secs`).
    #[serde(rename = "lookback_secs", deserialize_with = "duration::secs")]
    pub lookback: Duration,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassifierSettings {
    /// A folder of user rule files layered over the built-in rules.
    pub rules_dir: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct BuildkiteSettings {
    pub api_url: Url,
    pub token: Option<SecretString>,
}

#[derive(Debug, Clone)]
pub struct GitHubSettings {
    pub api_url: Url,
    /// The web host pipelines' git URLs must name (`github.web_host`); `None` derives it
    /// from `api_url`.
    pub web_host: Option<String>,
    /// `Some` when a GitHub App is configured; `None` runs GitHub in dry-run.
    pub app: Option<GitHubApp>,
}

#[derive(Debug, Clone)]
pub struct GitHubApp {
    pub app_id: u64,
    pub private_key_path: PathBuf,
}

#[derive(Debug, Clone)]
pub struct AdminSettings {
    pub token: Option<SecretString>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecuritySettings {
    /// The key that seals connected organisations' tokens; unset with SQLite, it is
    /// generated next to the database file (`integrations::key_file`).
    pub encryption_key_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntegrationsSettings {
    /// How often connected organisations' tokens are checked with Buildkite again;
    /// `None` (`integrations.verify_interval_secs = 0`) turns the check off.
    #[serde(rename = "verify_interval_secs", deserialize_with = "duration::secs_or_off")]
    pub verify_interval: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Pretty,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    pub format: LogFormat,
    pub level: String,
}

/// A configuration mistake: which key, what is wrong and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} (set it in the config file or with {})",
            self.key,
            self.message,
            env_name(&self.key)
        )
    }
}

/// Start-up refused: every problem found, one per line.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "invalid configuration:")?;
        for p in &self.problems {
            writeln!(f, "  - {p}")?;
        }
        Ok(())
    }
}

/// The environment variable that sets `key` (`server.bind` → `KITEFIX_SERVER__BIND`).
pub fn env_name(key: &str) -> String {
    format!("{ENV_PREFIX}{}", key.to_ascii_uppercase().replace('.', "__"))
}

impl Settings {
    /// Loads defaults, then `file` (if given), then the process environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::new().merge(Toml::string(DEFAULTS));
        if let Some(path) = file {
            if !path.is_file() {
                return Err(ConfigError {
                    problems: vec![Problem {
                        key: "--config".into(),
                        message: format!("`{}` is not a readable file", path.display()),
                    }],
                });
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        Self::from_figment(figment.merge(Env::prefixed(ENV_PREFIX).split("__")))
    }

    /// The built-in defaults alone, for callers (tests, tools) that layer their own
    /// providers on top before `from_figment`.
    pub fn default_figment() -> Figment {
        Figment::new().merge(Toml::string(DEFAULTS))
    }

    /// Checks a figment; tests use this with their own providers.
    pub fn from_figment(figment: Figment) -> Result<Self, ConfigError> {
        let raw: RawSettings = figment.extract().map_err(|e| ConfigError {
            problems: e
                .into_iter()
                .map(|e| Problem {
                    key: if e.path.is_empty() { "config".into() } else { e.path.join(".") },
                    message: figment_message(&e),
                })
                .collect(),
        })?;
        raw.check()
    }

    /// The admin API is open without a token only when nothing but this machine can reach
    /// it (docs/design.md#admin-access).
    pub fn admin_open_without_token(&self) -> bool {
        self.admin.token.is_none() && self.server.bind.ip().is_loopback()
    }
}

fn figment_message(e: &figment::Error) -> String {
    let source = e.metadata.as_ref().map(|m| format!(" (from {})", m.name)).unwrap_or_default();
    format!("{}{source}", e.kind)
}

/// The sections as figment extracts them: types checked, values not yet.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    server: RawServer,
    webhook: RawWebhook,
    queue: RawQueue,
    store: RawStore,
    worker: WorkerSettings,
    classifier: ClassifierSettings,
    reconciler: ReconcilerSettings,
    buildkite: RawBuildkite,
    github: RawGitHub,
    admin: RawAdmin,
    security: SecuritySettings,
    integrations: IntegrationsSettings,
    log: LogSettings,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    bind: String,
    max_body_bytes: ByteSize,
    #[serde(rename = "shutdown_grace_secs", deserialize_with = "duration::secs")]
    shutdown_grace: Duration,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebhook {
    token: Option<SecretString>,
    token_file: Option<PathBuf>,
    #[serde(rename = "max_skew_secs", deserialize_with = "duration::secs")]
    max_skew: Duration,
}

/// Every queue key; each backend keeps the ones it reads.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQueue {
    kind: QueueKind,
    url: SecretString,
    prefix: String,
    max_attempts: u32,
    #[serde(rename = "publish_timeout_ms", deserialize_with = "duration::millis")]
    publish_timeout: Duration,
    prefetch: u16,
    #[serde(rename = "visibility_timeout_secs", deserialize_with = "duration::secs")]
    visibility_timeout: Duration,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStore {
    url: SecretString,
    max_connections: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBuildkite {
    api_url: String,
    token: Option<SecretString>,
    token_file: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGitHub {
    api_url: String,
    web_host: Option<String>,
    app_id: Option<u64>,
    private_key_path: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAdmin {
    token: Option<SecretString>,
    token_file: Option<PathBuf>,
}

/// Collects problems while checking, so all of them are reported together.
#[derive(Default)]
struct Checker {
    problems: Vec<Problem>,
}

impl Checker {
    fn problem(&mut self, key: &str, message: impl Into<String>) {
        self.problems.push(Problem { key: key.into(), message: message.into() });
    }

    fn http_url(&mut self, key: &str, value: &str) -> Option<Url> {
        match Url::parse(value) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {
                Some(url)
            }
            Ok(_) => {
                self.problem(key, format!("`{value}` must be an http:// or https:// URL"));
                None
            }
            Err(e) => {
                self.problem(key, format!("`{value}` is not a URL ({e})"));
                None
            }
        }
    }

    fn at_least<T: PartialOrd + fmt::Display + Copy>(&mut self, key: &str, value: T, min: T) {
        if value < min {
            self.problem(key, format!("must be at least {min}, got {value}"));
        }
    }

    /// A secret given inline or as a file (Kubernetes Secrets are mounted as files).
    fn secret(
        &mut self,
        key: &str,
        inline: Option<SecretString>,
        file: Option<PathBuf>,
    ) -> Option<SecretString> {
        match (inline, file) {
            (Some(_), Some(_)) => {
                self.problem(key, format!("set either {key} or {key}_file, not both"));
                None
            }
            (Some(s), None) => Some(s),
            (None, Some(path)) => match std::fs::read_to_string(&path) {
                Ok(s) if !s.trim().is_empty() => Some(SecretString::from(s.trim().to_owned())),
                Ok(_) => {
                    self.problem(&format!("{key}_file"), format!("`{}` is empty", path.display()));
                    None
                }
                Err(e) => {
                    self.problem(
                        &format!("{key}_file"),
                        format!("cannot read `{}`: {e}", path.display()),
                    );
                    None
                }
            },
            (None, None) => None,
        }
    }
}

impl RawSettings {
    /// Checks every section in the order of `config/default.toml`, so problems are listed
    /// in the order an operator reads the file.
    fn check(self) -> Result<Settings, ConfigError> {
        let mut c = Checker::default();
        let server = self.server.check(&mut c);
        let webhook = self.webhook.check(&mut c);
        let queue = self.queue.check(&mut c);
        let store = self.store.check(&mut c);
        self.security.check(&mut c, store.as_ref().map(|s| &s.backend));
        self.worker.check(&mut c);
        self.reconciler.check(&mut c);
        self.classifier.check(&mut c);
        if let Some(queue) = &queue {
            build_fits_in_lease(&mut c, &self.worker, queue);
        }
        let buildkite = self.buildkite.check(&mut c);
        let github = self.github.check(&mut c);
        let admin = self.admin.check(&mut c);
        self.log.check(&mut c);

        let (
            Some(server),
            Some(webhook),
            Some(queue),
            Some(store),
            Some(buildkite),
            Some(github),
            Some(admin),
        ) = (server, webhook, queue, store, buildkite, github, admin)
        else {
            return Err(ConfigError { problems: c.problems });
        };
        if !c.problems.is_empty() {
            return Err(ConfigError { problems: c.problems });
        }
        Ok(Settings {
            server,
            webhook,
            queue,
            store,
            worker: self.worker,
            classifier: self.classifier,
            reconciler: self.reconciler,
            buildkite,
            github,
            admin,
            security: self.security,
            integrations: self.integrations,
            log: self.log,
        })
    }
}

impl RawServer {
    fn check(self, c: &mut Checker) -> Option<ServerSettings> {
        let bind = match self.bind.parse::<SocketAddr>() {
            Ok(bind) => Some(bind),
            Err(_) => {
                c.problem(
                    "server.bind",
                    format!("`{}` is not an address with a port, like 127.0.0.1:8080", self.bind),
                );
                None
            }
        };
        c.at_least("server.max_body_bytes", self.max_body_bytes.get(), 1024);
        Some(ServerSettings {
            bind: bind?,
            max_body_bytes: self.max_body_bytes,
            shutdown_grace: self.shutdown_grace,
        })
    }
}

impl RawWebhook {
    fn check(self, c: &mut Checker) -> Option<WebhookSettings> {
        let token = c.secret("webhook.token", self.token, self.token_file);
        if let Some(t) = &token
            && t.expose_secret().len() < 8
        {
            c.problem("webhook.token", "is too short to be a Buildkite webhook token");
        }
        c.at_least("webhook.max_skew_secs", self.max_skew.as_secs(), 1);
        Some(WebhookSettings { token, max_skew: self.max_skew })
    }
}

impl RawQueue {
    /// Only the chosen backend's keys are checked: an embedded queue never reads
    /// `queue.url`, so a placeholder there must not stop it.
    fn check(self, c: &mut Checker) -> Option<QueueSettings> {
        let backend = match self.kind {
            QueueKind::Embedded => {
                c.at_least("queue.max_attempts", self.max_attempts, 1);
                c.at_least("queue.visibility_timeout_secs", self.visibility_timeout.as_secs(), 5);
                QueueBackend::Embedded { visibility_timeout: self.visibility_timeout }
            }
            QueueKind::RabbitMq => {
                match Url::parse(self.url.expose_secret()) {
                    Ok(u) if matches!(u.scheme(), "amqp" | "amqps") => {}
                    // The value may hold a password: never echo it back.
                    _ => c.problem("queue.url", "must be an amqp:// or amqps:// URL"),
                }
                if self.prefix.is_empty()
                    || !self
                        .prefix
                        .chars()
                        .all(|ch| ch.is_ascii_alphanumeric() || "-_.".contains(ch))
                {
                    c.problem("queue.prefix", "must be non-empty letters, digits, `-`, `_` or `.`");
                }
                c.at_least("queue.max_attempts", self.max_attempts, 1);
                c.at_least("queue.publish_timeout_ms", self.publish_timeout.as_millis(), 10);
                c.at_least("queue.prefetch", self.prefetch, 1);
                QueueBackend::RabbitMq {
                    url: self.url,
                    prefix: self.prefix,
                    prefetch: self.prefetch,
                    publish_timeout: self.publish_timeout,
                }
            }
        };
        Some(QueueSettings { backend, max_attempts: self.max_attempts })
    }
}

impl RawStore {
    fn check(self, c: &mut Checker) -> Option<StoreSettings> {
        let backend =
            StoreBackend::parse(self.url).map_err(|e| c.problem("store.url", e.to_string()));
        c.at_least("store.max_connections", self.max_connections, 1);
        Some(StoreSettings { backend: backend.ok()?, max_connections: self.max_connections })
    }
}

impl SecuritySettings {
    /// With PostgreSQL the key must be given and exist: every replica must seal with the
    /// same key, so none may make up its own. `store` is `None` when `store.url` is bad.
    fn check(&self, c: &mut Checker, store: Option<&StoreBackend>) {
        if !store.is_some_and(StoreBackend::is_postgres) {
            return;
        }
        match &self.encryption_key_file {
            None => c.problem(
                "security.encryption_key_file",
                "is required with a PostgreSQL store (every replica needs the same key): create one with `openssl rand -hex 32 > kitefix.key && chmod 600 kitefix.key` and point this key at it",
            ),
            Some(path) if !path.is_file() => c.problem(
                "security.encryption_key_file",
                format!(
                    "`{}` is not a readable file; create it with `openssl rand -hex 32 > {0}`",
                    path.display()
                ),
            ),
            Some(_) => {}
        }
    }
}

impl WorkerSettings {
    fn check(&self, c: &mut Checker) {
        c.at_least("worker.concurrency", self.concurrency, 1);
        c.at_least("worker.build_timeout_secs", self.build_timeout.as_secs(), 1);
        c.at_least("worker.jobs_per_build", self.jobs_per_build, 1);
    }
}

impl ReconcilerSettings {
    fn check(&self, c: &mut Checker) {
        if self.interval.is_some_and(|every| every < Duration::from_secs(30)) {
            c.problem(
                "reconciler.interval_secs",
                "must be 0 (off) or at least 30: each pass lists every connected organisation's failed builds and counts against Buildkite's rate limit",
            );
        }
    }
}

impl ClassifierSettings {
    fn check(&self, c: &mut Checker) {
        if let Some(dir) = &self.rules_dir
            && !dir.is_dir()
        {
            c.problem("classifier.rules_dir", format!("`{}` is not a folder", dir.display()));
        }
    }
}

/// A build must finish within the embedded queue's lease, or a slow build is handed to a
/// second worker while the first still runs. The lease is the embedded queue's own
/// setting; RabbitMQ's counterpart is the broker's `consumer_timeout`
/// (https://www.rabbitmq.com/docs/consumers#acknowledgement-timeout), not a kitefix key.
fn build_fits_in_lease(c: &mut Checker, worker: &WorkerSettings, queue: &QueueSettings) {
    if let QueueBackend::Embedded { visibility_timeout } = queue.backend
        && worker.build_timeout >= visibility_timeout
    {
        c.problem(
            "worker.build_timeout_secs",
            "must be shorter than queue.visibility_timeout_secs, or a slow build is handed to a second worker while the first still runs",
        );
    }
}

impl RawBuildkite {
    fn check(self, c: &mut Checker) -> Option<BuildkiteSettings> {
        let api_url = c.http_url("buildkite.api_url", &self.api_url);
        let token = c.secret("buildkite.token", self.token, self.token_file);
        Some(BuildkiteSettings { api_url: api_url?, token })
    }
}

impl RawGitHub {
    fn check(self, c: &mut Checker) -> Option<GitHubSettings> {
        let api_url = c.http_url("github.api_url", &self.api_url);
        let web_host = self.web_host.map(|h| h.trim().to_ascii_lowercase());
        if let Some(h) = &web_host
            && (h.is_empty() || url::Host::parse(h).is_err() || h.contains(['/', ':', '@']))
        {
            c.problem(
                "github.web_host",
                format!("`{h}` is not a host name; set it to the host in your repositories' git URLs, e.g. `ghe.example.com`"),
            );
        }
        let app = match (self.app_id, self.private_key_path) {
            (Some(app_id), Some(path)) => {
                if !path.is_file() {
                    c.problem(
                        "github.private_key_path",
                        format!(
                            "`{}` is not a readable file (the App's PEM private key)",
                            path.display()
                        ),
                    );
                }
                Some(GitHubApp { app_id, private_key_path: path })
            }
            (None, None) => None,
            (Some(_), None) => {
                c.problem("github.private_key_path", "is required when github.app_id is set");
                None
            }
            (None, Some(_)) => {
                c.problem("github.app_id", "is required when github.private_key_path is set");
                None
            }
        };
        Some(GitHubSettings { api_url: api_url?, web_host, app })
    }
}

impl RawAdmin {
    fn check(self, c: &mut Checker) -> Option<AdminSettings> {
        let token = c.secret("admin.token", self.token, self.token_file);
        if let Some(t) = &token
            && t.expose_secret().len() < 16
        {
            c.problem("admin.token", "must be at least 16 characters");
        }
        Some(AdminSettings { token })
    }
}

impl LogSettings {
    fn check(&self, c: &mut Checker) {
        if self.level.parse::<tracing_subscriber::EnvFilter>().is_err() {
            c.problem("log.level", format!("`{}` is not a tracing filter like `info`", self.level));
        }
    }
}

#[cfg(test)]
mod tests {
    use figment::providers::Serialized;

    use super::*;

    fn load(overrides: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let mut f = Figment::new().merge(Toml::string(DEFAULTS));
        for (k, v) in overrides {
            f = f.merge(Serialized::default(k, v));
        }
        Settings::from_figment(f)
    }

    fn keys(e: ConfigError) -> Vec<String> {
        e.problems.into_iter().map(|p| p.key).collect()
    }

    #[test]
    fn defaults_are_the_embedded_setup() {
        let s = load(&[]).unwrap();
        assert_eq!(s.server.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(s.server.max_body_bytes.get(), 5 << 20);
        assert_eq!(s.queue.kind(), QueueKind::Embedded);
        assert!(s.github.app.is_none(), "no App configured means dry-run");
        assert!(s.webhook.token.is_none());
        assert!(s.admin_open_without_token());
        assert_eq!(s.integrations.verify_interval, Some(Duration::from_secs(3600)));
        assert!(s.security.encryption_key_file.is_none(), "SQLite generates its key");
    }

    #[test]
    fn every_problem_is_reported_with_its_key() {
        let err = load(&[
            ("server.bind", "localhost"),
            ("buildkite.api_url", "ftp://x"),
            ("queue.kind", "rabbitmq"),
            ("queue.url", "http://guest:hunter22@x"),
        ])
        .unwrap_err();
        assert_eq!(keys(err), ["server.bind", "queue.url", "buildkite.api_url"]);
    }

    #[test]
    fn problems_never_echo_a_password() {
        let err = load(&[("queue.kind", "rabbitmq"), ("queue.url", "http://guest:hunter22@x")])
            .unwrap_err();
        assert!(!err.to_string().contains("hunter22"), "{err}");
    }

    #[test]
    fn type_errors_name_the_key() {
        let err = load(&[("queue.kind", "kafka")]).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("queue.kind"), "{text}");
        assert!(text.contains("rabbitmq"), "should list the accepted values: {text}");
        assert!(text.contains("KITEFIX_QUEUE__KIND"), "should say how to set it: {text}");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = load(&[("server.bindd", "x")]).unwrap_err();
        assert!(err.to_string().contains("bindd"), "{err}");
    }

    #[test]
    fn app_id_needs_a_key() {
        let f = Figment::new()
            .merge(Toml::string(DEFAULTS))
            .merge(Serialized::default("github.app_id", 42));
        let err = Settings::from_figment(f).unwrap_err();
        assert_eq!(keys(err), ["github.private_key_path"]);
    }

    #[test]
    fn postgres_needs_an_encryption_key_file() {
        let err = load(&[("store.url", "postgres://kitefix@db/kitefix")]).unwrap_err();
        let text = err.to_string();
        assert_eq!(keys(err), ["security.encryption_key_file"]);
        assert!(text.contains("openssl rand -hex 32"), "says how to fix it: {text}");
        assert!(load(&[]).is_ok(), "SQLite generates its key");
    }

    #[test]
    fn the_embedded_queue_ignores_the_rabbitmq_keys() {
        let s = load(&[("queue.url", "not a url"), ("queue.prefix", "")]).unwrap();
        assert!(matches!(
            s.queue.backend,
            QueueBackend::Embedded { visibility_timeout } if visibility_timeout == Duration::from_secs(900)
        ));
        let err = load(&[("queue.kind", "rabbitmq"), ("queue.prefix", "")]).unwrap_err();
        assert_eq!(keys(err), ["queue.prefix"]);
    }

    #[test]
    fn durations_keep_their_unit_from_the_key_name() {
        let f = Figment::new()
            .merge(Toml::string(DEFAULTS))
            .merge(Serialized::default("queue.kind", "rabbitmq"))
            .merge(Serialized::default("queue.publish_timeout_ms", 250))
            .merge(Serialized::default("reconciler.interval_secs", 0));
        let s = Settings::from_figment(f).unwrap();
        let QueueBackend::RabbitMq { publish_timeout, .. } = s.queue.backend else {
            panic!("rabbitmq was asked for")
        };
        assert_eq!(publish_timeout, Duration::from_millis(250));
        assert_eq!(s.server.shutdown_grace, Duration::from_secs(30));
        assert_eq!(s.reconciler.interval, None, "0 turns the reconciler off");
        assert_eq!(s.reconciler.lookback, Duration::from_secs(3600));
    }

    #[test]
    fn the_store_backend_is_resolved_once() {
        let s = load(&[]).unwrap();
        assert!(matches!(
            &s.store.backend,
            StoreBackend::Sqlite { file: Some(f), .. } if f == Path::new("kitefix.db")
        ));
        let err = load(&[("store.url", "mysql://kitefix@db/kitefix")]).unwrap_err();
        assert_eq!(
            keys(err),
            ["store.url"],
            "no key-file problem for a store that is not PostgreSQL"
        );
    }

    #[test]
    fn env_names_follow_the_contract() {
        assert_eq!(env_name("server.max_body_bytes"), "KITEFIX_SERVER__MAX_BODY_BYTES");
    }
}
