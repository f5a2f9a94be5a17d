//! The GitHub App client: App JWT → installation for a repository → installation token →
//! one request, classified into [`GitHubError`] and counted in [`GitHubMetrics`].
//!
//! octocrab is used for transport, base URL, JWT signing and error parsing, but with its
//! retry layer off: its default `RetryConfig::Simple(3)` re-sends any request, POSTs
//! included, on 5xx, 429 and transport errors, immediately — a 502 after GitHub stored a
//! check run would create a second one (docs/github.md#octocrab-retries, verified against a
//! stub). Retries belong to the queue, which can wait as long as GitHub asks.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use chrono::Utc;
use octocrab::Octocrab;
use octocrab::service::middleware::retry::RetryConfig;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::Instrument;
use url::Url;

use super::auth::{InstallationResponse, InstallationToken, TokenResponse};
use super::error::GitHubError;
use super::metrics::GitHubMetrics;
use super::repo::{GitHubHost, RepoFullName};

/// The default time a whole request may take before it counts as transient.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// What kitefix needs to act as a GitHub App (`github.*` in the configuration).
#[derive(Clone)]
pub struct GitHubAppConfig {
    /// `github.api_url`: `https://api.github.com`, `https://ghe.example.com/api/v3`, or a
    /// test stub.
    pub api_url: Url,
    /// `github.app_id`: the App's numeric id ("App ID" on its settings page).
    pub app_id: u64,
    /// The App's private key (PEM, as GitHub downloads it).
    pub private_key_pem: SecretString,
    /// Longest time one request may take.
    pub request_timeout: Duration,
}

impl GitHubAppConfig {
    /// The configuration for `github.api_url`, `github.app_id` and the key read from
    /// `github.private_key_path`, with the default request timeout.
    pub fn from_key_file(api_url: Url, app_id: u64, key_path: &Path) -> Result<Self, GitHubError> {
        let pem = std::fs::read_to_string(key_path).map_err(|e| {
            GitHubError::Config(format!(
                "github.private_key_path `{}` could not be read: {e}",
                key_path.display()
            ))
        })?;
        Ok(Self {
            api_url,
            app_id,
            private_key_pem: SecretString::from(pem),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
        })
    }
}

impl std::fmt::Debug for GitHubAppConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitHubAppConfig")
            .field("api_url", &self.api_url.as_str())
            .field("app_id", &self.app_id)
            .field("private_key_pem", &"[redacted]")
            .field("request_timeout", &self.request_timeout)
            .finish()
    }
}

/// The GitHub operations kitefix performs, named by their OpenAPI operation id (the
/// `endpoint` label of the metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    GetRepoInstallation,
    CreateInstallationToken,
    CreateCheckRun,
    UpdateCheckRun,
    ListCheckRunsForRef,
}

impl Endpoint {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Endpoint::GetRepoInstallation => "apps/get-repo-installation",
            Endpoint::CreateInstallationToken => "apps/create-installation-access-token",
            Endpoint::CreateCheckRun => "checks/create",
            Endpoint::UpdateCheckRun => "checks/update",
            Endpoint::ListCheckRunsForRef => "checks/list-for-ref",
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Method {
    Get,
    Post,
    Patch,
}

type TokenSlot = Arc<tokio::sync::Mutex<Option<InstallationToken>>>;

/// A GitHub App client. One per process: it caches the installation of each repository
/// and one token per installation. Must be created inside a Tokio runtime (octocrab
/// spawns its connection worker there).
pub struct GitHubClient {
    /// Authenticated as the App (JWT); the clone made per request carries a token instead.
    app: Octocrab,
    app_id: u64,
    host: GitHubHost,
    timeout: Duration,
    /// Installation id per repository. Repositories do not move between installations
    /// often; when a token mint says the installation is gone, its entries are dropped.
    installations: Mutex<HashMap<RepoFullName, u64>>,
    tokens: Mutex<HashMap<u64, TokenSlot>>,
    generation: AtomicU64,
    metrics: GitHubMetrics,
}

impl std::fmt::Debug for GitHubClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitHubClient")
            .field("app_id", &self.app_id)
            .field("host", &self.host)
            .finish_non_exhaustive()
    }
}

