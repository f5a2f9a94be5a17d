//! kitefix's integration tests: one binary (faster to link), one module per feature.
//! Start with `helpers.rs`: `spawn_app()` runs the real application on a random port
//! against real SQLite, PostgreSQL and RabbitMQ.

mod helpers;

mod cli;
mod config_errors;
mod embedded_queue;
mod rabbitmq_queue;
mod shutdown;
mod store_suite;
mod webhook_receive;
