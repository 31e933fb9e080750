//! The store suite ([`crate::store::suite`]) on in-memory SQLite stores.
use super::*;

#[test]
fn the_store_suite_passes_on_sqlite() {
    crate::store::suite::run(|| SqliteStore::in_memory().unwrap());
}
