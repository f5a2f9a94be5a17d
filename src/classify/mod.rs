//! Failure classification: a rule engine over normalised log lines.

mod analysis;

pub use analysis::{Analysis, Category, Excerpt, JobMeta, Location, Secondary};
