//! The `kitefix` command: parse the CLI, set up TLS and logging, hand over to the library.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use kitefix::startup::{Application, Role};

#[derive(Parser)]
#[command(name = "kitefix", version, about = "Explains failed Buildkite builds on GitHub")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service: webhook receiver and workers.
    Serve {
        /// TOML configuration file (defaults, then this file, then KITEFIX_* variables).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Which parts to run in this process.
        #[arg(long, value_enum, default_value_t = Role::All)]
        role: Role,
    },
    /// Classify one job log offline and print the analysis.
    Analyze(kitefix::cli::analyze::AnalyzeArgs),
    /// Score the classifier on a labelled manifest (see ci-eval/).
    Eval(kitefix::cli::eval::EvalArgs),
    /// Connect, list, verify and remove Buildkite organisations; rotate the key.
    Integrations(kitefix::cli::integrations::IntegrationsArgs),
}

fn main() -> ExitCode {
    // One process-wide TLS provider, chosen before anything opens a connection: with
    // several rustls backends compiled in, rustls cannot pick one by itself
    // (docs/dependencies.md#tls-crypto-provider).
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { config, role } => serve(config, role),
        Command::Analyze(args) => report(kitefix::cli::analyze::run(args)),
        Command::Eval(args) => report(kitefix::cli::eval::run(args)),
        Command::Integrations(args) => report(kitefix::cli::integrations::run(args)),
    }
}

/// Prints a command's error (with its causes) and turns it into exit status 1.
fn report(result: anyhow::Result<ExitCode>) -> ExitCode {
    result.unwrap_or_else(|e| {
        eprintln!("kitefix: {e:#}");
        ExitCode::FAILURE
    })
}

fn serve(config: Option<PathBuf>, role: Role) -> ExitCode {
    let settings = match kitefix::cli::load_settings(config.as_deref()) {
        Ok(s) => s,
        Err(exit) => return exit,
    };
    kitefix::telemetry::init(&settings.log);
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    let result = runtime.block_on(async {
        let app = Application::build(settings, role).await?;
        app.run_until_stopped().await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "kitefix stopped with an error");
            eprintln!("kitefix: {e:#}");
            ExitCode::FAILURE
        }
    }
}
