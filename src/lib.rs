#![forbid(unsafe_code)]

pub mod classify;
pub mod report;
