//! A repository on a forge as `owner/repo`: it ends up in API paths
//! (`/repos/{owner}/{repo}/check-runs`), so it is parsed here, once, and nothing else
//! builds such a path from a string.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a string is not an `owner/repo` name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{input}` is not an owner/repo name: {problem}")]
pub struct RepoNameError {
    /// The refused input, shortened to 200 characters.
    pub input: String,
    /// Which rule it broke.
    pub problem: &'static str,
}

/// A GitHub repository as `owner/repo`, checked to be safe inside an API path.
///
/// Owners are letters, digits, `-` and `_` (GitHub user and organisation names; `_` occurs
/// in Enterprise Managed Users' `name_shortcode` logins). Repository names are letters,
/// digits, `-`, `_` and `.`, but not `.`/`..` and not ending in `.git`, which GitHub strips
/// from names (GitHub docs: "Creating a new repository", naming rules).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RepoFullName {
    full: String,
    slash: usize,
}

impl RepoFullName {
    /// Parses `owner/repo`.
    pub fn parse(s: &str) -> Result<Self, RepoNameError> {
        let err = |problem| RepoNameError { input: s.chars().take(200).collect(), problem };
        let (owner, name) = s.split_once('/').ok_or_else(|| err("there is no `/`"))?;
        if owner.is_empty() || owner.len() > 100 {
            return Err(err("the owner must be 1 to 100 characters"));
        }
        if owner.starts_with('-')
            || !owner.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(err("the owner may only hold letters, digits, `-` and `_`"));
        }
        if name.is_empty() || name.len() > 100 {
            return Err(err("the repository name must be 1 to 100 characters"));
        }
        if !name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')) {
            return Err(err("the repository name may only hold letters, digits, `-`, `_` and `.`"));
        }
        if name == "." || name == ".." {
            return Err(err("the repository name cannot be `.` or `..`"));
        }
        if name.to_ascii_lowercase().ends_with(".git") {
            return Err(err("the repository name cannot end in `.git`"));
        }
        Ok(Self { full: s.to_owned(), slash: owner.len() })
    }

    /// The user or organisation that owns the repository.
    pub(crate) fn owner(&self) -> &str {
        &self.full[..self.slash]
    }

    /// The repository's name without its owner.
    pub(crate) fn name(&self) -> &str {
        &self.full[self.slash + 1..]
    }

    /// `owner/repo`.
    pub fn as_str(&self) -> &str {
        &self.full
    }
}

impl fmt::Display for RepoFullName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.full)
    }
}

impl TryFrom<String> for RepoFullName {
    type Error = RepoNameError;

    fn try_from(s: String) -> Result<Self, RepoNameError> {
        Self::parse(&s)
    }
}

impl From<RepoFullName> for String {
    fn from(repo: RepoFullName) -> String {
        repo.full
    }
}