impl GitHubClient {
    /// Builds the App client. Fails on a key that is not an RSA PEM or an unusable URL.
    pub fn new(config: &GitHubAppConfig, metrics: GitHubMetrics) -> Result<Self, GitHubError> {
        let key =
            octocrab::EncodingKey::from_rsa_pem(config.private_key_pem.expose_secret().as_bytes())
                .map_err(|e| {
                    GitHubError::Config(format!("the private key is not an RSA PEM key: {e}"))
                })?;
        let host = GitHubHost::from_api_url(&config.api_url).ok_or_else(|| {
            GitHubError::Config(format!("github.api_url `{}` has no host", config.api_url))
        })?;
        let app = Octocrab::builder()
            .base_uri(config.api_url.as_str())
            .map_err(|e| GitHubError::Config(format!("github.api_url `{}`: {e}", config.api_url)))?
            .app(octocrab::models::AppId(config.app_id), key)
            .add_retry_config(RetryConfig::None)
            .set_connect_timeout(Some(Duration::from_secs(10)))
            .set_read_timeout(Some(config.request_timeout))
            .set_write_timeout(Some(config.request_timeout))
            .build()
            .map_err(|e| GitHubError::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            app,
            app_id: config.app_id,
            host,
            timeout: config.request_timeout,
            installations: Mutex::default(),
            tokens: Mutex::default(),
            generation: AtomicU64::new(0),
            metrics,
        })
    }

    /// The App's id.
    pub(crate) fn app_id(&self) -> u64 {
        self.app_id
    }

    /// The metrics this client records into.
    pub(crate) fn metrics(&self) -> &GitHubMetrics {
        &self.metrics
    }

    /// One request on `repo` with its installation token. A 401 means GitHub did not act
    /// on the request (revoked or early-expired token), so it is re-sent once with a
    /// freshly minted token — safe even for a POST; a second 401 is final.
    #[tracing::instrument(skip_all, fields(repo = %repo, endpoint = endpoint.as_str()))]
    pub(crate) async fn call<B, T>(
        &self,
        repo: &RepoFullName,
        endpoint: Endpoint,
        method: Method,
        route: &str,
        body: Option<&B>,
    ) -> Result<T, GitHubError>
    where
        B: Serialize + ?Sized + Sync,
        T: DeserializeOwned,
    {
        let installation = self.installation_id(repo).await?;
        let token = self.token(repo, installation, None).await?;
        match self.send_with_token(&token, endpoint, method, route, body).await {
            Err(GitHubError::Unauthorized { .. }) => {
                tracing::warn!(
                    endpoint = endpoint.as_str(),
                    installation,
                    "GitHub refused the installation token; minting a new one and retrying once"
                );
                let token = self.token(repo, installation, Some(token.generation)).await?;
                self.send_with_token(&token, endpoint, method, route, body).await
            }
            other => other,
        }
    }

    async fn send_with_token<B, T>(
        &self,
        token: &InstallationToken,
        endpoint: Endpoint,
        method: Method,
        route: &str,
        body: Option<&B>,
    ) -> Result<T, GitHubError>
    where
        B: Serialize + ?Sized + Sync,
        T: DeserializeOwned,
    {
        // Shares the App client's connection pool; only the Authorization header differs.
        let crab = self
            .app
            .user_access_token(token.secret.clone())
            .map_err(|e| GitHubError::Config(format!("cannot use the installation token: {e}")))?;
        self.send(&crab, endpoint, method, route, body).await
    }

    /// The installation of the App on `repo`, cached (GitHub docs: `GET
    /// /repos/{owner}/{repo}/installation`, authenticated with the App's JWT).
    #[tracing::instrument(skip_all, fields(repo = %repo))]
    async fn installation_id(&self, repo: &RepoFullName) -> Result<u64, GitHubError> {
        if let Some(id) =
            self.installations.lock().unwrap_or_else(PoisonError::into_inner).get(repo)
        {
            return Ok(*id);
        }
        let route = format!("/repos/{}/{}/installation", repo.owner(), repo.name());
        let installation: InstallationResponse = self
            .send(&self.app, Endpoint::GetRepoInstallation, Method::Get, &route, None::<&()>)
            .await
            .map_err(|e| match e {
                GitHubError::NotFound { .. } => GitHubError::NotInstalled { repo: repo.clone() },
                other => other,
            })?;
        self.installations
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(repo.clone(), installation.id);
        Ok(installation.id)
    }

    /// A token for `installation` with more than five minutes left, minting one if needed.
    /// Concurrent callers for one installation wait for a single mint. `stale` is the
    /// generation of a token GitHub just refused: it is never handed out again.
    #[tracing::instrument(skip_all, fields(installation = installation))]
    async fn token(
        &self,
        repo: &RepoFullName,
        installation: u64,
        stale: Option<u64>,
    ) -> Result<InstallationToken, GitHubError> {
        let slot = self
            .tokens
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(installation)
            .or_default()
            .clone();
        let mut cached = slot.lock().await;
        if let Some(token) = cached.as_ref()
            && token.is_fresh(Utc::now())
            && Some(token.generation) != stale
        {
            return Ok(token.clone());
        }
        let route = format!("/app/installations/{installation}/access_tokens");
        let minted: TokenResponse = self
            .send(&self.app, Endpoint::CreateInstallationToken, Method::Post, &route, None::<&()>)
            .await
            .map_err(|e| match e {
                GitHubError::NotFound { .. } => {
                    // Uninstalled (or reinstalled under a new id): look it up afresh next time.
                    self.installations
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .retain(|_, id| *id != installation);
                    GitHubError::NotInstalled { repo: repo.clone() }
                }
                other => other,
            })?;
        let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
        let token = InstallationToken::from_response(minted, Utc::now(), generation);
        self.metrics.token_refreshes.inc();
        tracing::debug!(expires_at = %token.expires_at, "minted a GitHub installation token");
        *cached = Some(token.clone());
        Ok(token)
    }

    /// Sends one request (never retried here), records it, and sorts any failure.
    async fn send<B, T>(
        &self,
        crab: &Octocrab,
        endpoint: Endpoint,
        method: Method,
        route: &str,
        body: Option<&B>,
    ) -> Result<T, GitHubError>
    where
        B: Serialize + ?Sized + Sync,
        T: DeserializeOwned,
    {
        let span = tracing::debug_span!(
            "github_request",
            endpoint = endpoint.as_str(),
            status = tracing::field::Empty
        );
        let started = Instant::now();
        let (status, result) =
            match tokio::time::timeout(self.timeout, exchange(crab, method, route, body))
                .instrument(span.clone())
                .await
            {
                Ok((status, result)) => (status, result),
                Err(_) => (
                    "timeout".to_owned(),
                    Err(RawError::Transport(format!("no response within {:?}", self.timeout))),
                ),
            };
        span.record("status", status.as_str());
        let name = endpoint.as_str();
        self.metrics.requests.with_label_values(&[name, status.as_str()]).inc();
        self.metrics
            .request_duration
            .with_label_values(&[name])
            .observe(started.elapsed().as_secs_f64());
        let error = match result {
            Ok(text) => {
                return serde_json::from_str(&text).map_err(|e| GitHubError::UnexpectedResponse {
                    endpoint: name,
                    reason: e.to_string(),
                });
            }
            Err(RawError::Transport(reason)) => {
                GitHubError::Transient { endpoint: name, status: None, reason }
            }
            Err(RawError::Config(reason)) => GitHubError::Config(reason),
            Err(RawError::Status { status, message, headers }) => {
                let header =
                    |name: &str| headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
                GitHubError::from_response(name, status, &message, header, now_epoch())
            }
        };
        tracing::debug!(endpoint = name, kind = error.kind(), error = %error, "GitHub call failed");
        if let GitHubError::RateLimited { retry_after, .. } = &error {
            self.metrics.rate_limited.with_label_values(&[name]).inc();
            tracing::warn!(
                endpoint = name,
                retry_after_secs = retry_after.as_secs(),
                "GitHub rate limit"
            );
        }
        Err(error)
    }
}

