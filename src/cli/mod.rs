//! Offline commands: `kitefix analyze` (classify one log) and `kitefix eval` (score the
//! classifier on a labelled manifest), and `kitefix integrations` (connected Buildkite
//! organisations). `main.rs` wires their `Args` into the CLI.

pub mod analyze;
pub mod eval;
pub mod integrations;

use std::path::Path;

use crate::classify::{Classifier, RuleError};

/// Output format of the offline commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// A report for a person.
    #[default]
    Text,
    /// Machine-readable JSON (for `analyze`, the analysis contract of `DESIGN.md`).
    Json,
}

/// The embedded rules, extended by a user's folder when one is given.
fn load_classifier(rules: Option<&Path>) -> Result<Classifier, RuleError> {
    match rules {
        Some(dir) => Classifier::with_user_rules(dir),
        None => Classifier::embedded(),
    }
}
