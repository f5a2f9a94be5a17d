//! The analysis contract: what `kitefix analyze --format json` prints and what the worker
//! stores and reports. Field names and category names are fixed by
//! docs/design.md#analysis; tests and operators rely on them, so change them only with a note.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a job failed, in kitefix's taxonomy (docs/design.md#categories).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Category {
    /// The project's code does not build or type-check.
    Compile,
    /// A test or suite fails (a test reporting its own timeout included).
    Test,
    /// Style, format, static checks, generated files out of date.
    Lint,
    /// Resolving, fetching or installing packages.
    Dependency,
    /// DNS, TLS, refused/reset connections, 5xx or rate limits from outside services.
    Network,
    /// OOM, disk full, SIGKILL/137, agent lost.
    Resources,
    /// A job, step or harness time limit killed the run.
    Timeout,
    /// Missing secret or permission, wrong command or file, missing tool on the image.
    Config,
    /// Anything else a rule recognised (VCS problems, cancellations, policy gates).
    Other,
    /// No rule said anything useful.
    Unknown,
}

impl Category {
    pub(crate) const ALL: [Category; 10] = [
        Category::Compile,
        Category::Test,
        Category::Lint,
        Category::Dependency,
        Category::Network,
        Category::Resources,
        Category::Timeout,
        Category::Config,
        Category::Other,
        Category::Unknown,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Category::Compile => "compile",
            Category::Test => "test",
            Category::Lint => "lint",
            Category::Dependency => "dependency",
            Category::Network => "network",
            Category::Resources => "resources",
            Category::Timeout => "timeout",
            Category::Config => "config",
            Category::Other => "other",
            Category::Unknown => "unknown",
        }
    }

    /// Failures the pull request's author most likely did not cause: the machine, the
    /// network or a time limit. A check run whose failures are all of this kind is
    /// `neutral`, not `failure`.
    pub(crate) fn is_infrastructure(self) -> bool {
        matches!(self, Category::Network | Category::Resources | Category::Timeout)
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Category {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Category::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| format!("unknown category `{s}`"))
    }
}

/// The classifier's verdict on one job log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Analysis {
    pub category: Category,
    /// 0.0–1.0: how sure the winning rule is.
    pub confidence: f32,
    /// Id of the rule that decided the category (`"none"` when nothing matched).
    pub rule: String,
    /// One line for a human.
    pub title: String,
    /// 1-based line of the input (lines end at `\n`) that failed the job.
    pub key_line: Option<u64>,
    /// At most 40 lines around the key line, ANSI-free and redacted.
    pub excerpt: Option<Excerpt>,
    pub failing_tests: Vec<String>,
    pub locations: Vec<Location>,
    pub secondary: Vec<Secondary>,
}

/// A window of the log, lines `start..=end` (1-based), joined by `\n`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Excerpt {
    pub start: u64,
    pub end: u64,
    pub text: String,
}

/// A place in the project's source that the failure points at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    pub path: String,
    pub line: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<u32>,
    pub message: String,
}

/// Another failure the log shows besides the one that decided the category.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Secondary {
    pub category: Category,
    pub rule: String,
    pub key_line: Option<u64>,
}

/// What the CI system itself says about the job, used by rules for infrastructure
/// failures a log cannot show (`--exit-status`, `--signal-reason` on the CLI; the job
/// object from the Buildkite API in the worker).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobMeta {
    /// The command's exit status (`137` = SIGKILL, often the OOM killer).
    pub exit_status: Option<i32>,
    /// Buildkite's `signal_reason` (`agent_stop`, `cancel`, `process_run_error`, …).
    pub signal_reason: Option<String>,
    /// Buildkite's job `state` when it says more than "failed" (`timed_out`, `expired`).
    pub state: Option<String>,
}
