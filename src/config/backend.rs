//! The queue and store backends, resolved once from `queue.kind` and `store.url`, so the
//! code that connects matches on a variant instead of sniffing a URL prefix, and each
//! variant carries only the settings that backend reads (svix's `QueueBackend` in its
//! `cfg.rs` is the model).

use std::path::PathBuf;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

/// Which queue carries builds from the receiver to the workers (`queue.kind`).
#[derive(Debug, Clone)]
pub enum QueueBackend {
    /// A table in the store's own database.
    Embedded {
        /// A leased message becomes visible to other workers again after this long
        /// (`queue.visibility_timeout_secs`).
        visibility_timeout: Duration,
    },
    /// A RabbitMQ broker.
    RabbitMq {
        url: SecretString,
        /// The first part of every exchange and queue name.
        prefix: String,
        /// Unacknowledged messages one worker holds at once.
        prefetch: u16,
        /// How long a publish waits for the broker's confirm (`queue.publish_timeout_ms`).
        publish_timeout: Duration,
    },
}

/// Where the store lives (`store.url`).
#[derive(Debug, Clone)]
pub enum StoreBackend {
    /// `sqlite:…`: the URL as given (sqlx reads its options from it) and the database
    /// file it names, `None` for an in-memory database.
    Sqlite { url: String, file: Option<PathBuf> },
    /// `postgres://…` or `postgresql://…`; it may hold a password.
    Postgres(SecretString),
}

/// `store.url` names neither backend.
#[derive(Debug, thiserror::Error)]
#[error("must start with sqlite:// or postgres://")]
pub struct UnknownStoreUrl;

impl StoreBackend {
    /// Tells the backend from the URL's scheme; the URL itself is checked by sqlx on
    /// connecting. The error never repeats the URL (it may hold a password).
    pub fn parse(url: SecretString) -> Result<Self, UnknownStoreUrl> {
        let text = url.expose_secret();
        if text.starts_with("sqlite:") {
            let file = sqlite_file(text);
            return Ok(StoreBackend::Sqlite { url: text.to_owned(), file });
        }
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            return Ok(StoreBackend::Postgres(url));
        }
        Err(UnknownStoreUrl)
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, StoreBackend::Postgres(_))
    }
}

/// The database file of a `sqlite:` URL (`sqlite://path?options` or `sqlite:path`);
/// `None` for an in-memory database (https://www.sqlite.org/inmemorydb.html).
fn sqlite_file(url: &str) -> Option<PathBuf> {
    let path = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let path = path.split('?').next().unwrap_or("");
    if path.is_empty() || path.contains(":memory:") || url.contains("mode=memory") {
        return None;
    }
    Some(PathBuf::from(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str) -> Result<StoreBackend, UnknownStoreUrl> {
        StoreBackend::parse(SecretString::from(url.to_owned()))
    }

    fn file(url: &str) -> Option<PathBuf> {
        match parse(url).unwrap() {
            StoreBackend::Sqlite { file, .. } => file,
            StoreBackend::Postgres(_) => panic!("{url} is SQLite"),
        }
    }

    #[test]
    fn sqlite_urls_name_their_file_unless_in_memory() {
        assert_eq!(file("sqlite://kitefix.db"), Some(PathBuf::from("kitefix.db")));
        assert_eq!(file("sqlite:/var/lib/k.db?mode=rwc"), Some(PathBuf::from("/var/lib/k.db")));
        assert_eq!(file("sqlite::memory:"), None);
        assert_eq!(file("sqlite://k.db?mode=memory"), None);
    }

    #[test]
    fn postgres_is_told_by_its_scheme_and_anything_else_is_refused() {
        assert!(parse("postgres://u@db/k").unwrap().is_postgres());
        assert!(parse("postgresql://u@db/k").unwrap().is_postgres());
        assert!(parse("mysql://u@db/k").is_err());
    }
}
