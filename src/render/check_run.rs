//! A [`BuildReport`] rendered as the `kitefix` check run: conclusion, one-line title,
//! Markdown summary and details, and annotations.
//!
//! Field rules come from GitHub's OpenAPI description of `checks/create` and
//! `checks/update` (kept in `tests/fixtures/github/openapi-subset.json`, which the tests
//! validate every body against): `output.summary` and `output.text` are Markdown of at most
//! 65,535 — bytes in practice, GitHub answers "summary exceeds a maximum bytesize of 65535"
//! (github/docs#35252) — and a completed run needs a `conclusion`.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::annotations::{self, Annotation};
use super::markdown::{self, code, code_block, link, text, text_with_code};
use crate::classify::{Category, Excerpt};
use crate::domain::{BuildReport, CommitSha, JobRef, JobReport};

/// The check run's name: what the pull request's checks list shows.
pub const CHECK_RUN_NAME: &str = "kitefix";

/// GitHub's limit on `output.summary` and `output.text`, in bytes of UTF-8.
pub(crate) const OUTPUT_LIMIT_BYTES: usize = 65_535;
/// What we fill at most: the limit less a margin, so a later change to the footer or the
/// note cannot tip a body over.
const OUTPUT_BUDGET_BYTES: usize = OUTPUT_LIMIT_BYTES - 1_024;
/// The title has no documented limit; keep it one short line (annotation titles, the
/// nearest documented field, stop at 255 characters).
const MAX_TITLE_CHARS: usize = 255;
/// Jobs shown in full in the summary; the rest are listed one per line.
const MAX_DETAILED_JOBS: usize = 10;
/// Failing tests listed per job.
const MAX_TESTS_LISTED: usize = 10;
/// Key lines in the summary: this many before the key line, and after it. More after:
/// compilers and test runners put the location, the code and the details below the line
/// that names the failure (rustc, tsc, jest, go test).
const KEY_LINES_BEFORE: u64 = 3;
const KEY_LINES_AFTER: u64 = 5;
/// Log lines are cut at this many characters (minified code can put megabytes on a line).
const SUMMARY_LINE_CHARS: usize = 300;
const TEXT_LINE_CHARS: usize = 2_000;

/// The verdict GitHub shows next to the check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Conclusion {
    /// Something points at the change: the check fails.
    Failure,
    /// Only infrastructure failures or flaky jobs: reported without blocking the merge.
    Neutral,
}

impl Conclusion {
    /// GitHub's spelling, also the metric label.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Conclusion::Failure => "failure",
            Conclusion::Neutral => "neutral",
        }
    }
}

impl fmt::Display for Conclusion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything the check run says, ready to be sent in one or more requests. Serialisable
/// so that dry-run mode can store and show the run it would have posted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckRunContent {
    /// The commit the run is attached to.
    pub head_sha: CommitSha,
    /// The Buildkite build id: how a re-processed build finds its run again.
    pub external_id: String,
    /// The build's page on Buildkite (the check's "Details" link).
    pub details_url: Option<String>,
    /// `failure` or `neutral`.
    pub conclusion: Conclusion,
    /// The cause in one line.
    pub title: String,
    /// Markdown, at most [`OUTPUT_LIMIT_BYTES`].
    pub summary: String,
    /// Markdown, at most [`OUTPUT_LIMIT_BYTES`].
    pub text: String,
    /// All annotations; send them [`annotations::ANNOTATIONS_PER_REQUEST`] at a time.
    pub annotations: Vec<Annotation>,
}

