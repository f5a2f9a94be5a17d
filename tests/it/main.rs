//! kitefix's integration tests: one binary (faster to link), one module per feature.
//! Start with `helpers.rs`: `spawn_app()` runs the real application on a random port
//! against real SQLite, PostgreSQL and RabbitMQ.

mod browser;
mod helpers;
mod stubs;

mod admin_page;
mod buildkite_api;
mod buildkite_log_stream;
mod ci_eval;
mod classify_fixtures;
mod cli;
mod config_errors;
mod embedded_queue;
mod github_reporter;
mod integrations;
mod pipeline;
mod rabbitmq_queue;
mod reconciler;
mod serve_process;
mod shutdown;
mod store_suite;
mod store_unavailable;
mod supervision;
mod webhook_receive;
