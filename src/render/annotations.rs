//! Check-run annotations: the files and lines a failure points at, with paths made
//! relative to the repository root so GitHub can show them in "Files changed".
//!
//! Compilers and test runners print the paths they were given, which on a Buildkite agent
//! are often absolute: `$BUILDKITE_BUILD_PATH/<agent>/<org>/<pipeline>/src/a.rs` (Buildkite
//! docs: "Agent configuration", `build-path`; the checkout is
//! `BUILDKITE_BUILD_CHECKOUT_PATH`). GitHub wants `path` relative to the repository
//! ("The path of the file to add an annotation to. For example, `assets/css/main.css`",
//! OpenAPI `checks/create`), so anything that stays absolute or climbs out of the checkout
//! is dropped rather than guessed.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use super::markdown;
use crate::classify::Category;
use crate::domain::BuildReport;

/// GitHub: "The Checks API limits the number of annotations to a maximum of 50 per API
/// request" (OpenAPI `checks/create`, `output.annotations`).
pub const ANNOTATIONS_PER_REQUEST: usize = 50;

/// How many annotations one check run carries at most. Each batch past the first is one
/// more PATCH, and writes count against GitHub's content-creation limit (80 a minute,
/// GitHub docs: "Rate limits for the REST API"), so a log with thousands of warnings does
/// not turn into a burst of requests.
pub(crate) const MAX_ANNOTATIONS: usize = 250;

/// GitHub: annotation `message` and `raw_details` are at most 64 KB; stay a little under.
const MAX_MESSAGE_BYTES: usize = 64_000;
/// GitHub: annotation `title` is at most 255 characters.
const MAX_TITLE_CHARS: usize = 255;

/// How much an annotation matters, as GitHub shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AnnotationLevel {
    /// Informational.
    Notice,
    /// Worth a look, not necessarily the author's doing.
    Warning,
    /// The failure itself.
    Failure,
}

/// One annotation, serialised exactly as the `output.annotations[]` item GitHub takes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Annotation {
    /// Repository-relative path with `/` separators.
    pub path: String,
    /// 1-based.
    pub start_line: u32,
    /// 1-based, `>= start_line`.
    pub end_line: u32,
    /// Only sent when `start_line == end_line` (GitHub refuses columns across lines).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_column: Option<u32>,
    /// Only sent when `start_line == end_line`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_column: Option<u32>,
    /// How it is shown.
    pub annotation_level: AnnotationLevel,
    /// What is wrong here (at most 64 KB).
    pub message: String,
    /// Shown above the message (at most 255 characters).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
}

/// Where a job's build ran, to strip from the paths its log printed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BuildDirs<'a> {
    /// `BUILDKITE_BUILD_CHECKOUT_PATH`, when the worker read the job's env.
    pub checkout_path: Option<&'a str>,
    /// Buildkite org slug: the default checkout path ends in `/<org>/<pipeline>`.
    pub org: &'a str,
    /// Buildkite pipeline slug.
    pub pipeline: &'a str,
}

/// `raw` as a path relative to the repository root, or `None` when it cannot be made one
/// (absolute outside the checkout, climbing out with `..`, empty, or not a path).
pub(crate) fn repo_relative_path(raw: &str, dirs: &BuildDirs<'_>) -> Option<String> {
    let raw = raw.trim();
    let raw = raw.strip_prefix("file://").unwrap_or(raw);
    if raw.is_empty() || raw.len() > 1024 || raw.chars().any(char::is_control) {
        return None;
    }
    let path = slashes(raw);
    let relative =
        if let Some(rest) = dirs.checkout_path.and_then(|c| strip_dir(&path, &slashes(c))) {
            rest.to_owned()
        } else if is_absolute(&path) {
            strip_agent_build_dir(&path, dirs)?.to_owned()
        } else if path.starts_with('~') {
            return None;
        } else {
            path
        };
    normalise_relative(&relative)
}

/// Windows agents print `C:\buildkite-agent\builds\…`; compare and emit with `/`.
fn slashes(path: &str) -> String {
    let bytes = path.as_bytes();
    let windows_drive = bytes.len() >= 3 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':';
    if windows_drive || (path.contains('\\') && !path.contains('/')) {
        path.replace('\\', "/")
    } else {
        path.to_owned()
    }
}

