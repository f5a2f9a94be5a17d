//! Buildkite rate-limit bookkeeping (docs/buildkite.md#rate-limits).
//!
//! Every response carries `RateLimit-Remaining/-Limit/-Reset` for the organization and
//! `RateLimit-User-*` for the token's user; `Reset` is *seconds until the window resets*,
//! not an epoch. We remember the last answer per organization and per token, count our
//! own requests against it until the next answer, and before a request whose budget is
//! spent either wait (short resets) or refuse with the time to wait, so the queue can
//! delay the message instead of a worker sleeping for a minute.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use reqwest::header::HeaderMap;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use tokio::time::Instant;

use super::error::RateLimitScope;
use crate::domain::OrgSlug;

/// One budget as a response reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Budget {
    /// Requests left in the window.
    pub remaining: u64,
    /// The window's size, when sent.
    pub limit: Option<u64>,
    /// Time until the window resets.
    pub reset: Duration,
}

/// The budgets one response reported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct RateLimitHeaders {
    /// `RateLimit-*`: the organization's budget.
    pub organization: Option<Budget>,
    /// `RateLimit-User-*`: the token owner's budget.
    pub user: Option<Budget>,
}

impl RateLimitHeaders {
    /// Reads the headers; a budget without a parseable `Remaining` and `Reset` is absent.
    pub(crate) fn parse(headers: &HeaderMap) -> Self {
        Self {
            organization: budget(
                headers,
                "ratelimit-remaining",
                "ratelimit-limit",
                "ratelimit-reset",
            ),
            user: budget(
                headers,
                "ratelimit-user-remaining",
                "ratelimit-user-limit",
                "ratelimit-user-reset",
            ),
        }
    }

    /// The budget of one scope.
    pub(crate) fn get(&self, scope: RateLimitScope) -> Option<Budget> {
        match scope {
            RateLimitScope::Organization => self.organization,
            RateLimitScope::User => self.user,
        }
    }
}

fn budget(headers: &HeaderMap, remaining: &str, limit: &str, reset: &str) -> Option<Budget> {
    let number = |name: &str| headers.get(name)?.to_str().ok()?.trim().parse::<u64>().ok();
    Some(Budget {
        remaining: number(remaining)?,
        limit: number(limit),
        reset: Duration::from_secs(number(reset)?),
    })
}

/// A token, identified without keeping it: the first 16 bytes of its SHA-256.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct TokenFingerprint([u8; 16]);

impl TokenFingerprint {
    pub(crate) fn of(token: &SecretString) -> Self {
        let digest = Sha256::digest(token.expose_secret().as_bytes());
        let mut short = [0u8; 16];
        short.copy_from_slice(&digest[..16]);
        Self(short)
    }
}

/// Whose budget.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum BudgetKey {
    /// An organization's.
    Org(OrgSlug),
    /// A token user's.
    User(TokenFingerprint),
}

impl BudgetKey {
    pub(crate) fn scope(&self) -> RateLimitScope {
        match self {
            Self::Org(_) => RateLimitScope::Organization,
            Self::User(_) => RateLimitScope::User,
        }
    }
}

/// What to do before sending a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Send now.
    Go,
    /// Sleep this long (a short reset), then ask again.
    Wait {
        /// Time until the reset.
        wait: Duration,
        /// The spent budget.
        scope: RateLimitScope,
    },
    /// Do not send: the budget resets too late to wait here.
    Refuse {
        /// Time until the reset.
        retry_after: Duration,
        /// The spent budget.
        scope: RateLimitScope,
    },
}

#[derive(Debug, Clone, Copy)]
struct Window {
    remaining: u64,
    reset_at: Instant,
}

/// Per-organization and per-token budgets, shared by every request of a client.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    windows: Mutex<HashMap<BudgetKey, Window>>,
    max_wait: Duration,
}

impl RateLimiter {
    /// A limiter that waits for resets up to `max_wait` and refuses beyond.
    pub(crate) fn new(max_wait: Duration) -> Self {
        Self { windows: Mutex::new(HashMap::new()), max_wait }
    }

    /// Decides whether a request charged to `keys` may go now, and if so reserves one
    /// request in each known budget (concurrent workers must not all spend the last one).
    pub(crate) fn admit(&self, keys: &[BudgetKey], now: Instant) -> Admission {
        let mut windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        let mut longest: Option<(Duration, RateLimitScope)> = None;
        for key in keys {
            let Some(window) = windows.get(key).copied() else { continue };
            if window.reset_at <= now {
                windows.remove(key);
            } else if window.remaining == 0 {
                let wait = window.reset_at - now;
                if longest.is_none_or(|(w, _)| wait > w) {
                    longest = Some((wait, key.scope()));
                }
            }
        }
        match longest {
            // Whole seconds, like Buildkite's `Reset`: the queue delays by this much.
            Some((wait, scope)) if wait > self.max_wait => {
                let whole = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                Admission::Refuse { retry_after: Duration::from_secs(whole), scope }
            }
            Some((wait, scope)) => Admission::Wait { wait, scope },
            None => {
                for key in keys {
                    if let Some(window) = windows.get_mut(key) {
                        window.remaining = window.remaining.saturating_sub(1);
                    }
                }
                Admission::Go
            }
        }
    }

