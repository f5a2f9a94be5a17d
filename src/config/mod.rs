//! Layered configuration: built-in defaults (`config/default.toml`), then the TOML file
//! given with `--config`, then `KITEFIX_<SECTION>__<KEY>` environment variables.
//!
//! Loading is two steps. figment extracts the raw sections (type errors name the key and
//! where the value came from); `validate` then checks every value and cross-field rule
//! and reports *all* problems at once, each naming the key and how to fix it, so an
//! operator fixes a broken deployment in one round.

mod byte_size;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use secrecy::SecretString;
use serde::Deserialize;
use url::Url;

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
    pub max_body_bytes: ByteSize,
    pub shutdown_grace_secs: u64,
}

#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// The single-organisation webhook token; `None` refuses every webhook on
    /// `/webhooks/buildkite` with 401.
    pub token: Option<SecretString>,
    pub max_skew_secs: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QueueKind {
    Embedded,
    RabbitMq,
}

#[derive(Debug, Clone)]
pub struct QueueSettings {
    pub kind: QueueKind,
    pub url: SecretString,
    pub prefix: String,
    pub max_attempts: u32,
    pub publish_timeout_ms: u64,
    pub prefetch: u16,
    pub visibility_timeout_secs: u64,
}

#[derive(Debug, Clone)]
pub struct StoreSettings {
    pub url: SecretString,
    pub max_connections: u32,
}

#[derive(Debug, Clone)]
pub struct WorkerSettings {
    pub concurrency: usize,
    pub build_timeout_secs: u64,
    pub jobs_per_build: usize,
}

/// Polling Buildkite for failed builds whose webhook never arrived.
#[derive(Debug, Clone)]
pub struct ReconcilerSettings {
    /// Seconds between passes; 0 turns the reconciler off.
    pub interval_secs: u64,
    /// How far back the first pass for an organisation looks.
    pub lookback_secs: u64,
}

#[derive(Debug, Clone)]
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

