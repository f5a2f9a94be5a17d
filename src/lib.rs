#![forbid(unsafe_code)]

pub mod classify;
pub mod cli;
pub mod domain;
pub mod logs;
pub mod report;