fn is_absolute(path: &str) -> bool {
    let b = path.as_bytes();
    path.starts_with('/') || (b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':')
}

/// `path` below `dir`, if it is below it.
fn strip_dir<'p>(path: &'p str, dir: &str) -> Option<&'p str> {
    let dir = dir.trim_end_matches('/');
    if dir.is_empty() {
        return None;
    }
    path.strip_prefix(dir)?.strip_prefix('/')
}

/// The part of an absolute path below the agent's checkout when the path follows
/// Buildkite's layout `<build-path>/<agent>/<org>/<pipeline>/…`: first by the org and
/// pipeline slugs we know, then by the `…buildkite…/builds/<agent>/<org>/<pipeline>/`
/// shape of the default build paths (`/var/lib/buildkite-agent/builds`,
/// `/buildkite/builds`, `~/.buildkite-agent/builds`, `C:\buildkite-agent\builds`).
fn strip_agent_build_dir<'p>(path: &'p str, dirs: &BuildDirs<'_>) -> Option<&'p str> {
    let marker = format!("/{}/{}/", dirs.org, dirs.pipeline);
    if !dirs.org.is_empty()
        && !dirs.pipeline.is_empty()
        && let Some(at) = path.find(&marker)
    {
        return Some(&path[at + marker.len()..]);
    }
    let segments: Vec<&str> = path.split('/').collect();
    let builds = segments
        .windows(2)
        .position(|w| w[0].to_ascii_lowercase().contains("buildkite") && w[1] == "builds")?;
    // Skip `…buildkite…`, `builds`, agent, org and pipeline.
    let skip = builds + 5;
    if segments.len() <= skip {
        return None;
    }
    let offset: usize = segments[..skip].iter().map(|s| s.len() + 1).sum();
    path.get(offset..)
}

/// Resolves `.` and `..` lexically; `None` if the path climbs above its root, is empty or
/// still holds a drive or `file:line` colon.
fn normalise_relative(path: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            s => parts.push(s),
        }
    }
    // A `:` or `\` left in a relative path is a mis-parsed `file:line` or a Windows path
    // we could not place, not a file GitHub would find.
    if parts.is_empty() || parts.iter().any(|p| p.contains([':', '\\'])) {
        return None;
    }
    Some(parts.join("/"))
}

/// Annotations for every location the analyses found, deduplicated, in report order,
/// at most [`MAX_ANNOTATIONS`]. The second value counts locations left out because their
/// path could not be made repository-relative or the cap was reached.
pub(crate) fn annotations_for(report: &BuildReport) -> (Vec<Annotation>, usize) {
    let mut seen = HashSet::new();
    let mut annotations = Vec::new();
    let mut dropped = 0;
    for job in &report.jobs {
        let dirs = BuildDirs {
            checkout_path: job.checkout_path.as_deref(),
            org: report.build.org.as_str(),
            pipeline: report.build.pipeline.as_str(),
        };
        let category = job.analysis.category;
        for location in &job.analysis.locations {
            let path = match repo_relative_path(&location.path, &dirs) {
                Some(path) if location.line >= 1 => path,
                _ => {
                    dropped += 1;
                    continue;
                }
            };
            if !seen.insert((
                path.clone(),
                location.line,
                location.column,
                location.message.clone(),
            )) {
                continue;
            }
            if annotations.len() == MAX_ANNOTATIONS {
                dropped += 1;
                continue;
            }
            let message = if location.message.trim().is_empty() {
                job.analysis.title.as_str()
            } else {
                location.message.as_str()
            };
            let column = location.column.filter(|&c| c >= 1);
            annotations.push(Annotation {
                path,
                start_line: location.line,
                end_line: location.line,
                start_column: column,
                end_column: column,
                annotation_level: level(category),
                message: markdown::shorten_bytes(message, MAX_MESSAGE_BYTES).to_owned(),
                title: Some(markdown::shorten_chars(
                    &format!("{} in {}", category_label(category), job.job.name),
                    MAX_TITLE_CHARS,
                )),
            });
        }
    }
    (annotations, dropped)
}

/// Failures in the code itself mark the line as the failure; anything else (a config
/// file the job could not read, a timeout in a test) is a warning on it.
fn level(category: Category) -> AnnotationLevel {
    match category {
        Category::Compile | Category::Test | Category::Lint => AnnotationLevel::Failure,
        _ => AnnotationLevel::Warning,
    }
}