/// A request's outcome before classification.
enum RawError {
    Transport(String),
    Config(String),
    Status { status: u16, message: String, headers: Vec<(String, String)> },
}

/// The headers that decide how an error is handled (GitHub docs, "Rate limits for the
/// REST API"; `X-Accepted-GitHub-Permissions` from "Troubleshooting the REST API").
const ERROR_HEADERS: [&str; 4] =
    ["retry-after", "x-ratelimit-remaining", "x-ratelimit-reset", "x-accepted-github-permissions"];

/// Performs the exchange; returns the status label for metrics and the body or error.
async fn exchange<B>(
    crab: &Octocrab,
    method: Method,
    route: &str,
    body: Option<&B>,
) -> (String, Result<String, RawError>)
where
    B: Serialize + ?Sized + Sync,
{
    // Routes are relative: octocrab only attaches credentials to requests without an
    // authority (or to api.github.com), and prefixes the configured base URL.
    let response = match method {
        Method::Get => crab._get(route).await,
        Method::Post => crab._post(route, body).await,
        Method::Patch => crab._patch(route, body).await,
    };
    let response = match response {
        Ok(response) => response,
        Err(e) => return ("transport".to_owned(), Err(transport_or_config(e))),
    };
    let status = response.status().as_u16().to_string();
    let result = match octocrab::map_github_error(response).await {
        Ok(response) => crab.body_to_string(response).await.map_err(transport_or_config),
        Err(octocrab::Error::GitHub { source, .. }) => {
            let headers = source
                .headers
                .as_ref()
                .map(|h| {
                    ERROR_HEADERS
                        .iter()
                        .filter_map(|name| {
                            let value = h.get(*name)?.to_str().ok()?;
                            Some(((*name).to_owned(), value.to_owned()))
                        })
                        .collect()
                })
                .unwrap_or_default();
            let mut message = source.message.clone();
            if let Some(errors) = source.errors.as_ref().filter(|e| !e.is_empty()) {
                let details: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
                message = format!("{message} ({})", details.join("; "));
            }
            Err(RawError::Status { status: source.status_code.as_u16(), message, headers })
        }
        Err(other) => Err(transport_or_config(other)),
    };
    (status, result)
}

