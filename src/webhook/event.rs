//! Turning a verified webhook body into something kitefix acts on.
//!
//! Only `build.finished` of a failed build is queued. The payload carries no jobs and no
//! organisation object (docs/buildkite.md#webhook-payload): the org slug is parsed out of
//! `build.url`, and the worker asks the REST API for the jobs. Links are rebuilt from the
//! parsed ids rather than copied, so a payload cannot plant a URL in a check run.

use serde::Deserialize;

use super::signature::Verified;
use crate::domain::{
    BuildFinished, BuildId, BuildNumber, CommitSha, OrgSlug, PipelineSlug, PipelineSource,
    pull_request_number,
};

/// What a verified webhook turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookEvent {
    Ping,
    /// A failed build: queue it.
    Failed(Box<BuildFinished>),
    /// Valid, but nothing to do (another event, a passed or canceled build).
    Ignored {
        event: EventName,
        reason: &'static str,
    },
}

/// The event names kitefix counts by name; anything else is counted as `other` so a
/// sender cannot grow the metric's label set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventName {
    Ping,
    BuildFinished,
    BuildOther,
    Job,
    Agent,
    Other,
}

impl EventName {
    pub fn from_header(name: &str) -> Self {
        match name {
            "ping" => EventName::Ping,
            "build.finished" => EventName::BuildFinished,
            n if n.starts_with("build.") => EventName::BuildOther,
            n if n.starts_with("job.") => EventName::Job,
            n if n.starts_with("agent.") => EventName::Agent,
            _ => EventName::Other,
        }
    }

    pub fn as_label(self) -> &'static str {
        match self {
            EventName::Ping => "ping",
            EventName::BuildFinished => "build.finished",
            EventName::BuildOther => "build.other",
            EventName::Job => "job",
            EventName::Agent => "agent",
            EventName::Other => "other",
        }
    }
}

/// A body that is not what its event needs. The message lists what is wrong so whoever
/// sent it can tell (a 400 body).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    #[error("body is not valid JSON: {0}")]
    Json(String),
    #[error("no event name (X-Buildkite-Event header or `event` field)")]
    NoEventName,
    #[error("build.finished payload is missing {}", .0.join(", "))]
    Missing(Vec<&'static str>),
    #[error("build.finished payload has an invalid {0}")]
    Invalid(String),
}

#[derive(Deserialize)]
struct Payload {
    event: Option<String>,
    build: Option<RawBuild>,
    pipeline: Option<RawPipeline>,
}

#[derive(Deserialize)]
struct RawBuild {
    id: Option<String>,
    url: Option<String>,
    number: Option<u64>,
    state: Option<String>,
    #[serde(default)]
    blocked: bool,
    commit: Option<String>,
    branch: Option<String>,
    finished_at: Option<String>,
    pull_request: Option<RawPullRequest>,
    #[serde(default)]
    meta_data: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Deserialize)]