impl CheckRunContent {
    /// Renders the check run for `report`. Every id in it was checked at the edge
    /// (`domain`), so there is nothing left that could refuse.
    pub fn render(report: &BuildReport) -> Self {
        let conclusion =
            if report.only_infrastructure() { Conclusion::Neutral } else { Conclusion::Failure };
        let (annotations, dropped) = annotations::annotations_for(report);
        let details_url = web_url(Some(&report.build.web_url)).map(str::to_owned);
        let truncated = |what: &str| {
            format!(
                "> **Truncated:** {what} cut to fit GitHub's 65,535-byte limit. The full logs \
                 are on {}.\n",
                link("Buildkite", details_url.as_deref())
            )
        };
        Self {
            title: title(report),
            summary: markdown::fit(
                summary(report, conclusion, dropped),
                OUTPUT_BUDGET_BYTES,
                &truncated("this summary was"),
            ),
            text: markdown::fit(
                details(report),
                OUTPUT_BUDGET_BYTES,
                &truncated("these details were"),
            ),
            external_id: report.build.id.to_string(),
            details_url,
            head_sha: report.build.commit.clone(),
            conclusion,
            annotations,
        }
    }
}

/// The link target if it is a web URL (Buildkite fills these; never trust a scheme).
fn web_url(url: Option<&str>) -> Option<&str> {
    url.filter(|u| u.starts_with("https://") || u.starts_with("http://"))
}

