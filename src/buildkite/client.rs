//! The Buildkite REST client (docs/buildkite.md#rest-api, docs/buildkite.md#rate-limits).
//!
//! Every request URL is the configured API base plus path segments made from checked ids
//! (`OrgSlug`, `PipelineSlug`, `BuildNumber`, `JobId`), never a URL from a payload or an
//! answer. The token goes only to that host: redirects are not followed, pagination
//! links only yield a page number, and the `Authorization` header is marked sensitive.

use std::fmt;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use regex::Regex;
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderMap, HeaderValue};
use reqwest::{Response, StatusCode};
use secrecy::zeroize::Zeroize;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tokio::time::Instant;
use url::Url;

use super::error::{BuildkiteError, Endpoint, RateLimitScope, TimeoutKind};
use super::log_stream::{JobLog, LogStream, LogUnavailable};
use super::metrics::BuildkiteMetrics;
use super::models::{AccessToken, Build, JobEnv, Organization};
use super::pagination::next_page;
use super::rate_limit::{Admission, BudgetKey, RateLimitHeaders, RateLimiter, TokenFingerprint};
use crate::domain::{BuildPath, JobId, OrgSlug};
use crate::logs::redact::{REDACTED, Redactor};

/// Time limits and caps of a [`BuildkiteClient`].
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Limit for establishing a connection.
    pub connect_timeout: Duration,
    /// Limit for a JSON call from sending to the last body byte, and for any call's
    /// response headers (including the log's).
    pub request_timeout: Duration,
    /// A log stream that sends nothing for this long fails.
    pub log_idle_timeout: Duration,
    /// A log must be fully read within this time from the request. Well below RabbitMQ's
    /// 30-minute consumer timeout (docs/rabbitmq.md#consumer-timeout).
    pub log_deadline: Duration,
    /// A request whose rate-limit budget resets within this time waits for it; beyond,
    /// the call fails with `RateLimited` so the queue can delay the message.
    pub max_rate_limit_wait: Duration,
    /// Largest JSON answer accepted (a build with many jobs and a big pipeline is a few MiB).
    pub max_json_bytes: usize,
    /// Most pages a list call follows (100 items each).
    pub max_pages: u32,
    /// Allow `http://` API URLs on hosts other than loopback (never in production: the
    /// token would cross the network in clear text).
    pub allow_insecure_http: bool,
    /// The `User-Agent` header.
    pub user_agent: String,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            log_idle_timeout: Duration::from_secs(30),
            log_deadline: Duration::from_secs(10 * 60),
            max_rate_limit_wait: Duration::from_secs(10),
            max_json_bytes: 32 << 20,
            max_pages: 50,
            allow_insecure_http: false,
            user_agent: concat!("kitefix/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }
}

/// How often one call may sleep for a short rate-limit reset before giving up with
/// `RateLimited` (a 429 right after a reset means someone else is spending the budget).
const MAX_RATE_LIMIT_WAITS: u32 = 2;

/// Used when a 429 names no reset: the windows are one minute (docs/buildkite.md#rate-limits).
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(60);

/// Error bodies are read up to this size for their message.
const MAX_ERROR_BODY: usize = 16 << 10;

/// A Buildkite REST API client. Cheap to clone; share one per process.
#[derive(Clone)]
pub struct BuildkiteClient {
    http: reqwest::Client,
    base: Arc<Url>,
    options: Arc<ClientOptions>,
    limiter: Arc<RateLimiter>,
    metrics: BuildkiteMetrics,
}

impl fmt::Debug for BuildkiteClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BuildkiteClient").field("api_url", &self.base.as_str()).finish()
    }
}

/// One call's context: which endpoint, with which token, charged to which organization.
struct Call<'a> {
    endpoint: Endpoint,
    token: &'a SecretString,
    org: Option<&'a OrgSlug>,
}

impl BuildkiteClient {
    /// A client for the API at `api_url` (e.g. `https://api.buildkite.com`). The URL must
    /// be `https` (or `http` on a loopback host), without credentials, query or fragment.
    pub fn new(api_url: Url, options: ClientOptions) -> Result<Self, BuildkiteError> {
        check_api_url(&api_url, options.allow_insecure_http)?;
        let http = reqwest::Client::builder()
            // Never follow a redirect: it would carry the token to whatever host it names
            // (docs/buildkite.md#redirects).
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(options.connect_timeout)
            .timeout(options.request_timeout)
            .user_agent(options.user_agent.clone())
            .https_only(api_url.scheme() == "https")
            .build()
            .map_err(|e| BuildkiteError::Config(format!("HTTP client: {e}")))?;
        let metrics = BuildkiteMetrics::unregistered()
            .map_err(|e| BuildkiteError::Config(format!("metrics: {e}")))?;
        Ok(Self {
            http,
            base: Arc::new(api_url),
            limiter: Arc::new(RateLimiter::new(options.max_rate_limit_wait)),
            options: Arc::new(options),
            metrics,
        })
    }

