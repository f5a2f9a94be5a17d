//! Identifiers parsed at the edge (webhook payloads, API answers, CLI arguments).
//!
//! Each type is a newtype with a private field and a `parse` constructor, so a value
//! that reaches a URL builder or a SQL query has already been checked: Buildkite API
//! paths are built from these, never from a URL found in a payload (no SSRF).

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why an identifier was refused; the message names the field and the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct IdError {
    pub field: &'static str,
    pub problem: String,
}

impl IdError {
    fn new(field: &'static str, problem: impl Into<String>) -> Self {
        Self { field, problem: problem.into() }
    }
}

/// A Buildkite slug (organisation or pipeline): lowercase letters, digits, `-` and `_`,
/// 1–100 characters. Buildkite generates slugs in this alphabet, and anything else could
/// change the meaning of an API path.
fn parse_slug(field: &'static str, s: &str) -> Result<String, IdError> {
    if s.is_empty() || s.len() > 100 {
        return Err(IdError::new(field, "must be 1 to 100 characters"));
    }
    if !s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_') {
        return Err(IdError::new(
            field,
            format!("`{s}` may only hold lowercase letters, digits, `-` and `_`"),
        ));
    }
    Ok(s.to_owned())
}

/// A UUID in its canonical hyphenated form, as Buildkite sends build and job ids.
fn parse_uuid(field: &'static str, s: &str) -> Result<String, IdError> {
    uuid::Uuid::parse_str(s)
        .map(|u| u.hyphenated().to_string())
        .map_err(|_| IdError::new(field, format!("`{s}` is not a UUID")))
}

/// A full commit SHA: 40 hex digits (SHA-1), or 64 for SHA-256 repositories, lowercased.
/// Abbreviated SHAs and ref names (`HEAD`) are refused, since a check run is created on
/// exactly one commit (<https://docs.github.com/en/rest/checks/runs#create-a-check-run>,
/// `head_sha`).
fn parse_commit(field: &'static str, s: &str) -> Result<String, IdError> {
    let s = s.trim();
    if (s.len() == 40 || s.len() == 64) && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(s.to_ascii_lowercase())
    } else {
        let shown: String = s.chars().take(80).collect();
        Err(IdError::new(field, format!("`{shown}` is not a full git SHA")))
    }
}

macro_rules! string_id {
    ($(#[$meta:meta])* $name:ident, $field:literal, $parse:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn parse(s: &str) -> Result<Self, IdError> {
                $parse($field, s).map(Self)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;

            fn try_from(s: String) -> Result<Self, IdError> {
                Self::parse(&s)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

string_id!(
    /// A Buildkite organisation slug (`acme` in `buildkite.com/acme/…`).
    OrgSlug,
    "org slug",
    parse_slug
);
string_id!(
    /// A Buildkite pipeline slug.
    PipelineSlug,
    "pipeline slug",
    parse_slug
);
string_id!(
    /// Buildkite's build UUID (`build.id`).
    BuildId,
    "build id",
    parse_uuid
);
string_id!(
    /// Buildkite's job UUID.
    JobId,
    "job id",
    parse_uuid
);
string_id!(
    /// The commit a build ran, as a full lowercase SHA.
    CommitSha,
    "commit",
    parse_commit
);
string_id!(
    /// A connected Buildkite organisation (a row of `integrations`), by its UUID: the
    /// `{id}` of its webhook route `/webhooks/buildkite/{id}`.
    IntegrationId,
    "integration id",
    parse_uuid
);

/// A build number: unique per pipeline, what the single-build REST endpoints take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct BuildNumber(u64);

impl BuildNumber {
    pub fn new(n: u64) -> Self {
        Self(n)
    }

    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for BuildNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_accept_buildkite_alphabet_only() {
        assert!(OrgSlug::parse("acme-inc_2").is_ok());
        for bad in ["", "Acme", "a/b", "a b", "..", "a?x=1", "ä"] {
            let err = OrgSlug::parse(bad).unwrap_err();
            assert_eq!(err.field, "org slug", "{bad}");
        }
        assert!(PipelineSlug::parse(&"x".repeat(101)).is_err());
    }

    #[test]
    fn uuids_are_canonicalised() {
        let id = BuildId::parse("F0D1A5E6-1C2B-4E3A-9D8F-0123456789AB").unwrap();
        assert_eq!(id.as_str(), "f0d1a5e6-1c2b-4e3a-9d8f-0123456789ab");
        assert!(JobId::parse("not-a-uuid").is_err());
    }

    #[test]
    fn commits_must_be_full_shas() {
        let sha = CommitSha::parse("ABCDEF0123456789abcdef0123456789ABCDEF01").unwrap();
        assert_eq!(sha.as_str(), "abcdef0123456789abcdef0123456789abcdef01");
        assert!(CommitSha::parse(&"a".repeat(64)).is_ok());
        for bad in ["HEAD", "abcdef0", "main", &"g".repeat(40)] {
            assert_eq!(CommitSha::parse(bad).unwrap_err().field, "commit", "{bad}");
        }
    }

    #[test]
    fn ids_refuse_bad_values_when_deserialised() {
        assert!(serde_json::from_str::<OrgSlug>("\"../admin\"").is_err());
        let slug: OrgSlug = serde_json::from_str("\"acme\"").unwrap();
        assert_eq!(slug.as_str(), "acme");
    }
}