struct RawPullRequest {
    /// The PR number, sent as a string (go-buildkite `PullRequest.ID`).
    id: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct RawPipeline {
    slug: Option<String>,
    repository: Option<String>,
    provider: Option<RawProvider>,
}

#[derive(Deserialize)]
struct RawProvider {
    id: Option<String>,
    settings: Option<RawProviderSettings>,
}

#[derive(Deserialize)]
struct RawProviderSettings {
    repository: Option<String>,
}

/// Parses a verified body (only `signature::verify` makes a [`Verified`]). `header_event`
/// is `X-Buildkite-Event`; the body's `event` field is the fallback (Buildkite added it so
/// receivers need not read headers).
pub fn parse(header_event: Option<&str>, body: Verified<'_>) -> Result<WebhookEvent, PayloadError> {
    let payload: Payload =
        serde_json::from_slice(body.bytes()).map_err(|e| PayloadError::Json(e.to_string()))?;
    let name = header_event
        .map(str::to_owned)
        .or(payload.event.clone())
        .ok_or(PayloadError::NoEventName)?;
    match EventName::from_header(&name) {
        EventName::Ping => Ok(WebhookEvent::Ping),
        EventName::BuildFinished => parse_build_finished(payload),
        other => Ok(WebhookEvent::Ignored {
            event: other,
            reason: "kitefix acts on build.finished only",
        }),
    }
}

fn parse_build_finished(payload: Payload) -> Result<WebhookEvent, PayloadError> {
    let ignored = |reason| Ok(WebhookEvent::Ignored { event: EventName::BuildFinished, reason });
    let Some(build) = payload.build else {
        return Err(PayloadError::Missing(vec!["build"]));
    };
    // A build waiting on a block step fires build.finished with `blocked: true` and keeps
    // its previous state (docs/buildkite.md#blocked-builds): it has not failed.
    if build.blocked {
        return ignored("build is blocked, not finished");
    }
    match build.state.as_deref() {
        Some("failed") => {}
        Some(_) => return ignored("build did not fail"),
        None => return Err(PayloadError::Missing(vec!["build.state"])),
    }

    let mut missing = Vec::new();
    let mut need = |field: &'static str, v: Option<String>| {
        let v = v.filter(|s| !s.is_empty());
        if v.is_none() {
            missing.push(field);
        }
        v.unwrap_or_default()
    };
    let id = need("build.id", build.id);
    let url = need("build.url", build.url);
    let finished_at = need("build.finished_at", build.finished_at);
    let branch = need("build.branch", build.branch);
    let commit = need("build.commit", build.commit);
    if build.number.is_none() {
        missing.push("build.number");
    }
    if !missing.is_empty() {
        return Err(PayloadError::Missing(missing));
    }

    let (org, url_pipeline) = org_and_pipeline_from_api_url(&url)
        .ok_or_else(|| PayloadError::Invalid(format!("build.url `{url}`")))?;
    let pipeline_slug =
        payload.pipeline.as_ref().and_then(|p| p.slug.clone()).unwrap_or(url_pipeline);
    let pipeline =
        PipelineSlug::parse(&pipeline_slug).map_err(|e| PayloadError::Invalid(e.to_string()))?;
    let build_id = BuildId::parse(&id).map_err(|e| PayloadError::Invalid(e.to_string()))?;
    // API-created builds can say `HEAD` until resolved; the agent records the real SHA in
    // meta-data (docs/buildkite.md#unresolved-commits). What is left must be a full SHA: a
    // check run is on one commit, so anything else is refused here, before a log is fetched.
    let commit = if commit == "HEAD" {
        build
            .meta_data
            .as_ref()
            .and_then(|m| m.get("buildkite:git:commit"))
            .and_then(|v| v.as_str())
            .map(str::to_owned)
            .unwrap_or(commit)
    } else {
        commit
    };
    let commit = CommitSha::parse(&commit).map_err(|e| PayloadError::Invalid(e.to_string()))?;
    let pull_request = build.pull_request.and_then(|pr| pull_request_number(&pr.id?));
    let source = match payload.pipeline {
        Some(p) => {
            let (provider, provider_repository) = p
                .provider
                .map(|pr| (pr.id, pr.settings.and_then(|s| s.repository)))
                .unwrap_or((None, None));
            PipelineSource { provider, provider_repository, repository_url: p.repository }
        }
        None => PipelineSource::default(),
    };

    Ok(WebhookEvent::Failed(Box::new(BuildFinished {
        org,
        pipeline,
        build_id,
        build_number: BuildNumber::new(build.number.expect("checked above")),
        finished_at,
        commit,
        branch,
        pull_request,
        source,
    })))
}

