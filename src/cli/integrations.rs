//! `kitefix integrations add|list|remove|verify|rotate-key`: the admin API's operations
//! from a shell, against the store and key that `serve` uses with the same `--config`.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use secrecy::{ExposeSecret, SecretString};

use crate::buildkite::{BuildkiteClient, ClientOptions};
use crate::config::Settings;
use crate::integrations::{self, IntegrationMetrics, Integrations, TokenCipher};
use crate::store::Store;

#[derive(Debug, clap::Args)]
pub struct IntegrationsArgs {
    /// TOML configuration file (defaults, then this file, then KITEFIX_* variables).
    #[arg(long, value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: IntegrationsCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum IntegrationsCommand {
    /// Connect a Buildkite organisation. The API token is read from --token-file or
    /// stdin, never from the command line (which other users can see).
    Add {
        /// The organisation's slug, as in buildkite.com/<slug>.
        #[arg(long, value_name = "SLUG")]
        org: String,
        /// A file holding the API token; without it, the token is read from stdin.
        #[arg(long, value_name = "PATH")]
        token_file: Option<PathBuf>,
    },
    /// List integrations (the token's last 4 characters only).
    List,
    /// Remove an integration: its webhook URL and token stop working.
    Remove { id: String },
    /// Check an integration's token with Buildkite again and record the result.
    Verify { id: String },
    /// Re-encrypt every stored token under a new key (created if the file does not
    /// exist), then point security.encryption_key_file at it.
    RotateKey {
        #[arg(long, value_name = "PATH")]
        new_key_file: PathBuf,
    },
}

/// Runs the command; `Err` is printed by `main` with exit status 1.
pub fn run(args: IntegrationsArgs) -> anyhow::Result<ExitCode> {
    let settings = match super::load_settings(args.config.as_deref()) {
        Ok(s) => s,
        Err(exit) => return Ok(exit),
    };
    // Read before the runtime starts: stdin is a blocking read.
    let token = match &args.command {
        IntegrationsCommand::Add { token_file, .. } => Some(read_token(token_file.as_deref())?),
        _ => None,
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async move {
        let store = Store::connect(&settings.store.backend, 2)
            .await
            .context("store.url: cannot open the store")?;
        let result = execute(&settings, &store, args.command, token).await;
        store.close().await;
        result
    })
}

async fn execute(
    settings: &Settings,
    store: &Store,
    command: IntegrationsCommand,
    token: Option<SecretString>,
) -> anyhow::Result<ExitCode> {
    let buildkite =
        BuildkiteClient::new(settings.buildkite.api_url.clone(), ClientOptions::default())
            .context("buildkite.api_url")?;
    let key_file = integrations::key_file(&settings.security, store.backend());
    let key_existed = match &key_file {
        Some(path) => tokio::fs::try_exists(path).await.unwrap_or(true),
        None => true,
    };
    let service = Integrations::from_settings(
        &settings.security,
        store.clone(),
        buildkite,
        IntegrationMetrics::unregistered()?,
    )
    .await?;
    if let (Some(path), false) = (&key_file, key_existed) {
        eprintln!(
            "kitefix: generated the encryption key {} (key {}); back it up with the database",
            path.display(),
            service.key_id()
        );
    }
    match command {
        IntegrationsCommand::Add { org, .. } => {
            let token = token.expect("read above");
            let connected = service.connect(&org, token).await?;
            println!("connected organisation `{}`", connected.org);
            println!("integration id: {}", connected.id);
            println!("webhook URL path: {}", connected.webhook_path);
            println!(
                "webhook token (shown once; paste it into Buildkite's webhook settings): {}",
                connected.webhook_token.expose_secret()
            );
        }
        IntegrationsCommand::List => {
            println!(
                "{:<36}  {:<20}  {:<14}  {:<6}  {:<20}  reason",
                "id", "org", "status", "token", "last webhook"
            );
            for i in service.list().await? {
                println!(
                    "{:<36}  {:<20}  {:<14}  …{:<5}  {:<20}  {}",
                    i.id,
                    i.org_slug,
                    i.status.as_str(),
                    i.token_last4,
                    i.last_webhook_at.map_or_else(|| "never".into(), time),
                    i.reason.unwrap_or_default()
                );
            }
        }
        IntegrationsCommand::Remove { id } => {
            service.remove(&id).await?;
            println!("integration {id} removed");
        }
        IntegrationsCommand::Verify { id } => {
            let summary = service.verify(&id).await?;
            println!("integration {id} ({}): {}", summary.org_slug, summary.status.as_str());
            if let Some(reason) = summary.reason {
                println!("reason: {reason}");
            }
        }
        IntegrationsCommand::RotateKey { new_key_file } => {
            let new = TokenCipher::load_or_create(&new_key_file).await?;
            let count = service.rotate_key(&new).await?;
            println!(
                "{count} integration(s) re-encrypted from key {} to key {}",
                service.key_id(),
                new.key_id()
            );
            println!(
                "now set security.encryption_key_file = \"{}\" and restart kitefix",
                new_key_file.display()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn read_token(file: Option<&Path>) -> anyhow::Result<SecretString> {
    let mut text = String::new();
    match file {
        Some(path) => {
            text = std::fs::read_to_string(path)
                .with_context(|| format!("--token-file: cannot read `{}`", path.display()))?
        }
        None => {
            std::io::stdin()
                .read_to_string(&mut text)
                .context("cannot read the token from stdin")?;
        }
    };
    let token = SecretString::from(text.trim().to_owned());
    secrecy::zeroize::Zeroize::zeroize(&mut text);
    Ok(token)
}

fn time(millis: i64) -> String {
    chrono::DateTime::from_timestamp_millis(millis)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}
