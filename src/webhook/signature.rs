//! Proving a webhook came from Buildkite.
//!
//! Buildkite sends exactly one of two headers (docs: "Webhook token" and "Webhook
//! signature", <https://buildkite.com/docs/apis/webhooks/pipelines>):
//! - `X-Buildkite-Token: <token>`: the shared token in clear; compared in constant time.
//! - `X-Buildkite-Signature: timestamp=<unix secs>,signature=<hex>`: HMAC-SHA256 keyed by
//!   the token over `"<timestamp>.<raw body>"`. Checked on the raw bytes before any JSON
//!   parsing, then the timestamp must lie within the replay window.

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use subtle::ConstantTimeEq;

pub const SIGNATURE_HEADER: &str = "X-Buildkite-Signature";
pub const TOKEN_HEADER: &str = "X-Buildkite-Token";

/// A parsed `X-Buildkite-Signature` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureHeader {
    timestamp: i64,
    mac: [u8; 32],
}

/// What the request presented to prove its origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    Signature(SignatureHeader),
    Token(String),
}

/// Why a webhook was refused. Every variant is a 401; the message tells the operator
/// which part of their Buildkite webhook set-up to check, and never echoes a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no webhook token is configured, so webhooks are refused (set webhook.token)")]
    NotConfigured,
    #[error("missing X-Buildkite-Signature or X-Buildkite-Token header")]
    MissingCredential,
    #[error("malformed X-Buildkite-Signature header: {0}")]
    MalformedSignature(&'static str),
    #[error("X-Buildkite-Signature does not match the body")]
    BadSignature,
    #[error(
        "X-Buildkite-Signature timestamp is {skew_secs} s away from now (allowed: {max_secs} s)"
    )]
    StaleTimestamp { skew_secs: u64, max_secs: u64 },
    #[error("X-Buildkite-Token does not match")]
    BadToken,
}

impl SignatureHeader {
    /// Parses `timestamp=T,signature=HEX`. Like go-buildkite's `ValidatePayload`, exactly
    /// these two parts are accepted, each split on the first `=`.
    pub fn parse(value: &str) -> Result<Self, AuthError> {
        let mut timestamp = None;
        let mut mac = None;
        let mut parts = 0;
        for part in value.split(',') {
            parts += 1;
            let (key, val) = part
                .trim()
                .split_once('=')
                .ok_or(AuthError::MalformedSignature("expected key=value parts"))?;
            match key {
                "timestamp" => {
                    let t = val.parse::<i64>().map_err(|_| {
                        AuthError::MalformedSignature("timestamp is not an integer")
                    })?;
                    timestamp = Some(t);
                }
                "signature" => {
                    let mut bytes = [0u8; 32];
                    hex::decode_to_slice(val, &mut bytes).map_err(|_| {
                        AuthError::MalformedSignature("signature is not 64 hex characters")
                    })?;
                    mac = Some(bytes);
                }
                _ => return Err(AuthError::MalformedSignature("unknown part")),
            }
        }
        if parts != 2 {
            return Err(AuthError::MalformedSignature("expected timestamp=…,signature=…"));
        }
        match (timestamp, mac) {
            (Some(timestamp), Some(mac)) => Ok(Self { timestamp, mac }),
            _ => Err(AuthError::MalformedSignature("expected timestamp=…,signature=…")),
        }
    }

    pub fn timestamp(&self) -> i64 {
        self.timestamp
    }
}

impl Credential {
    /// Picks the credential from the two header values. The signature wins when both
    /// are present, as in go-buildkite: it is the stronger proof.
    pub fn from_headers(signature: Option<&str>, token: Option<&str>) -> Result<Self, AuthError> {
        match (signature, token) {
            (Some(sig), _) => SignatureHeader::parse(sig).map(Credential::Signature),
            (None, Some(token)) => Ok(Credential::Token(token.to_owned())),
            (None, None) => Err(AuthError::MissingCredential),
        }
    }
}