    /// Exports the client's metrics through `metrics` (see [`BuildkiteMetrics::register`]).
    pub fn with_metrics(mut self, metrics: BuildkiteMetrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// `GET /v2/access-token`: the token's scopes and expiry. Needs no scope, so it is
    /// the way to check a token (docs/buildkite.md#token-scopes).
    #[tracing::instrument(skip_all)]
    pub async fn access_token(&self, token: &SecretString) -> Result<AccessToken, BuildkiteError> {
        let call = Call { endpoint: Endpoint::AccessToken, token, org: None };
        let url = self.url(&["v2", "access-token"])?;
        self.tracked(&call, self.get_json(&call, url)).await
    }

    /// `GET /v2/organizations/{org}`: whether the token can see the organization
    /// (needs `read_organizations`).
    #[tracing::instrument(skip_all, fields(org = %org))]
    pub async fn get_organization(
        &self,
        token: &SecretString,
        org: &OrgSlug,
    ) -> Result<Organization, BuildkiteError> {
        let call = Call { endpoint: Endpoint::GetOrganization, token, org: Some(org) };
        let url = self.url(&["v2", "organizations", org.as_str()])?;
        self.tracked(&call, self.get_json(&call, url)).await
    }

    /// `GET …/pipelines/{p}/builds/{n}?include_retried_jobs=true`: the build with every
    /// attempt of every job (needs `read_builds`).
    #[tracing::instrument(skip_all, fields(org = %build.org, pipeline = %build.pipeline, build = %build.number))]
    pub async fn get_build(
        &self,
        token: &SecretString,
        build: &BuildPath,
    ) -> Result<Build, BuildkiteError> {
        let call = Call { endpoint: Endpoint::GetBuild, token, org: Some(&build.org) };
        let mut url = self.build_url(build, &[])?;
        url.query_pairs_mut().append_pair("include_retried_jobs", "true");
        self.tracked(&call, self.get_json(&call, url)).await
    }

    /// `GET …/jobs/{job}/log` as `text/plain`: the raw log, streamed (needs
    /// `read_build_logs`). 404/410 give [`JobLog::Unavailable`], not an error.
    #[tracing::instrument(skip_all, fields(org = %build.org, pipeline = %build.pipeline, build = %build.number, job = %job))]
    pub async fn job_log(
        &self,
        token: &SecretString,
        build: &BuildPath,
        job: &JobId,
    ) -> Result<JobLog, BuildkiteError> {
        let call = Call { endpoint: Endpoint::JobLog, token, org: Some(&build.org) };
        let url = self.build_url(build, &["jobs", job.as_str(), "log"])?;
        let deadline = Instant::now() + self.options.log_deadline;
        let opened = async {
            let response = self.send(&call, url, "text/plain", self.options.log_deadline).await?;
            match response.status() {
                status if status.is_success() => Ok(JobLog::Available(LogStream::new(
                    response,
                    deadline,
                    self.options.log_idle_timeout,
                    self.metrics.clone(),
                ))),
                StatusCode::NOT_FOUND | StatusCode::GONE => {
                    let status = response.status().as_u16();
                    let message = error_message(&call, response).await;
                    tracing::info!(status, "job log unavailable");
                    self.metrics.log_unavailable();
                    Ok(JobLog::Unavailable(LogUnavailable { status, message }))
                }
                _ => Err(error_for_status(&call, response).await),
            }
        };
        self.tracked(&call, opened).await
    }

    /// `GET …/jobs/{job}/env`: the job's environment, values kept secret (needs
    /// `read_job_env`). Use it only to build the redactor; never store it.
    #[tracing::instrument(skip_all, fields(org = %build.org, pipeline = %build.pipeline, build = %build.number, job = %job))]
    pub async fn job_env(
        &self,
        token: &SecretString,
        build: &BuildPath,
        job: &JobId,
    ) -> Result<JobEnv, BuildkiteError> {
        let call = Call { endpoint: Endpoint::JobEnv, token, org: Some(&build.org) };
        let url = self.build_url(build, &["jobs", job.as_str(), "env"])?;
        self.tracked(&call, self.get_json(&call, url)).await
    }

    /// `GET /v2/organizations/{org}/builds?state=failed&finished_from=…`: every failed
    /// build finished since `finished_from`, following `Link: rel="next"` on the
    /// configured host only, for the reconciler that catches lost webhooks. Stops after
    /// [`ClientOptions::max_pages`] pages (with a warning).
    #[tracing::instrument(skip_all, fields(org = %org, finished_from = %finished_from))]
    pub async fn list_failed_builds(
        &self,
        token: &SecretString,
        org: &OrgSlug,
        finished_from: DateTime<Utc>,
    ) -> Result<Vec<Build>, BuildkiteError> {
        let call = Call { endpoint: Endpoint::ListBuilds, token, org: Some(org) };
        self.tracked(&call, self.list_failed_pages(&call, org, finished_from)).await
    }

    async fn list_failed_pages(
        &self,
        call: &Call<'_>,
        org: &OrgSlug,
        finished_from: DateTime<Utc>,
    ) -> Result<Vec<Build>, BuildkiteError> {
        let since = finished_from.to_rfc3339_opts(SecondsFormat::Secs, true);
        let mut builds = Vec::new();
        let mut page = 1u32;
        for fetched in 1..=self.options.max_pages {
            let mut url = self.url(&["v2", "organizations", org.as_str(), "builds"])?;
            url.query_pairs_mut()
                .append_pair("state", "failed")
                .append_pair("finished_from", &since)
                .append_pair("per_page", "100")
                .append_pair("page", &page.to_string());
            let response =
                self.send(call, url, "application/json", self.options.request_timeout).await?;
            let response = ensure_success(call, response).await?;
            let next = next_page(response.headers(), &self.base)?;
            let mut batch: Vec<Build> = self.read_json(call, response).await?;
            builds.append(&mut batch);
            match next {
                Some(next) if next > page => page = next,
                _ => return Ok(builds),
            }
            if fetched == self.options.max_pages {
                tracing::warn!(pages = fetched, "stopped listing failed builds at the page limit");
            }
        }
        Ok(builds)
    }

    /// `{base}/v2/organizations/{org}/pipelines/{p}/builds/{n}/{rest…}`.
    fn build_url(&self, build: &BuildPath, rest: &[&str]) -> Result<Url, BuildkiteError> {
        let number = build.number.to_string();
        let mut segments = vec![
            "v2",
            "organizations",
            build.org.as_str(),
            "pipelines",
            build.pipeline.as_str(),
            "builds",
            number.as_str(),
        ];
        segments.extend_from_slice(rest);
        self.url(&segments)
    }

    /// The base URL plus path segments (each percent-encoded by `url`, so an id can never
    /// add a segment or a query).
    fn url(&self, segments: &[&str]) -> Result<Url, BuildkiteError> {
        let mut url = (*self.base).clone();
        url.path_segments_mut()
            .map_err(|()| BuildkiteError::Config("the API URL cannot take a path".into()))?
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    }

    /// Counts a failed call in the metrics.
    async fn tracked<T>(
        &self,
        call: &Call<'_>,
        work: impl Future<Output = Result<T, BuildkiteError>>,
    ) -> Result<T, BuildkiteError> {
        let result = work.await;
        if let Err(error) = &result {
            self.metrics.error(call.endpoint, error);
            tracing::debug!(endpoint = %call.endpoint, error = %error, "Buildkite call failed");
        }
        result
    }

    async fn get_json<T: DeserializeOwned>(
        &self,
        call: &Call<'_>,
        url: Url,
    ) -> Result<T, BuildkiteError> {
        let response =
            self.send(call, url, "application/json", self.options.request_timeout).await?;
        let response = ensure_success(call, response).await?;
        self.read_json(call, response).await
    }

    async fn read_json<T: DeserializeOwned>(
        &self,
        call: &Call<'_>,
        response: Response,
    ) -> Result<T, BuildkiteError> {
        let mut body = read_capped(response, self.options.max_json_bytes, call.endpoint).await?;
        let decoded = serde_json::from_slice(&body).map_err(|e| decode_error(call.endpoint, &e));
        // The env answer holds secrets; wipe our copy (the transport's buffers are gone).
        body.zeroize();
        decoded
    }

    /// Sends a GET within the rate limits: waits for short resets, retries after a 429
    /// whose reset is short, and fails with `RateLimited` otherwise. Returns any other
    /// answer for the caller to judge.
    async fn send(
        &self,
        call: &Call<'_>,
        url: Url,
        accept: &'static str,
        total_timeout: Duration,
    ) -> Result<Response, BuildkiteError> {
        let keys = budget_keys(call);
        let mut waits = 0;
        loop {
            match self.limiter.admit(&keys, Instant::now()) {
                Admission::Go => {}
                Admission::Wait { wait, .. } if waits < MAX_RATE_LIMIT_WAITS => {
                    waits += 1;
                    self.metrics.rate_limit_wait();
                    tracing::info!(
                        wait_ms = wait.as_millis() as u64,
                        "waiting for the Buildkite rate limit to reset"
                    );
                    tokio::time::sleep(wait).await;
                    continue;
                }
                Admission::Wait { wait: retry_after, scope }
                | Admission::Refuse { retry_after, scope } => {
                    return Err(BuildkiteError::RateLimited { retry_after, scope });
                }
            }
            let response = self.send_once(call, url.clone(), accept, total_timeout).await?;
            if response.status() != StatusCode::TOO_MANY_REQUESTS {
                return Ok(response);
            }
            // Record the spent budget; the next turn of the loop waits or refuses.
            let (scope, retry_after) = too_many_requests(call, response).await;
            tracing::info!(%scope, retry_after_s = retry_after.as_secs(), "Buildkite answered 429");
            let now = Instant::now();
            let matching: Vec<&BudgetKey> = keys.iter().filter(|k| k.scope() == scope).collect();
            // An org-less call (access-token) told the org limit is spent: block its user.
            let spent = if matching.is_empty() { keys.iter().collect() } else { matching };
            for key in spent {
                self.limiter.exhaust(key.clone(), retry_after, now);
            }
        }
    }

    async fn send_once(
        &self,
        call: &Call<'_>,
        url: Url,
        accept: &'static str,
        total_timeout: Duration,
    ) -> Result<Response, BuildkiteError> {
        let request = self
            .http
            .get(url)
            .header(ACCEPT, accept)
            .header(AUTHORIZATION, bearer(call.token)?)
            .timeout(total_timeout);
        let started = Instant::now();
        let in_flight = self.metrics.in_flight();
        let sent = tokio::time::timeout(self.options.request_timeout, request.send()).await;
        drop(in_flight);
        let took = started.elapsed();
        let response = match sent {
            Ok(Ok(response)) => response,
            Ok(Err(error)) => {
                let label = if error.is_timeout() { "timeout" } else { "transport" };
                self.metrics.request(call.endpoint, label, took);
                return Err(transport_error(call.endpoint, error));
            }
            Err(_elapsed) => {
                self.metrics.request(call.endpoint, "timeout", took);
                return Err(BuildkiteError::Timeout {
                    endpoint: call.endpoint,
                    kind: TimeoutKind::Request,
                });
            }
        };
        self.metrics.request(call.endpoint, response.status().as_str(), took);
        self.observe_budgets(call, response.headers());
        Ok(response)
    }

    fn observe_budgets(&self, call: &Call<'_>, headers: &HeaderMap) {
        let reported = RateLimitHeaders::parse(headers);
        let now = Instant::now();
        for key in budget_keys(call) {
            let scope = key.scope();
            if let Some(budget) = reported.get(scope) {
                if let Some(org) = call.org {
                    self.metrics.remaining(org.as_str(), scope, budget.remaining);
                }
                self.limiter.observe(key, budget, now);
            }
        }
    }
}

/// The budgets a call spends: its organization's (if any) and its token user's.
fn budget_keys(call: &Call<'_>) -> Vec<BudgetKey> {
    let user = BudgetKey::User(TokenFingerprint::of(call.token));
    match call.org {
        Some(org) => vec![BudgetKey::Org(org.clone()), user],
        None => vec![user],
    }
}

fn check_api_url(url: &Url, allow_insecure_http: bool) -> Result<(), BuildkiteError> {
    let problem = if url.cannot_be_a_base() || url.host_str().is_none() {
        Some("it has no host")
    } else if !url.username().is_empty() || url.password().is_some() {
        Some("it must not hold credentials")
    } else if url.query().is_some() || url.fragment().is_some() {
        Some("it must not have a query or fragment")
    } else {
        match url.scheme() {
            "https" => None,
            "http" if allow_insecure_http || is_loopback(url) => None,
            "http" => Some(
                "http is only allowed on a loopback host (the token would travel in clear text)",
            ),
            _ => Some("the scheme must be https"),
        }
    };
    match problem {
        // Name the URL without its userinfo, query and fragment: they may hold a secret.
        Some(problem) => {
            let mut shown = url.clone();
            let _ = shown.set_username("");
            let _ = shown.set_password(None);
            shown.set_query(None);
            shown.set_fragment(None);
            Err(BuildkiteError::Config(format!("buildkite.api_url `{shown}`: {problem}")))
        }
        None => Ok(()),
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(domain)) => domain == "localhost",
        None => false,
    }
}

