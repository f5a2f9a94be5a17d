//! HTTP stand-ins for the services kitefix talks to.

pub mod buildkite;
pub mod github;