/// A body whose credential checked out. [`verify`] is the only way to make one, and
/// `event::parse` takes nothing else, so an unverified body cannot be parsed ("verify
/// before parsing", `docs/buildkite.md#webhook-signatures`, enforced by the type).
#[derive(Debug, Clone, Copy)]
pub struct Verified<'a>(&'a [u8]);

impl<'a> Verified<'a> {
    /// The verified bytes, exactly as received.
    pub fn bytes(self) -> &'a [u8] {
        self.0
    }
}

/// Checks `credential` for `body` against the webhook `token`, at time `now` (unix
/// seconds), accepting signature timestamps up to `max_skew_secs` away in either
/// direction (Buildkite suggests a window of about 5 minutes).
pub fn verify<'a>(
    token: &SecretString,
    credential: &Credential,
    body: &'a [u8],
    now: i64,
    max_skew_secs: u64,
) -> Result<Verified<'a>, AuthError> {
    match credential {
        Credential::Token(presented) => {
            let expected = token.expose_secret().as_bytes();
            // `ct_eq` on slices of different lengths returns false without comparing,
            // which leaks only the length, as every constant-time compare does.
            if bool::from(expected.ct_eq(presented.as_bytes())) {
                Ok(Verified(body))
            } else {
                Err(AuthError::BadToken)
            }
        }
        Credential::Signature(sig) => {
            let mut mac = Hmac::<Sha256>::new_from_slice(token.expose_secret().as_bytes())
                .expect("HMAC accepts keys of any length");
            mac.update(sig.timestamp.to_string().as_bytes());
            mac.update(b".");
            mac.update(body);
            // `verify_slice` compares in constant time.
            mac.verify_slice(&sig.mac).map_err(|_| AuthError::BadSignature)?;
            // The window is checked after the MAC so a forged timestamp cannot be probed.
            let skew = now.abs_diff(sig.timestamp);
            if skew > max_skew_secs {
                return Err(AuthError::StaleTimestamp { skew_secs: skew, max_secs: max_skew_secs });
            }
            Ok(Verified(body))
        }
    }
}