/// `Bearer <token>` as a sensitive header value (kept out of reqwest's debug output).
fn bearer(token: &SecretString) -> Result<HeaderValue, BuildkiteError> {
    let mut text = format!("Bearer {}", token.expose_secret());
    let value = HeaderValue::from_str(&text);
    text.zeroize();
    let mut value = value.map_err(|_| BuildkiteError::Unauthorized {
        message: "the API token holds characters that cannot go in an HTTP header".into(),
    })?;
    value.set_sensitive(true);
    Ok(value)
}

fn transport_error(endpoint: Endpoint, error: reqwest::Error) -> BuildkiteError {
    if error.is_timeout() {
        BuildkiteError::Timeout { endpoint, kind: TimeoutKind::Request }
    } else {
        BuildkiteError::Transport { endpoint, source: error }
    }
}

async fn ensure_success(call: &Call<'_>, response: Response) -> Result<Response, BuildkiteError> {
    if response.status().is_success() {
        Ok(response)
    } else {
        Err(error_for_status(call, response).await)
    }
}

/// Classifies a non-success answer (docs/design.md#failure-handling).
async fn error_for_status(call: &Call<'_>, response: Response) -> BuildkiteError {
    let status = response.status();
    let message = error_message(call, response).await;
    match status.as_u16() {
        401 => BuildkiteError::Unauthorized { message },
        403 => BuildkiteError::Forbidden { missing_scope: missing_scope(&message), message },
        404 => BuildkiteError::NotFound { message },
        408 => BuildkiteError::Timeout { endpoint: call.endpoint, kind: TimeoutKind::Request },
        410 => BuildkiteError::Gone,
        500..=599 => BuildkiteError::Server { status: status.as_u16() },
        300..=399 => BuildkiteError::Unexpected {
            endpoint: call.endpoint,
            status: status.as_u16(),
            message: "redirect not followed: the token only goes to the configured API host".into(),
        },
        other => BuildkiteError::Unexpected { endpoint: call.endpoint, status: other, message },
    }
}

