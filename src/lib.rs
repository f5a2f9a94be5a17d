//! kitefix: Buildkite failures explained on GitHub.
//!
//! `startup` wires everything; the pieces are the webhook receiver (`webhook`,
//! `routes`, `intake`), the durable queue (`queue`), the store (`store`) and the worker
//! (`worker`) with its pipeline: the Buildkite client (`buildkite`), the log pipeline
//! (`logs`), the classifier (`classify`) and the GitHub reporter (`github`).
#![forbid(unsafe_code)]

pub mod buildkite;
pub mod classify;
pub mod cli;
pub mod config;
pub mod domain;
pub mod error;
pub mod github;
pub mod intake;
pub mod integrations;
pub mod logs;
pub mod metrics;
pub mod queue;
pub mod reconciler;
pub mod render;
pub mod routes;
pub mod startup;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod tokens;
pub mod webhook;
pub mod worker;