/// Signs `body` the way Buildkite does; for tests, benchmarks and the README's curl example.
pub fn sign(token: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(token.as_bytes()).expect("HMAC accepts keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("timestamp={timestamp},signature={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    // Known-answer vector from buildkite/go-buildkite `webhook_test.go`
    // (`TestValidatePayload`), see docs/buildkite.md#webhook-signatures.
    const KAT_TOKEN: &str = "29b1ff5779c76bd48ba6705eb99ff970";
    const KAT_HEADER: &str = "timestamp=1642080837,signature=582d496ac2d869dd97a3101c4cda346288c49a742592daf582ec64c86449f79c";
    const KAT_BODY: &[u8] = include_bytes!("../../tests/fixtures/buildkite/ping-known-answer.json");
    const KAT_TIME: i64 = 1_642_080_837;

    fn secret(s: &str) -> SecretString {
        SecretString::from(s.to_owned())
    }

    /// `verify`'s answer, without the proof (which has no `PartialEq`: nothing compares
    /// proofs).
    fn check(header: &str, body: &[u8], now: i64) -> Result<(), AuthError> {
        let cred = Credential::from_headers(Some(header), None)?;
        verify(&secret(KAT_TOKEN), &cred, body, now, 300).map(drop)
    }

    #[test]
    fn the_proof_holds_the_very_bytes_that_were_verified() {
        let cred = Credential::from_headers(Some(KAT_HEADER), None).unwrap();
        let verified = verify(&secret(KAT_TOKEN), &cred, KAT_BODY, KAT_TIME, 300).unwrap();
        assert!(std::ptr::eq(verified.bytes(), KAT_BODY));
    }

    #[test]
    fn known_answer_vector_verifies() {
        assert_eq!(KAT_BODY.len(), 756);
        assert_eq!(check(KAT_HEADER, KAT_BODY, KAT_TIME), Ok(()));
        assert_eq!(sign(KAT_TOKEN, KAT_TIME, KAT_BODY), KAT_HEADER);
    }

    #[test]
    fn tampered_body_is_refused() {
        let mut body = KAT_BODY.to_vec();
        body[10] ^= 1;
        assert_eq!(check(KAT_HEADER, &body, KAT_TIME), Err(AuthError::BadSignature));
    }

    #[test]
    fn tampered_timestamp_is_refused() {
        let header = KAT_HEADER.replace("1642080837", "1642080838");
        assert_eq!(check(&header, KAT_BODY, KAT_TIME), Err(AuthError::BadSignature));
    }

    #[test]
    fn replay_outside_the_window_is_refused_both_ways() {
        assert_eq!(check(KAT_HEADER, KAT_BODY, KAT_TIME + 300), Ok(()));
        assert_eq!(
            check(KAT_HEADER, KAT_BODY, KAT_TIME + 301),
            Err(AuthError::StaleTimestamp { skew_secs: 301, max_secs: 300 })
        );
        assert!(matches!(
            check(KAT_HEADER, KAT_BODY, KAT_TIME - 301),
            Err(AuthError::StaleTimestamp { .. })
        ));
    }

    #[test]
    fn wrong_key_is_refused() {
        let cred = Credential::from_headers(Some(KAT_HEADER), None).unwrap();
        let err = verify(&secret("another-token-entirely"), &cred, KAT_BODY, KAT_TIME, 300);
        assert_eq!(err.map(drop), Err(AuthError::BadSignature));
    }

    #[test]
    fn malformed_headers_are_refused_with_a_reason() {
        for header in [
            "invalid",
            "timestamp=1642080837,signature=yo",
            "timestamp=soon,signature=582d496ac2d869dd97a3101c4cda346288c49a742592daf582ec64c86449f79c",
            "timestamp=1642080837",
            "timestamp=1,signature=00,extra=1",
            "",
        ] {
            assert!(
                matches!(SignatureHeader::parse(header), Err(AuthError::MalformedSignature(_))),
                "{header:?}"
            );
        }
    }

    #[test]
    fn token_mode_compares_the_whole_token() {
        let token = secret(KAT_TOKEN);
        let ok = Credential::from_headers(None, Some(KAT_TOKEN)).unwrap();
        assert_eq!(verify(&token, &ok, b"{}", 0, 300).map(drop), Ok(()));
        for wrong in ["invalid-token", &KAT_TOKEN[..31], &format!("{KAT_TOKEN}0"), ""] {
            let cred = Credential::from_headers(None, Some(wrong)).unwrap();
            assert_eq!(
                verify(&token, &cred, b"{}", 0, 300).map(drop),
                Err(AuthError::BadToken),
                "{wrong}"
            );
        }
    }

    #[test]
    fn no_header_is_refused() {
        assert_eq!(Credential::from_headers(None, None), Err(AuthError::MissingCredential));
    }

    proptest! {
        #[test]
        fn any_body_signed_with_the_token_verifies(body in proptest::collection::vec(any::<u8>(), 0..2048), ts in 0i64..4_000_000_000) {
            let header = sign("prop-token-123", ts, &body);
            let cred = Credential::from_headers(Some(&header), None).unwrap();
            prop_assert_eq!(verify(&secret("prop-token-123"), &cred, &body, ts, 300).map(drop), Ok(()));
        }

        #[test]
        fn any_bit_flip_in_the_body_is_refused(body in proptest::collection::vec(any::<u8>(), 1..512), at in any::<prop::sample::Index>(), bit in 0u8..8) {
            let header = sign("prop-token-123", 1000, &body);
            let mut tampered = body.clone();
            let i = at.index(tampered.len());
            tampered[i] ^= 1 << bit;
            let cred = Credential::from_headers(Some(&header), None).unwrap();
            prop_assert_eq!(verify(&secret("prop-token-123"), &cred, &tampered, 1000, 300).map(drop), Err(AuthError::BadSignature));
        }

        #[test]
        fn arbitrary_header_values_never_panic(value in ".{0,200}") {
            let _ = SignatureHeader::parse(&value);
        }
    }
}