/// The scope named in Buildkite's 403 "Your access token doesn't have the <scope> scope"
/// (docs/buildkite.md#rest-api).
fn missing_scope(message: &str) -> Option<String> {
    static SCOPE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(?i)does(?:n['’]t| not) have the ([a-z_]+) scope").expect("valid regex")
    });
    SCOPE.captures(message).map(|caps| caps[1].to_owned())
}

/// Buildkite's `{"message": …}` (or the start of a non-JSON body), capped, with the
/// token and anything secret-shaped redacted: it ends up in logs and stored reasons.
async fn error_message(call: &Call<'_>, response: Response) -> String {
    let body = read_capped(response, MAX_ERROR_BODY, call.endpoint).await.unwrap_or_default();
    #[derive(Deserialize)]
    struct Message {
        message: String,
    }
    let text = match serde_json::from_slice::<Message>(&body) {
        Ok(parsed) => parsed.message,
        Err(_) => String::from_utf8_lossy(&body).into_owned(),
    };
    let mut text: String = text.trim().chars().take(300).collect();
    let secret = call.token.expose_secret();
    if !secret.is_empty() && text.contains(secret) {
        text = text.replace(secret, REDACTED);
    }
    Redactor::patterns_only().redact(&text).into_owned()
}

/// Reads a 429: which budget is spent and for how long. The body's `scope` says which
/// limit (`rest` or `rest_user`), and the matching `RateLimit[-User]-Reset` how long.
async fn too_many_requests(call: &Call<'_>, response: Response) -> (RateLimitScope, Duration) {
    let headers = RateLimitHeaders::parse(response.headers());
    #[derive(Deserialize, Default)]
    struct Body {
        #[serde(default)]
        scope: Option<String>,
        #[serde(default)]
        reset: Option<u64>,
    }
    let raw = read_capped(response, MAX_ERROR_BODY, call.endpoint).await.unwrap_or_default();
    let body: Body = serde_json::from_slice(&raw).unwrap_or_default();
    let scope = match body.scope.as_deref() {
        Some("rest_user") => RateLimitScope::User,
        Some("rest") => RateLimitScope::Organization,
        _ if headers.user.is_some_and(|b| b.remaining == 0) => RateLimitScope::User,
        _ => RateLimitScope::Organization,
    };
    let reset = headers
        .get(scope)
        .map(|budget| budget.reset)
        .or(body.reset.map(Duration::from_secs))
        .unwrap_or(DEFAULT_RETRY_AFTER);
    // A reset of 0 would retry at once and hammer the API; wait at least a second.
    (scope, reset.max(Duration::from_secs(1)))
}