    /// Records the budget a response reported.
    pub(crate) fn observe(&self, key: BudgetKey, budget: Budget, now: Instant) {
        let window = Window { remaining: budget.remaining, reset_at: now + budget.reset };
        self.windows.lock().unwrap_or_else(PoisonError::into_inner).insert(key, window);
    }

    /// Records a 429: nothing left until `retry_after` has passed.
    pub(crate) fn exhaust(&self, key: BudgetKey, retry_after: Duration, now: Instant) {
        let window = Window { remaining: 0, reset_at: now + retry_after };
        self.windows.lock().unwrap_or_else(PoisonError::into_inner).insert(key, window);
    }
}

#[cfg(test)]
mod tests {
    use reqwest::header::{HeaderName, HeaderValue};

    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            let name = HeaderName::from_bytes(name.as_bytes()).expect("name");
            map.insert(name, HeaderValue::from_str(value).expect("value"));
        }
        map
    }

    fn org() -> BudgetKey {
        BudgetKey::Org(OrgSlug::parse("acme").expect("slug"))
    }

    #[test]
    fn parses_both_budgets_with_reset_as_seconds() {
        let parsed = RateLimitHeaders::parse(&headers(&[
            ("RateLimit-Scope", "rest"),
            ("RateLimit-Remaining", "17"),
            ("RateLimit-Limit", "200"),
            ("RateLimit-Reset", "23"),
            ("RateLimit-User-Remaining", "3"),
            ("RateLimit-User-Reset", "41"),
        ]));
        assert_eq!(
            parsed.organization,
            Some(Budget { remaining: 17, limit: Some(200), reset: Duration::from_secs(23) })
        );
        assert_eq!(
            parsed.user,
            Some(Budget { remaining: 3, limit: None, reset: Duration::from_secs(41) })
        );
        let garbled = RateLimitHeaders::parse(&headers(&[
            ("RateLimit-Remaining", "lots"),
            ("RateLimit-Reset", "5"),
        ]));
        assert_eq!(garbled, RateLimitHeaders::default());
    }

    #[test]
    fn a_spent_budget_waits_when_short_and_refuses_when_long() {
        let limiter = RateLimiter::new(Duration::from_secs(10));
        let now = Instant::now();
        assert_eq!(limiter.admit(&[org()], now), Admission::Go);
        let spent =
            |reset| Budget { remaining: 0, limit: Some(200), reset: Duration::from_secs(reset) };
        limiter.observe(org(), spent(4), now);
        assert_eq!(
            limiter.admit(&[org()], now),
            Admission::Wait { wait: Duration::from_secs(4), scope: RateLimitScope::Organization }
        );
        limiter.observe(org(), spent(50), now);
        assert_eq!(
            limiter.admit(&[org()], now),
            Admission::Refuse {
                retry_after: Duration::from_secs(50),
                scope: RateLimitScope::Organization
            }
        );
        // Once the window has passed, requests go again.
        assert_eq!(limiter.admit(&[org()], now + Duration::from_secs(51)), Admission::Go);
    }

    #[test]
    fn requests_in_flight_spend_the_budget_before_the_answer_arrives() {
        let limiter = RateLimiter::new(Duration::from_secs(1));
        let now = Instant::now();
        let user = BudgetKey::User(TokenFingerprint::of(&SecretString::from("t0ken-value")));
        limiter.observe(
            user.clone(),
            Budget { remaining: 2, limit: None, reset: Duration::from_secs(30) },
            now,
        );
        assert_eq!(limiter.admit(&[org(), user.clone()], now), Admission::Go);
        assert_eq!(limiter.admit(&[org(), user.clone()], now), Admission::Go);
        assert_eq!(
            limiter.admit(&[org(), user], now),
            Admission::Refuse { retry_after: Duration::from_secs(30), scope: RateLimitScope::User }
        );
        // The organization's budget was never reported, so it did not block.
        assert_eq!(limiter.admit(&[org()], now), Admission::Go);
    }

    #[test]
    fn fingerprints_differ_per_token() {
        let a = TokenFingerprint::of(&SecretString::from("token-a"));
        let b = TokenFingerprint::of(&SecretString::from("token-b"));
        assert_ne!(a, b);
        assert_eq!(a, TokenFingerprint::of(&SecretString::from("token-a")));
    }
}
