//! Which store the hub opens: SQLite in the data dir (the default), or the
//! PostgreSQL database `--store` names, for several hubs on one store. The
//! URL is logged and told in errors without its password.

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context};

use crate::store::postgres::{url, PgStore};
use crate::store::sqlite::SqliteStore;
use crate::store::SharedStore;

/// Open the store: `store` (a PostgreSQL URL) or `nextdeploy.db` in `dir`.
pub(super) async fn open(store: Option<&str>, dir: &Path) -> anyhow::Result<SharedStore> {
    match store {
        Some(u) if url::is_postgres(u) => {
            let u = u.to_string();
            let shown = url::redact(&u);
            // The sync client connects: off the async workers.
            let pg = tokio::task::spawn_blocking(move || PgStore::open(&u))
                .await
                .context("store task failed")??;
            tracing::info!(store = %shown, "store: PostgreSQL");
            Ok(Arc::new(pg))
        }
        Some(other) => bail!(
            "--store {} is not a PostgreSQL URL (postgres://user@host:port/db); \
             without --store the hub keeps its store in --data-dir",
            url::redact(other)
        ),
        None => {
            let db = dir.join(super::STORE_FILE);
            let s = SqliteStore::open(&db)
                .with_context(|| format!("cannot open the store {}", db.display()))?;
            Ok(Arc::new(s))
        }
    }
}