async fn read_capped(
    mut response: Response,
    limit: usize,
    endpoint: Endpoint,
) -> Result<Vec<u8>, BuildkiteError> {
    let too_large = BuildkiteError::TooLarge { endpoint, limit: limit as u64 };
    if response.content_length().is_some_and(|length| length > limit as u64) {
        return Err(too_large);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| transport_error(endpoint, e))? {
        if body.len() + chunk.len() > limit {
            body.zeroize();
            return Err(too_large);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Where decoding failed, without serde's text for the env answer: "invalid type:
/// string \"…\"" would quote a secret value.
fn decode_error(endpoint: Endpoint, error: &serde_json::Error) -> BuildkiteError {
    let detail = match endpoint {
        Endpoint::JobEnv => {
            format!(
                "{:?} error at line {} column {}",
                error.classify(),
                error.line(),
                error.column()
            )
        }
        _ => {
            let text: String = error.to_string().chars().take(300).collect();
            Redactor::patterns_only().redact(&text).into_owned()
        }
    };
    BuildkiteError::Decode { endpoint, detail }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{BuildNumber, PipelineSlug};

    #[test]
    fn api_url_must_be_https_or_loopback_http_without_credentials() {
        let ok = [
            "https://api.buildkite.com",
            "https://proxy.internal/buildkite/",
            "http://127.0.0.1:9000",
            "http://localhost:8080",
        ];
        for url in ok {
            let parsed = Url::parse(url).expect("url");
            assert!(check_api_url(&parsed, false).is_ok(), "{url}");
        }
        let bad = [
            "http://api.buildkite.com",
            "https://user:pass@api.buildkite.com",
            "https://api.buildkite.com/?x=1",
            "ftp://api.buildkite.com",
            "mailto:ops@example.com",
        ];
        for url in bad {
            let parsed = Url::parse(url).expect("url");
            let err = check_api_url(&parsed, false).expect_err(url);
            assert!(!err.to_string().contains("pass"), "{err}");
        }
        assert!(check_api_url(&Url::parse("http://stub:8080").expect("url"), true).is_ok());
    }

    #[test]
    fn paths_are_built_from_checked_ids_under_the_base_path() {
        let client = BuildkiteClient::new(
            Url::parse("https://proxy.internal/buildkite/").expect("url"),
            ClientOptions::default(),
        )
        .expect("client");
        let build = BuildPath {
            org: OrgSlug::parse("acme").expect("org"),
            pipeline: PipelineSlug::parse("web-app").expect("pipeline"),
            number: BuildNumber::new(12),
        };
        let job = JobId::parse("0190a6f5-3c1d-4c6c-9d6e-1f6f0d1c2a01").expect("job");
        let url = client.build_url(&build, &["jobs", job.as_str(), "log"]).expect("url");
        assert_eq!(
            url.as_str(),
            "https://proxy.internal/buildkite/v2/organizations/acme/pipelines/web-app/builds/12/jobs/0190a6f5-3c1d-4c6c-9d6e-1f6f0d1c2a01/log"
        );
    }

    #[test]
    fn missing_scope_is_read_from_the_403_message() {
        assert_eq!(
            missing_scope("Your access token doesn't have the read_build_logs scope").as_deref(),
            Some("read_build_logs")
        );
        assert_eq!(
            missing_scope("Your access token doesn’t have the read_job_env scope").as_deref(),
            Some("read_job_env")
        );
        assert_eq!(missing_scope("Forbidden"), None);
    }

    #[test]
    fn bearer_header_is_sensitive() {
        let value = bearer(&SecretString::from("bkua_0123456789abcdef")).expect("header");
        assert!(value.is_sensitive());
        assert!(bearer(&SecretString::from("bad\ntoken")).is_err());
    }
}
