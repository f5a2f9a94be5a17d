//! The store's contract, run against both SQLite and PostgreSQL.

use kitefix::domain::IntegrationId;
use kitefix::store::{BuildState, Store, Transition};

use crate::helpers::{StoreKind, failed_event, test_store};

async fn records_each_key_once(store: Store) {
    let e = failed_event(1);
    assert!(!store.build_known(&e.dedupe_key()).await.unwrap());

    let integration = IntegrationId::parse("0190c0de-4444-7000-8000-000000000001").unwrap();
    assert!(store.record_queued(&e, Some(&integration)).await.unwrap());
    assert!(!store.record_queued(&e, None).await.unwrap(), "the second insert must be a no-op");

    assert!(store.build_known(&e.dedupe_key()).await.unwrap());
    let record = store.build(&e.dedupe_key()).await.unwrap().unwrap();
    assert_eq!(record.event, e);
    assert_eq!(record.state, BuildState::Queued);
    assert_eq!(record.integration_id, Some(integration));
    assert_eq!(record.attempts, 0);
}

async fn tracks_attempts_and_final_states(store: Store) {
    let e = failed_event(2);
    let key = e.dedupe_key();
    // The worker may see a build the receiver could not record.
    assert_eq!(store.record_received(&e, None).await.unwrap(), BuildState::Queued);
    assert_eq!(store.record_received(&e, None).await.unwrap(), BuildState::Received);
    assert_eq!(store.build(&key).await.unwrap().unwrap().attempts, 2);

    let failed = Transition::Failed { reason: "token revoked".into() };
    store.record_outcome(&key, &failed).await.unwrap();
    // A redelivery after the final state changes nothing.
    assert_eq!(store.record_received(&e, None).await.unwrap(), BuildState::Failed);
    let record = store.build(&key).await.unwrap().unwrap();
    assert_eq!(record.state, BuildState::Failed);
    assert_eq!(record.reason.as_deref(), Some("token revoked"));
    assert_eq!(record.attempts, 2);
}

async fn lists_recent_builds_newest_first(store: Store) {
    for n in 10..15 {
        store.record_queued(&failed_event(n), None).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    }
    let recent = store.recent_builds(3).await.unwrap();
    let numbers: Vec<u64> = recent.iter().map(|r| r.event.build_number.get()).collect();
    assert_eq!(numbers, [14, 13, 12]);
}

macro_rules! store_tests {
    ($($name:ident),*) => {
        mod sqlite {
            use super::*;
            $(
                #[tokio::test]
                async fn $name() {
                    let (store, _dir) = test_store(StoreKind::Sqlite).await.unwrap();
                    super::$name(store).await;
                }
            )*
        }
        mod postgres {
            use super::*;
            $(
                #[tokio::test]
                async fn $name() {
                    let Some((store, _dir)) = test_store(StoreKind::Postgres).await else { return };
                    super::$name(store).await;
                }
            )*
        }
    };
}

store_tests!(
    records_each_key_once,
    tracks_attempts_and_final_states,
    lists_recent_builds_newest_first
);