#[derive(Debug, Clone)]
pub struct SecuritySettings {
    pub encryption_key_file: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct IntegrationsSettings {
    /// How often connected organisations' tokens are checked with Buildkite again; 0
    /// turns the check off.
    pub verify_interval_secs: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Pretty,
}

#[derive(Debug, Clone)]
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
        raw.validate()
    }

    /// The admin API is open without a token only when nothing but this machine can reach
    /// it (DESIGN.md: "none: admin API only on a loopback bind").
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
    worker: RawWorker,
    classifier: RawClassifier,
    reconciler: RawReconciler,
    buildkite: RawBuildkite,
    github: RawGitHub,
    admin: RawAdmin,
    security: RawSecurity,
    integrations: RawIntegrations,
    log: RawLog,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    bind: String,
    max_body_bytes: ByteSize,
    shutdown_grace_secs: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebhook {
    token: Option<SecretString>,
    token_file: Option<PathBuf>,
    max_skew_secs: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQueue {
    kind: QueueKind,
    url: SecretString,
    prefix: String,
    max_attempts: u32,
    publish_timeout_ms: u64,
    prefetch: u16,
    visibility_timeout_secs: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStore {
    url: SecretString,
    max_connections: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWorker {
    concurrency: usize,
    build_timeout_secs: u64,
    jobs_per_build: usize,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReconciler {
    interval_secs: u64,
    lookback_secs: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClassifier {
    rules_dir: Option<PathBuf>,
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSecurity {
    encryption_key_file: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIntegrations {
    verify_interval_secs: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLog {
    format: LogFormat,
    level: String,
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
    fn validate(self) -> Result<Settings, ConfigError> {
        use secrecy::ExposeSecret;

        let mut c = Checker::default();

        let bind = self.server.bind.parse::<SocketAddr>().unwrap_or_else(|_| {
            c.problem(
                "server.bind",
                format!(
                    "`{}` is not an address with a port, like 127.0.0.1:8080",
                    self.server.bind
                ),
            );
            SocketAddr::from(([127, 0, 0, 1], 8080))
        });
        c.at_least("server.max_body_bytes", self.server.max_body_bytes.get(), 1024);

        let webhook_token = c.secret("webhook.token", self.webhook.token, self.webhook.token_file);
        if let Some(t) = &webhook_token
            && t.expose_secret().len() < 8
        {
            c.problem("webhook.token", "is too short to be a Buildkite webhook token");
        }
        c.at_least("webhook.max_skew_secs", self.webhook.max_skew_secs, 1);

        match Url::parse(self.queue.url.expose_secret()) {
            Ok(u) if matches!(u.scheme(), "amqp" | "amqps") => {}
            // The value may hold a password: never echo it back.
            _ => c.problem("queue.url", "must be an amqp:// or amqps:// URL"),
        }
        if self.queue.prefix.is_empty()
            || !self.queue.prefix.chars().all(|ch| ch.is_ascii_alphanumeric() || "-_.".contains(ch))
        {
            c.problem("queue.prefix", "must be non-empty letters, digits, `-`, `_` or `.`");
        }
        c.at_least("queue.max_attempts", self.queue.max_attempts, 1);
        c.at_least("queue.publish_timeout_ms", self.queue.publish_timeout_ms, 10);
        c.at_least("queue.prefetch", self.queue.prefetch, 1);
        c.at_least("queue.visibility_timeout_secs", self.queue.visibility_timeout_secs, 5);

        let store_url = self.store.url.expose_secret();
        if !(store_url.starts_with("sqlite:")
            || store_url.starts_with("postgres://")
            || store_url.starts_with("postgresql://"))
        {
            c.problem("store.url", "must start with sqlite:// or postgres://");
        }
        c.at_least("store.max_connections", self.store.max_connections, 1);
        let postgres = store_url.starts_with("postgres");
        if postgres && self.security.encryption_key_file.is_none() {
            c.problem(
                "security.encryption_key_file",
                "is required with a PostgreSQL store (every replica needs the same key): create one with `openssl rand -hex 32 > kitefix.key && chmod 600 kitefix.key` and point this key at it",
            );
        }
        if let Some(path) = &self.security.encryption_key_file
            && postgres
            && !path.is_file()
        {
            c.problem(
                "security.encryption_key_file",
                format!(
                    "`{}` is not a readable file; create it with `openssl rand -hex 32 > {0}`",
                    path.display()
                ),
            );
        }
        c.at_least("worker.concurrency", self.worker.concurrency, 1);
        c.at_least("worker.build_timeout_secs", self.worker.build_timeout_secs, 1);
        c.at_least("worker.jobs_per_build", self.worker.jobs_per_build, 1);
        if self.reconciler.interval_secs != 0 && self.reconciler.interval_secs < 30 {
            c.problem(
                "reconciler.interval_secs",
                "must be 0 (off) or at least 30: each pass lists every connected organisation's failed builds and counts against Buildkite's rate limit",
            );
        }
        if let Some(dir) = &self.classifier.rules_dir
            && !dir.is_dir()
        {
            c.problem("classifier.rules_dir", format!("`{}` is not a folder", dir.display()));
        }
        if self.worker.build_timeout_secs >= self.queue.visibility_timeout_secs {
            c.problem(
                "worker.build_timeout_secs",
                "must be shorter than queue.visibility_timeout_secs, or a slow build is handed to a second worker while the first still runs",
            );
        }

        let buildkite_api = c.http_url("buildkite.api_url", &self.buildkite.api_url);
        let buildkite_token =
            c.secret("buildkite.token", self.buildkite.token, self.buildkite.token_file);
        let github_api = c.http_url("github.api_url", &self.github.api_url);
        let web_host = self.github.web_host.map(|h| h.trim().to_ascii_lowercase());
        if let Some(h) = &web_host
            && (h.is_empty() || url::Host::parse(h).is_err() || h.contains(['/', ':', '@']))
        {
            c.problem(
                "github.web_host",
                format!("`{h}` is not a host name; set it to the host in your repositories' git URLs, e.g. `ghe.example.com`"),
            );
        }
        let app = match (self.github.app_id, self.github.private_key_path) {
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
        let admin_token = c.secret("admin.token", self.admin.token, self.admin.token_file);
        if let Some(t) = &admin_token
            && t.expose_secret().len() < 16
        {
            c.problem("admin.token", "must be at least 16 characters");
        }
        if self.log.level.parse::<tracing_subscriber::EnvFilter>().is_err() {
            c.problem(
                "log.level",
                format!("`{}` is not a tracing filter like `info`", self.log.level),
            );
        }

        if !c.problems.is_empty() {
            return Err(ConfigError { problems: c.problems });
        }
        Ok(Settings {
            server: ServerSettings {
                bind,
                max_body_bytes: self.server.max_body_bytes,
                shutdown_grace_secs: self.server.shutdown_grace_secs,
            },
            webhook: WebhookSettings {
                token: webhook_token,
                max_skew_secs: self.webhook.max_skew_secs,
            },
            queue: QueueSettings {
                kind: self.queue.kind,
                url: self.queue.url,
                prefix: self.queue.prefix,
                max_attempts: self.queue.max_attempts,
                publish_timeout_ms: self.queue.publish_timeout_ms,
                prefetch: self.queue.prefetch,
                visibility_timeout_secs: self.queue.visibility_timeout_secs,
            },
            store: StoreSettings {
                url: self.store.url,
                max_connections: self.store.max_connections,
            },
            worker: WorkerSettings {
                concurrency: self.worker.concurrency,
                build_timeout_secs: self.worker.build_timeout_secs,
                jobs_per_build: self.worker.jobs_per_build,
            },
            classifier: ClassifierSettings { rules_dir: self.classifier.rules_dir },
            reconciler: ReconcilerSettings {
                interval_secs: self.reconciler.interval_secs,
                lookback_secs: self.reconciler.lookback_secs,
            },
            buildkite: BuildkiteSettings {
                api_url: buildkite_api.expect("checked above"),
                token: buildkite_token,
            },
            github: GitHubSettings { api_url: github_api.expect("checked above"), web_host, app },
            admin: AdminSettings { token: admin_token },
            security: SecuritySettings { encryption_key_file: self.security.encryption_key_file },
            integrations: IntegrationsSettings {
                verify_interval_secs: self.integrations.verify_interval_secs,
            },
            log: LogSettings { format: self.log.format, level: self.log.level },
        })
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
        assert_eq!(s.queue.kind, QueueKind::Embedded);
        assert!(s.github.app.is_none(), "no App configured means dry-run");
        assert!(s.webhook.token.is_none());
        assert!(s.admin_open_without_token());
        assert_eq!(s.integrations.verify_interval_secs, 3600);
        assert!(s.security.encryption_key_file.is_none(), "SQLite generates its key");
    }

    #[test]
    fn every_problem_is_reported_with_its_key() {
        let err = load(&[
            ("server.bind", "localhost"),
            ("buildkite.api_url", "ftp://x"),
            ("queue.url", "http://guest:hunter22@x"),
        ])
        .unwrap_err();
        assert_eq!(keys(err), ["server.bind", "queue.url", "buildkite.api_url"]);
    }

    #[test]
    fn problems_never_echo_a_password() {
        let err = load(&[("queue.url", "http://guest:hunter22@x")]).unwrap_err();
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
    fn env_names_follow_the_contract() {
        assert_eq!(env_name("server.max_body_bytes"), "KITEFIX_SERVER__MAX_BODY_BYTES");
    }
}
