//! Domain types: parsed, checked values that the rest of kitefix can trust.

mod ids;

pub use ids::{BuildId, BuildNumber, IdError, JobId, OrgSlug, PipelineSlug};