/// Failed jobs counted by job, not by distinct failure.
fn failed_job_count(report: &BuildReport) -> usize {
    report.jobs.iter().map(|j| 1 + j.also_failed.len()).sum()
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// "Test failed: 3 tests in `unit` (+1 more job)".
fn title(report: &BuildReport) -> String {
    let Some(first) = report.jobs.first() else {
        return match report.flaky.len() {
            0 => "No failed jobs to report".to_owned(),
            n => format!("Only flaky jobs: {} passed on retry", plural(n, "job", "jobs")),
        };
    };
    let job = format!("`{}`", markdown::shorten_chars(first.job.name.trim(), 60));
    let tests = &first.analysis.failing_tests;
    let head = match first.analysis.category {
        Category::Test => match tests.len() {
            0 => format!("Tests failed in {job}"),
            1 => format!("Test failed: `{}` in {job}", markdown::shorten_chars(&tests[0], 80)),
            n => format!("Test failed: {n} tests in {job}"),
        },
        Category::Compile => format!("Compile error in {job}"),
        Category::Lint => format!("Lint failed in {job}"),
        Category::Dependency => format!("Dependencies failed to install in {job}"),
        Category::Network => format!("Network error in {job}"),
        Category::Resources => format!("Ran out of resources in {job}"),
        Category::Timeout => format!("Timed out: {job}"),
        Category::Config => format!("Configuration problem in {job}"),
        Category::Other => format!("{job} failed: {}", first.analysis.title.trim()),
        Category::Unknown => format!("{job} failed (cause not recognised)"),
    };
    let more = failed_job_count(report) - 1;
    let title = match more {
        0 => head,
        n => format!("{head} (+{n} more {})", if n == 1 { "job" } else { "jobs" }),
    };
    markdown::shorten_chars(&title.replace(['\n', '\r'], " "), MAX_TITLE_CHARS)
}

fn job_link(job: &JobRef) -> String {
    link(&code(job.name.trim()), web_url(job.web_url.as_deref()))
}

fn summary(report: &BuildReport, conclusion: Conclusion, dropped_locations: usize) -> String {
    let build = &report.build;
    let mut md = String::new();
    let build_link = link(&format!("build \\#{}", build.number), web_url(Some(&build.web_url)));
    let short_sha: String = build.commit.as_str().chars().take(7).collect();
    let failed = failed_job_count(report);
    let headline = match failed {
        0 => "**No job failed for a reason kitefix could report**".to_owned(),
        n => format!("**{} failed**", plural(n, "job", "jobs")),
    };
    md.push_str(&format!(
        "{headline} in {build_link} of {} on {} at {}.",
        code(&format!("{}/{}", build.org, build.pipeline)),
        code(&build.branch),
        code(&short_sha),
    ));
    if !report.flaky.is_empty() {
        md.push_str(&format!(
            " {} failed and then passed on retry.",
            plural(report.flaky.len(), "more job", "more jobs")
        ));
    }
    md.push_str("\n\n");
    if conclusion == Conclusion::Neutral {
        md.push_str(if report.jobs.is_empty() {
            "Nothing points at this change, so this check is **neutral**.\n\n"
        } else {
            "Every failure looks like infrastructure (network, machine resources or a time \
             limit), not this change, so this check is **neutral**. Retrying the build may \
             be enough.\n\n"
        });
    }

    for job in report.jobs.iter().take(MAX_DETAILED_JOBS) {
        md.push_str(&job_summary(job));
    }
    let rest = report.jobs.iter().skip(MAX_DETAILED_JOBS).collect::<Vec<_>>();
    if !rest.is_empty() {
        md.push_str(&format!("### {} more\n\n", plural(rest.len(), "failure", "failures")));
        for job in rest {
            md.push_str(&format!(
                "- {}: {}: {}\n",
                job_link(&job.job),
                annotations::category_label(job.analysis.category),
                text_with_code(job.analysis.title.trim()),
            ));
        }
        md.push('\n');
    }
    if !report.flaky.is_empty() {
        md.push_str("### 🔁 Flaky: failed, then passed on retry\n\n");
        for job in &report.flaky {
            md.push_str(&format!("- {}\n", job_link(job)));
        }
        md.push('\n');
    }
    if dropped_locations > 0 {
        md.push_str(&format!(
            "_{} could not be placed in the repository and {} not annotated._\n\n",
            plural(dropped_locations, "file location", "file locations"),
            if dropped_locations == 1 { "is" } else { "are" },
        ));
    }
    md.push_str(
        "<sub>Posted by kitefix from the Buildkite build log. Longer log excerpts are below; \
         processing the build again updates this check run.</sub>\n",
    );
    md
}

fn job_summary(job: &JobReport) -> String {
    let analysis = &job.analysis;
    let icon = if analysis.category.is_infrastructure() { "⚠️" } else { "❌" };
    let mut md = format!(
        "### {icon} {} in {}\n\n",
        annotations::category_label(analysis.category),
        job_link(&job.job)
    );
    if !analysis.title.trim().is_empty() {
        md.push_str(&format!("- **Cause:** {}\n", text_with_code(analysis.title.trim())));
    }
    if let Some(step) = job.failing_step.as_deref().filter(|s| !s.trim().is_empty()) {
        md.push_str(&format!("- **Failing step:** {}\n", code(step.trim())));
    }
    let mut exit = Vec::new();
    if let Some(status) = job.exit_status {
        exit.push(format!("exit status {}", code(&status.to_string())));
    }
    if let Some(reason) = job.signal_reason.as_deref().filter(|s| !s.is_empty()) {
        exit.push(format!("signal reason {}", code(reason)));
    }
    if !job.state.is_empty() && job.state != "failed" {
        exit.push(format!("state {}", code(&job.state)));
    }
    if !exit.is_empty() {
        md.push_str(&format!("- **Job ended with** {}\n", exit.join(", ")));
    }
    if let Some(reason) = job.log_unavailable.as_deref() {
        md.push_str(&format!("- **Log not analysed:** {}\n", text(reason)));
    }
    let tests = &analysis.failing_tests;
    if !tests.is_empty() {
        md.push_str(&format!("- **Failing tests** ({}):\n", tests.len()));
        for test in tests.iter().take(MAX_TESTS_LISTED) {
            md.push_str(&format!("  - {}\n", code(&markdown::shorten_chars(test, 200))));
        }
        if tests.len() > MAX_TESTS_LISTED {
            md.push_str(&format!("  - … and {} more\n", tests.len() - MAX_TESTS_LISTED));
        }
    }
    if !job.also_failed.is_empty() {
        let others: Vec<String> = job.also_failed.iter().take(20).map(job_link).collect();
        let more = job.also_failed.len().saturating_sub(others.len());
        let tail = if more > 0 { format!(" and {more} more") } else { String::new() };
        md.push_str(&format!("- **Also failed the same way:** {}{tail}\n", others.join(", ")));
    }
    md.push('\n');
    if let Some((first, lines)) =
        analysis.excerpt.as_ref().and_then(|e| key_lines(e, analysis.key_line))
    {
        let last = first + lines.len() as u64 - 1;
        let body: Vec<String> =
            lines.iter().map(|l| markdown::shorten_chars(l, SUMMARY_LINE_CHARS)).collect();
        md.push_str(&code_block("text", &body.join("\n")));
        md.push_str(&format!("<sub>Log lines {first}–{last}.</sub>\n\n"));
    }
    md
}

/// The lines around the key line (or the excerpt's last lines when there is none), with
/// the number of the first.
fn key_lines(excerpt: &Excerpt, key_line: Option<u64>) -> Option<(u64, Vec<&str>)> {
    let lines: Vec<&str> = excerpt.text.trim_end_matches('\n').split('\n').collect();
    if excerpt.text.trim().is_empty() {
        return None;
    }
    let last_index = lines.len() as u64 - 1;
    let key_index =
        key_line.and_then(|k| k.checked_sub(excerpt.start)).filter(|&i| i <= last_index);
    let (from, to) = match key_index {
        Some(key) => {
            (key.saturating_sub(KEY_LINES_BEFORE), (key + KEY_LINES_AFTER).min(last_index))
        }
        // Without a key line the end of the log says most.
        None => (last_index.saturating_sub(KEY_LINES_BEFORE + KEY_LINES_AFTER), last_index),
    };
    let window = lines[from as usize..=to as usize].to_vec();
    Some((excerpt.start + from, window))
}

/// The `text` of the check run: every job's whole excerpt with line numbers, the file
/// locations, other failures seen in the log, and how sure the classifier was.
fn details(report: &BuildReport) -> String {
    let mut md = String::new();
    for job in &report.jobs {
        let analysis = &job.analysis;
        md.push_str(&format!(
            "## {} in {}\n\n",
            annotations::category_label(analysis.category),
            job_link(&job.job)
        ));
        match &analysis.excerpt {
            Some(excerpt) if !excerpt.text.trim().is_empty() => {
                md.push_str(&format!("Log lines {}–{}:\n\n", excerpt.start, excerpt.end));
                md.push_str(&code_block("text", &numbered(excerpt, analysis.key_line)));
                md.push('\n');
            }
            _ => md.push_str(&match job.log_unavailable.as_deref() {
                Some(reason) => format!("No log excerpt: {}\n\n", text(reason)),
                None => "No log excerpt.\n\n".to_owned(),
            }),
        }
        if !analysis.locations.is_empty() {
            md.push_str("**Where:**\n\n");
            let dirs = annotations::BuildDirs {
                checkout_path: job.checkout_path.as_deref(),
                org: report.build.org.as_str(),
                pipeline: report.build.pipeline.as_str(),
            };
            for location in analysis.locations.iter().take(50) {
                let path = annotations::repo_relative_path(&location.path, &dirs)
                    .unwrap_or_else(|| location.path.clone());
                let place = match location.column {
                    Some(column) => format!("{path}:{}:{column}", location.line),
                    None => format!("{path}:{}", location.line),
                };
                md.push_str(&format!(
                    "- {}: {}\n",
                    code(&place),
                    text_with_code(&markdown::shorten_chars(location.message.trim(), 300))
                ));
            }
            md.push('\n');
        }
        if !analysis.secondary.is_empty() {
            md.push_str("**Also in this log:**\n\n");
            for other in analysis.secondary.iter().take(20) {
                let at = other.key_line.map(|l| format!(" at line {l}")).unwrap_or_default();
                md.push_str(&format!(
                    "- {} (rule {}){at}\n",
                    annotations::category_label(other.category),
                    code(&other.rule)
                ));
            }
            md.push('\n');
        }
        md.push_str(&format!(
            "<sub>Rule {} with confidence {:.0}% · {} of log read.</sub>\n\n",
            code(&analysis.rule),
            (analysis.confidence.clamp(0.0, 1.0) * 100.0),
            human_bytes(job.log_bytes),
        ));
    }
    md
}

/// The excerpt with right-aligned line numbers; the key line is marked with `>`.
fn numbered(excerpt: &Excerpt, key_line: Option<u64>) -> String {
    let lines: Vec<&str> = excerpt.text.trim_end_matches('\n').split('\n').collect();
    let width = (excerpt.start + lines.len() as u64).to_string().len();
    lines
        .iter()
        .enumerate()
        .map(|(i, line)| {
            let number = excerpt.start + i as u64;
            let mark = if Some(number) == key_line { '>' } else { ' ' };
            format!("{mark} {number:>width$} | {}", markdown::shorten_chars(line, TEXT_LINE_CHARS))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::classify::{Analysis, Location, Secondary};
    use crate::domain::{
        BuildId, BuildNumber, BuildRef, JobId, OrgSlug, PipelineSlug, RepoFullName,
    };

    /// A job id that ends in `n`.
    pub(crate) fn job_id(n: &str) -> JobId {
        JobId::parse(&format!("0190c0de-3333-7000-8000-{n:0>12}")).unwrap()
    }

    pub(crate) fn job(name: &str, category: Category, excerpt: &str) -> JobReport {
        JobReport {
            job: JobRef {
                id: JobId::parse(&format!("0190c0de-0000-7000-8000-{:012}", name.len())).unwrap(),
                name: name.to_owned(),
                web_url: Some(format!("https://buildkite.com/acme/web/builds/42#{name}")),
            },
            state: "failed".into(),
            exit_status: Some(1),
            signal_reason: None,
            failing_step: Some(":rust: Test".into()),
            checkout_path: Some("/var/lib/buildkite-agent/builds/agent-1/acme/web".into()),
            log_bytes: 123_456,
            log_unavailable: None,
            analysis: Analysis {
                category,
                confidence: 0.9,
                rule: "rule.id".into(),
                title: format!("{category} failure in {name}"),
                key_line: Some(12),
                excerpt: Some(Excerpt { start: 10, end: 14, text: excerpt.to_owned() }),
                failing_tests: vec![],
                locations: vec![],
                secondary: vec![],
            },
            also_failed: vec![],
        }
    }

    pub(crate) fn report(jobs: Vec<JobReport>) -> BuildReport {
        BuildReport {
            build: BuildRef {
                org: OrgSlug::parse("acme").unwrap(),
                pipeline: PipelineSlug::parse("web").unwrap(),
                number: BuildNumber::new(42),
                id: BuildId::parse("0190c0de-1111-7000-8000-000000000042").unwrap(),
                web_url: "https://buildkite.com/acme/web/builds/42".into(),
                commit: CommitSha::parse("ce587453ced02b1526dfb4cb910479d431683101").unwrap(),
                branch: "feature/login".into(),
                pull_request: Some(7),
                repository: Some(RepoFullName::parse("acme/web").unwrap()),
            },
            jobs,
            flaky: vec![],
        }
    }

    #[test]
    fn conclusion_is_neutral_only_without_a_code_failure() {
        let infra = report(vec![job("deploy", Category::Network, "x")]);
        assert_eq!(CheckRunContent::render(&infra).conclusion, Conclusion::Neutral);
        let mut flaky = report(vec![]);
        flaky.flaky.push(JobRef { id: job_id("1"), name: "it".into(), web_url: None });
        let flaky = CheckRunContent::render(&flaky);
        assert_eq!(flaky.conclusion, Conclusion::Neutral);
        assert_eq!(flaky.title, "Only flaky jobs: 1 job passed on retry");
        let mixed =
            report(vec![job("deploy", Category::Network, "x"), job("unit", Category::Test, "y")]);
        assert_eq!(CheckRunContent::render(&mixed).conclusion, Conclusion::Failure);
    }

    #[test]
    fn title_names_the_cause_job_and_the_rest() {
        let mut unit = job("unit", Category::Test, "x");
        unit.analysis.failing_tests = vec!["a::one".into(), "a::two".into(), "a::three".into()];
        let mut r = report(vec![unit, job("lint", Category::Lint, "y")]);
        assert_eq!(
            CheckRunContent::render(&r).title,
            "Test failed: 3 tests in `unit` (+1 more job)"
        );
        r.jobs[0].also_failed.push(JobRef {
            id: job_id("2"),
            name: "unit 2".into(),
            web_url: None,
        });
        r.jobs[0].analysis.failing_tests.truncate(1);
        assert_eq!(
            CheckRunContent::render(&r).title,
            "Test failed: `a::one` in `unit` (+2 more jobs)"
        );
        let compile = report(vec![job("build", Category::Compile, "x")]);
        assert_eq!(CheckRunContent::render(&compile).title, "Compile error in `build`");
    }

    #[test]
    fn summary_shows_job_link_category_step_tests_and_key_lines() {
        let mut unit = job(
            "unit",
            Category::Test,
            "line 10\nline 11\nthread 'a::one' panicked at src/a.rs:3:5\nline 13\nline 14",
        );
        unit.analysis.failing_tests = vec!["a::one".into()];
        let content = CheckRunContent::render(&report(vec![unit]));
        let s = &content.summary;
        assert!(
            s.contains(
                "### ❌ Test failure in [`unit`](https://buildkite.com/acme/web/builds/42#unit)"
            ),
            "{s}"
        );
        assert!(s.contains("- **Failing step:** `:rust: Test`"), "{s}");
        assert!(s.contains("  - `a::one`"), "{s}");
        assert!(s.contains("```text\nline 10\nline 11\nthread 'a::one' panicked at src/a.rs:3:5\nline 13\nline 14\n```"), "{s}");
        assert!(s.contains("Log lines 10–14"), "{s}");
        assert!(content.text.contains("> 12 | thread 'a::one' panicked"), "{}", content.text);
    }

    #[test]
    fn key_lines_window_shows_more_after_the_key_line_than_before() {
        let text: Vec<String> = (100..140).map(|n| format!("l{n}")).collect();
        let excerpt = Excerpt { start: 100, end: 139, text: text.join("\n") };
        let (first, lines) = key_lines(&excerpt, Some(120)).unwrap();
        assert_eq!(first, 117);
        assert_eq!(lines.first(), Some(&"l117"));
        assert_eq!(lines.last(), Some(&"l125"));
        let (first, lines) = key_lines(&excerpt, None).unwrap();
        assert_eq!((first, lines.len()), (131, 9));
    }

    #[test]
    fn flaky_jobs_and_unavailable_logs_are_listed() {
        let mut gone = job("e2e", Category::Unknown, "");
        gone.analysis.excerpt = None;
        gone.log_unavailable = Some("the log was deleted by the retention policy".into());
        let mut r = report(vec![gone]);
        r.flaky.push(JobRef {
            id: job_id("9"),
            name: "integration".into(),
            web_url: Some("https://buildkite.com/acme/web/builds/42#integration".into()),
        });
        let content = CheckRunContent::render(&r);
        assert!(
            content
                .summary
                .contains("- **Log not analysed:** the log was deleted by the retention policy")
        );
        assert!(
            content
                .summary
                .contains("### 🔁 Flaky: failed, then passed on retry\n\n- [`integration`]")
        );
        assert!(content.text.contains("No log excerpt: the log was deleted"));
    }

    #[test]
    fn log_text_cannot_break_out_of_its_code_block() {
        let hostile = "```\n# Heading\n<img src=x onerror=alert(1)>\n@octocat\n````````";
        let mut j = job("unit", Category::Test, hostile);
        j.analysis.title = "see <script> and @octocat #1".into();
        let content = CheckRunContent::render(&report(vec![j]));
        let s = &content.summary;
        assert!(s.contains("\n`````````text\n```\n# Heading\n"), "{s}");
        assert!(s.contains("- **Cause:** see \\<script\\> and \\@octocat \\#1"), "{s}");
        assert!(content.text.contains("`````````text\n"));
    }

    #[test]
    fn outputs_over_the_byte_limit_are_cut_on_a_char_boundary() {
        // 40 lines of 2,000 four-byte characters per job, 20 jobs: far past 65,535 bytes.
        let line = "🦀".repeat(2_000);
        let excerpt = vec![line.as_str(); 40].join("\n");
        let jobs = (0..20)
            .map(|i| {
                let mut j = job(&format!("job{i}"), Category::Test, &excerpt);
                j.analysis.key_line = Some(30);
                j
            })
            .collect();
        let content = CheckRunContent::render(&report(jobs));
        for out in [&content.summary, &content.text] {
            assert!(out.len() <= OUTPUT_LIMIT_BYTES, "{} bytes", out.len());
            assert!(out.len() > OUTPUT_LIMIT_BYTES / 2, "cut far too much: {} bytes", out.len());
            assert!(out.contains("cut to fit GitHub's 65,535-byte limit"));
        }
        assert!(content.text.starts_with("## Test failure in [`job0`]"));
    }

    #[test]
    fn annotations_carry_repo_relative_paths() {
        let mut j = job("build", Category::Compile, "x");
        j.analysis.locations = vec![
            Location {
                path: "/var/lib/buildkite-agent/builds/agent-1/acme/web/src/main.rs".into(),
                line: 3,
                column: Some(9),
                message: "mismatched types".into(),
            },
            Location {
                path: "/usr/lib/rust/core.rs".into(),
                line: 1,
                column: None,
                message: "x".into(),
            },
        ];
        j.analysis.secondary =
            vec![Secondary { category: Category::Lint, rule: "clippy".into(), key_line: Some(3) }];
        let content = CheckRunContent::render(&report(vec![j]));
        assert_eq!(content.annotations.len(), 1);
        let a = &content.annotations[0];
        assert_eq!((a.path.as_str(), a.start_line, a.start_column), ("src/main.rs", 3, Some(9)));
        assert!(content.summary.contains("1 file location could not be placed"));
    }

    #[test]
    fn content_round_trips_through_json_for_dry_run_storage() {
        let mut j = job("build", Category::Compile, "error[E0308]: mismatched types");
        j.analysis.locations =
            vec![Location { path: "src/a.rs".into(), line: 2, column: None, message: "m".into() }];
        let content = CheckRunContent::render(&report(vec![j]));
        let json = serde_json::to_string(&content).unwrap();
        assert_eq!(serde_json::from_str::<CheckRunContent>(&json).unwrap(), content);
    }

    proptest::proptest! {
        #[test]
        fn any_log_renders_within_limits_with_every_code_block_closed(
            lines in proptest::collection::vec("(\\PC|`){0,120}", 1..60),
            name in "(\\PC|`){1,40}",
            title in "(\\PC|`){0,80}",
            jobs in 1usize..14,
        ) {
            let excerpt = lines.join("\n");
            let reports = (0..jobs)
                .map(|i| {
                    let mut j = job(&format!("{name}{i}"), Category::Test, &excerpt);
                    j.analysis.title = title.clone();
                    j.analysis.key_line = Some(10 + i as u64);
                    j
                })
                .collect();
            let content = CheckRunContent::render(&report(reports));
            proptest::prop_assert!(content.title.chars().count() <= MAX_TITLE_CHARS);
            proptest::prop_assert!(!content.title.contains('\n'));
            for out in [&content.summary, &content.text] {
                proptest::prop_assert!(out.len() <= OUTPUT_LIMIT_BYTES);
                proptest::prop_assert_eq!(markdown::open_fence(out), None);
            }
        }
    }
}
