//! GitHub App installation tokens and when to mint a new one.
//!
//! GitHub docs, "Generating an installation access token for a GitHub App": the token
//! "will expire after 1 hour", and the response carries `expires_at`. We mint tokens
//! ourselves (`POST /app/installations/{id}/access_tokens`) rather than through octocrab's
//! installation client, so that each mint is counted, concurrent requests for one
//! installation share one mint, and a 401 invalidates exactly the token that failed.

use std::fmt;

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::Deserialize;

/// Mint a new token this long before the old one expires, so a request sent with it
/// (and the annotation PATCHes that follow) never races the expiry.
pub(crate) const REFRESH_MARGIN: chrono::TimeDelta = chrono::TimeDelta::minutes(5);

/// When GitHub's answer lacks a readable `expires_at`, assume a short life rather than
/// the full hour, so a wrong guess costs a mint, not a failed request.
const ASSUMED_LIFETIME: chrono::TimeDelta = chrono::TimeDelta::minutes(10);

/// An installation access token, with the expiry GitHub gave it.
#[derive(Clone)]
pub(crate) struct InstallationToken {
    pub(crate) secret: SecretString,
    pub(crate) expires_at: DateTime<Utc>,
    /// Which mint produced it, so a 401 can invalidate this token and not a newer one.
    pub(crate) generation: u64,
}

impl InstallationToken {
    /// From the `installation-token` response body.
    pub(crate) fn from_response(body: TokenResponse, now: DateTime<Utc>, generation: u64) -> Self {
        let expires_at = body
            .expires_at
            .as_deref()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or(now + ASSUMED_LIFETIME);
        Self { secret: SecretString::from(body.token), expires_at, generation }
    }

    /// True while the token has more than [`REFRESH_MARGIN`] left.
    pub(crate) fn is_fresh(&self, now: DateTime<Utc>) -> bool {
        self.expires_at - now > REFRESH_MARGIN
    }
}

impl fmt::Debug for InstallationToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InstallationToken")
            .field("secret", &"[redacted]")
            .field("expires_at", &self.expires_at)
            .field("generation", &self.generation)
            .finish()
    }
}

/// The fields of GitHub's `installation-token` schema we use.
#[derive(Deserialize)]
pub(crate) struct TokenResponse {
    token: String,
    expires_at: Option<String>,
}

/// The fields of GitHub's `installation` schema we use.
#[derive(Debug, Deserialize)]
pub(crate) struct InstallationResponse {
    pub(crate) id: u64,
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    fn token(expires_at: Option<&str>, now: DateTime<Utc>) -> InstallationToken {
        let body: TokenResponse = serde_json::from_value(serde_json::json!({
            "token": "ghs_16C7e42F292c6912E7710c838347Ae178B4a",
            "expires_at": expires_at,
            "permissions": {"checks": "write"},
        }))
        .unwrap();
        InstallationToken::from_response(body, now, 1)
    }

    #[test]
    fn tokens_are_refreshed_five_minutes_before_expiry() {
        let now = DateTime::parse_from_rfc3339("2026-05-01T12:00:00Z").unwrap().to_utc();
        let t = token(Some("2026-05-01T13:00:00Z"), now);
        assert!(t.is_fresh(now));
        assert!(t.is_fresh(now + chrono::TimeDelta::minutes(54)));
        assert!(!t.is_fresh(now + chrono::TimeDelta::minutes(55)));
        assert_eq!(t.secret.expose_secret(), "ghs_16C7e42F292c6912E7710c838347Ae178B4a");
    }

    #[test]
    fn missing_expiry_is_assumed_short() {
        let now = Utc::now();
        let t = token(None, now);
        assert!(t.is_fresh(now));
        assert!(!t.is_fresh(now + chrono::TimeDelta::minutes(6)));
        assert!(!token(Some("2016-07-11T22:14:10Z"), now).is_fresh(now));
    }

    #[test]
    fn debug_never_shows_the_token() {
        let t = token(Some("2030-01-01T00:00:00Z"), Utc::now());
        assert!(!format!("{t:?}").contains("ghs_"));
    }
}
