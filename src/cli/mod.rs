//! The commands besides `serve`: the offline `kitefix analyze` (classify one log) and
//! `kitefix eval` (score the classifier on a labelled manifest), and `kitefix
//! integrations`, which is not offline: it writes the store `serve` uses and checks
//! tokens with Buildkite. `main.rs` wires their `Args` into the CLI.

pub mod analyze;
pub mod eval;
pub mod integrations;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::classify::{Classifier, RuleError};
use crate::config::{ClassifierSettings, Settings};

/// sysexits.h `EX_CONFIG`: what a command exits with when the configuration is wrong
/// (https://man.freebsd.org/cgi/man.cgi?query=sysexits).
pub const EX_CONFIG: u8 = 78;

/// Loads the configuration for a command (`--config FILE`, then `KITEFIX_*`). On a
/// mistake it prints every problem to stderr and gives the exit status to end with.
pub fn load_settings(file: Option<&Path>) -> Result<Settings, ExitCode> {
    Settings::load(file).map_err(|e| {
        eprintln!("kitefix: {e}");
        ExitCode::from(EX_CONFIG)
    })
}

/// Output format of the offline commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// A report for a person.
    #[default]
    Text,
    /// Machine-readable JSON (for `analyze`, the analysis contract, docs/design.md#analysis).
    Json,
}

/// The embedded rules, extended by a user's folder when one is given (`--rules`), the
/// same way `serve` loads `classifier.rules_dir`.
fn load_classifier(rules: Option<&Path>) -> Result<Classifier, RuleError> {
    Classifier::from_settings(&ClassifierSettings { rules_dir: rules.map(PathBuf::from) })
}