/// How a category reads in a sentence ("Compile error in build").
pub(crate) fn category_label(category: Category) -> &'static str {
    match category {
        Category::Compile => "Compile error",
        Category::Test => "Test failure",
        Category::Lint => "Lint failure",
        Category::Dependency => "Dependency problem",
        Category::Network => "Network problem",
        Category::Resources => "Out of resources",
        Category::Timeout => "Timeout",
        Category::Config => "Configuration problem",
        Category::Other => "Failure",
        Category::Unknown => "Unrecognised failure",
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const DIRS: BuildDirs<'static> =
        BuildDirs { checkout_path: None, org: "acme", pipeline: "web" };

    fn rel(raw: &str, dirs: &BuildDirs<'_>) -> Option<String> {
        repo_relative_path(raw, dirs)
    }

    #[test]
    fn checkout_path_is_stripped() {
        let dirs = BuildDirs { checkout_path: Some("/srv/ci/checkout/"), ..DIRS };
        assert_eq!(rel("/srv/ci/checkout/src/lib.rs", &dirs).as_deref(), Some("src/lib.rs"));
        assert_eq!(rel("/srv/ci/checkout", &dirs), None);
        assert_eq!(rel("/srv/ci/checkout-other/src/lib.rs", &dirs), None);
    }

    #[test]
    fn default_agent_layouts_are_stripped() {
        for raw in [
            "/var/lib/buildkite-agent/builds/agent-1/acme/web/src/lib.rs",
            "/buildkite/builds/bk-agent-7f9c-1/acme/web/src/lib.rs",
            "/Users/ci/.buildkite-agent/builds/mac-1/acme/web/src/lib.rs",
            "/mnt/ci/any/acme/web/src/lib.rs",
            "C:\\buildkite-agent\\builds\\win-1\\acme\\web\\src\\lib.rs",
            "./src/lib.rs",
            "src/./x/../lib.rs",
            "file:///buildkite/builds/a/acme/web/src/lib.rs",
        ] {
            assert_eq!(rel(raw, &DIRS).as_deref(), Some("src/lib.rs"), "{raw}");
        }
        // Another pipeline's checkout is still the agent layout: strip by shape.
        let other = BuildDirs { org: "other", pipeline: "p", ..DIRS };
        assert_eq!(
            rel("/var/lib/buildkite-agent/builds/a1/acme/web/src/lib.rs", &other).as_deref(),
            Some("src/lib.rs")
        );
    }

    #[test]
    fn paths_outside_the_repository_are_dropped() {
        for raw in [
            "/usr/lib/rustlib/src/rust/library/core/src/panicking.rs",
            "/root/.cargo/registry/src/index.crates.io-1/serde-1.0.0/src/de.rs",
            "../outside.rs",
            "src/../../outside.rs",
            "~/notes.txt",
            "",
            "/var/lib/buildkite-agent/builds/a1/acme",
            "D:\\tools\\x.rs",
        ] {
            assert_eq!(rel(raw, &DIRS), None, "{raw}");
        }
    }

    proptest! {
        #[test]
        fn results_are_relative_and_stay_inside(raw in "(\\.\\./|\\./|/|[a-z]{1,6}/|~|C:\\\\){0,6}[a-z]{1,8}\\.rs") {
            if let Some(path) = rel(&raw, &DIRS) {
                prop_assert!(!path.starts_with('/'));
                prop_assert!(!path.split('/').any(|s| s == ".." || s == "." || s.is_empty()));
                prop_assert!(!path.contains(':'));
            }
        }

        #[test]
        fn anything_below_the_checkout_round_trips(rest in "[a-z]{1,8}(/[a-z_]{1,8}){0,4}\\.[a-z]{1,3}") {
            let dirs = BuildDirs { checkout_path: Some("/work/checkout"), ..DIRS };
            prop_assert_eq!(rel(&format!("/work/checkout/{rest}"), &dirs), Some(rest.clone()));
            prop_assert_eq!(rel(&format!("/buildkite/builds/a/acme/web/{rest}"), &DIRS), Some(rest.clone()));
            prop_assert_eq!(rel(&rest, &DIRS), Some(rest));
        }
    }
}