/// octocrab errors without an HTTP status: a connection or body problem is transient; a
/// request we could not even build, or a key that cannot sign, is our configuration.
fn transport_or_config(error: octocrab::Error) -> RawError {
    match error {
        octocrab::Error::JWT { source, .. } => {
            RawError::Config(format!("cannot sign the App JWT: {source}"))
        }
        e @ (octocrab::Error::Uri { .. }
        | octocrab::Error::UriParse { .. }
        | octocrab::Error::InvalidHeaderValue { .. }
        | octocrab::Error::Http { .. }
        | octocrab::Error::Serde { .. }) => {
            RawError::Config(format!("cannot build the request: {e}"))
        }
        other => RawError::Transport(other.to_string()),
    }
}

fn now_epoch() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pem: &str) -> GitHubAppConfig {
        GitHubAppConfig {
            api_url: Url::parse("https://ghe.example.com/api/v3").unwrap(),
            app_id: 1,
            private_key_pem: SecretString::from(pem.to_owned()),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
        }
    }

    #[test]
    fn a_key_that_is_not_rsa_pem_is_a_config_error_that_does_not_echo_it() {
        let secret_looking =
            "-----BEGIN RSA PRIVATE KEY-----\nnot-base64-hunter2\n-----END RSA PRIVATE KEY-----\n";
        let err =
            GitHubClient::new(&config(secret_looking), GitHubMetrics::unregistered().unwrap())
                .unwrap_err();
        assert_eq!(err.kind(), "config");
        assert!(!err.to_string().contains("hunter2"), "{err}");
        assert!(!format!("{:?}", config(secret_looking)).contains("hunter2"));
    }

    #[test]
    fn a_missing_key_file_names_the_setting() {
        let err = GitHubAppConfig::from_key_file(
            Url::parse("https://api.github.com").unwrap(),
            1,
            Path::new("/nonexistent/kitefix-app.pem"),
        )
        .unwrap_err();
        assert!(err.to_string().contains("github.private_key_path"), "{err}");
    }
}
