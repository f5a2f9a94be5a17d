//! Durations as the config files write them: whole seconds under `*_secs` keys and whole
//! milliseconds under `*_ms` keys (the key names are a contract, see `config/default.toml`),
//! read straight into `Duration` so no caller converts units.
//!
//! Used with `#[serde(deserialize_with = "…")]`; a key that is not a number fails in
//! figment's extraction with the key's name, as every other type error does.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// `*_secs = N`.
pub(super) fn secs<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    u64::deserialize(d).map(Duration::from_secs)
}

/// `*_ms = N`.
pub(super) fn millis<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    u64::deserialize(d).map(Duration::from_millis)
}

/// `*_secs = N` where `0` turns the feature off: `None`.
pub(super) fn secs_or_off<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    u64::deserialize(d).map(|n| (n > 0).then(|| Duration::from_secs(n)))
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Deserialize)]
    struct Keys {
        #[serde(deserialize_with = "secs")]
        a_secs: Duration,
        #[serde(deserialize_with = "millis")]
        b_ms: Duration,
        #[serde(deserialize_with = "secs_or_off")]
        off_secs: Option<Duration>,
        #[serde(deserialize_with = "secs_or_off")]
        on_secs: Option<Duration>,
    }

    #[test]
    fn units_follow_the_key_suffix_and_zero_means_off() {
        let k: Keys =
            serde_json::from_str(r#"{"a_secs":3,"b_ms":250,"off_secs":0,"on_secs":60}"#).unwrap();
        assert_eq!(k.a_secs, Duration::from_secs(3));
        assert_eq!(k.b_ms, Duration::from_millis(250));
        assert_eq!(k.off_secs, None);
        assert_eq!(k.on_secs, Some(Duration::from_secs(60)));
    }
}