/// `https://api.buildkite.com/v2/organizations/{org}/pipelines/{pipeline}/builds/{n}`
/// → `(org, pipeline)`. Only the path is read; the host is not trusted for anything.
fn org_and_pipeline_from_api_url(url: &str) -> Option<(OrgSlug, String)> {
    let parsed = url::Url::parse(url).ok()?;
    let mut segments = parsed.path_segments()?;
    while let Some(segment) = segments.next() {
        if segment == "organizations" {
            let org = OrgSlug::parse(segments.next()?).ok()?;
            if segments.next()? != "pipelines" {
                return None;
            }
            return Some((org, segments.next()?.to_owned()));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// The README's example payload: a failed build of `acme/web-app`.
    fn failed_build() -> serde_json::Value {
        serde_json::from_str(include_str!("../../deploy/examples/build-finished-failed.json"))
            .unwrap()
    }

    /// `body` as the route hands it over: verified (in token mode, the simplest proof).
    fn verified(body: &[u8]) -> Verified<'_> {
        let token = secrecy::SecretString::from("event-test-token".to_owned());
        let credential = crate::webhook::Credential::Token("event-test-token".to_owned());
        crate::webhook::signature::verify(&token, &credential, body, 0, 0).unwrap()
    }

    fn parse_json(v: &serde_json::Value) -> Result<WebhookEvent, PayloadError> {
        parse(Some("build.finished"), verified(v.to_string().as_bytes()))
    }

    #[test]
    fn failed_build_becomes_a_typed_event() {
        let WebhookEvent::Failed(event) = parse_json(&failed_build()).unwrap() else {
            panic!("expected a failed build");
        };
        assert_eq!(event.org.as_str(), "acme");
        assert_eq!(event.pipeline.as_str(), "web-app");
        assert_eq!(event.build_number.get(), 42);
        assert_eq!(event.pull_request, Some(17));
        assert_eq!(event.source.provider_repository.as_deref(), Some("acme/web-app"));
        assert_eq!(
            event.dedupe_key().as_str(),
            "acme/f62a1b4d-10f9-4790-bc1c-e2c3a0c80983/2026-11-25T10:00:00.000Z"
        );
        assert_eq!(event.web_url(), "https://buildkite.com/acme/web-app/builds/42");
    }

    #[test]
    fn passed_canceled_and_blocked_builds_are_ignored() {
        for (field, value) in
            [("state", json!("passed")), ("state", json!("canceled")), ("blocked", json!(true))]
        {
            let mut body = failed_build();
            body["build"][field] = value;
            assert!(matches!(parse_json(&body), Ok(WebhookEvent::Ignored { .. })), "{field}");
        }
    }

    #[test]
    fn missing_fields_are_named() {
        let mut body = failed_build();
        body["build"].as_object_mut().unwrap().remove("id");
        body["build"].as_object_mut().unwrap().remove("finished_at");
        let err = parse_json(&body).unwrap_err();
        assert_eq!(err, PayloadError::Missing(vec!["build.id", "build.finished_at"]));
        assert_eq!(
            err.to_string(),
            "build.finished payload is missing build.id, build.finished_at"
        );
    }

    #[test]
    fn hostile_urls_are_refused() {
        let mut body = failed_build();
        body["build"]["url"] =
            json!("https://evil.example/v2/organizations/../pipelines/x/builds/1");
        assert!(matches!(parse_json(&body), Err(PayloadError::Invalid(_))));
    }

    #[test]
    fn head_commit_is_resolved_from_meta_data() {
        let mut body = failed_build();
        body["build"]["commit"] = json!("HEAD");
        body["build"]["meta_data"] =
            json!({"buildkite:git:commit": "0123456789abcdef0123456789abcdef01234567"});
        let WebhookEvent::Failed(event) = parse_json(&body).unwrap() else { panic!() };
        assert_eq!(event.commit.as_str(), "0123456789abcdef0123456789abcdef01234567");
    }

    #[test]
    fn a_commit_that_is_not_a_full_sha_is_refused() {
        let mut body = failed_build();
        body["build"]["commit"] = json!("HEAD");
        body["build"]["meta_data"] = json!({});
        let err = parse_json(&body).unwrap_err();
        assert!(matches!(&err, PayloadError::Invalid(m) if m.contains("commit")), "{err}");
    }

    #[test]
    fn other_events_and_ping_are_recognised() {
        assert_eq!(parse(Some("ping"), verified(b"{}")).unwrap(), WebhookEvent::Ping);
        assert!(matches!(
            parse(Some("job.finished"), verified(b"{}")).unwrap(),
            WebhookEvent::Ignored { event: EventName::Job, .. }
        ));
        assert!(matches!(
            parse(None, verified(br#"{"event":"agent.lost"}"#)).unwrap(),
            WebhookEvent::Ignored { event: EventName::Agent, .. }
        ));
        assert_eq!(parse(None, verified(b"{}")), Err(PayloadError::NoEventName));
        assert!(matches!(parse(Some("ping"), verified(b"{not json")), Err(PayloadError::Json(_))));
    }
}
