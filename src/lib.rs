#![forbid(unsafe_code)]

pub mod classify;
pub mod domain;
pub mod github;
pub mod report;
