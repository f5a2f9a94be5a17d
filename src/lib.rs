#![forbid(unsafe_code)]

pub mod buildkite;
pub mod classify;
pub mod domain;
pub mod logs;
pub mod report;
