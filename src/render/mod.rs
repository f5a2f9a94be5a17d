//! A [`BuildReport`](crate::domain::BuildReport) as its readers see it: the check run's
//! conclusion, one-line title, Markdown summary and details, and the annotations on files.
//!
//! Rendered once per build by the worker, stored (so dry-run and the admin API show what
//! was or would have been posted), and handed as it is to the reporter that posts it
//! (`github::GitHubReporter`). Nothing in here does I/O.
//!
//! - [`check_run`]: the whole run, within GitHub's size limits.
//! - [`annotations`]: file:line annotations, with paths made repository-relative.
//! - [`markdown`]: escaping and fitting Markdown that came from logs.

pub(crate) mod annotations;
pub(crate) mod check_run;
pub(crate) mod markdown;

pub use annotations::{ANNOTATIONS_PER_REQUEST, Annotation};
pub use check_run::{CHECK_RUN_NAME, CheckRunContent, Conclusion};
