//! The request bodies of `checks/create` (`POST /repos/{owner}/{repo}/check-runs`) and
//! `checks/update` (`PATCH /repos/{owner}/{repo}/check-runs/{id}`), made from the run as
//! `render` drew it. Field rules: GitHub's OpenAPI description of both operations, kept in
//! `tests/fixtures/github/openapi-subset.json`, which the tests check every body against.

use serde::Serialize;

use crate::render::{
    ANNOTATIONS_PER_REQUEST, Annotation, CHECK_RUN_NAME, CheckRunContent, Conclusion,
};

/// One request's body. Every request carries the whole state, so any one of them leaves
/// the run correct on its own; only a create names the commit.
#[derive(Debug, Serialize)]
pub(crate) struct CheckRunBody<'a> {
    name: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    head_sha: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    details_url: Option<&'a str>,
    external_id: &'a str,
    status: &'static str,
    conclusion: Conclusion,
    output: Output<'a>,
}

#[derive(Debug, Serialize)]
struct Output<'a> {
    title: &'a str,
    summary: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    text: &'a str,
    /// GitHub appends these to the run's annotations on every request that carries them.
    #[serde(skip_serializing_if = "<[Annotation]>::is_empty")]
    annotations: &'a [Annotation],
}

impl<'a> CheckRunBody<'a> {
    /// The create request, carrying the first batch of annotations.
    pub(crate) fn create(content: &'a CheckRunContent, annotations: &'a [Annotation]) -> Self {
        Self { head_sha: Some(content.head_sha.as_str()), ..Self::update(content, annotations) }
    }

    /// An update request: the whole state plus a batch of annotations to append.
    pub(crate) fn update(content: &'a CheckRunContent, annotations: &'a [Annotation]) -> Self {
        debug_assert!(annotations.len() <= ANNOTATIONS_PER_REQUEST);
        Self {
            name: CHECK_RUN_NAME,
            head_sha: None,
            details_url: content.details_url.as_deref(),
            external_id: &content.external_id,
            status: "completed",
            conclusion: content.conclusion,
            output: Output {
                title: &content.title,
                summary: &content.summary,
                text: &content.text,
                annotations,
            },
        }
    }
}
