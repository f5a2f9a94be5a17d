//! kitefix: Buildkite failures explained on GitHub.
//!
//! `startup` wires everything from `config`. From the bottom up:
//! - `domain`: the checked ids, the build (`BuildFinished`) and the report every part
//!   passes on;
//! - `logs` (normalise and redact) and `classify` (the rule engine): pure, no I/O;
//! - `render`: a report as the check run a reader sees;
//! - the edges: `webhook` (verify and parse), `buildkite` (REST client), `github`
//!   (check runs), `integrations` (connected organisations, sealed tokens, `tokens`);
//! - the middle: `store`, `queue`, `intake` (dedupe and queue what the routes and the
//!   `reconciler` accept), `worker` (the pipeline, and the one owner of a build's fate);
//! - the front: `routes` (HTTP, admin page and API, `error` codes), `metrics`,
//!   `telemetry`, and `cli` for the commands besides `serve`.
//!
//! Design and the facts the code relies on: `docs/` (start with `docs/README.md`).
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
