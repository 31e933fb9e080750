//! `--store URL`: where the hub keeps its state. Without it, the data dir's
//! `nextdeploy.db`. `postgres://user:password@host:port/db` is the store
//! several hubs share; `sqlite:///PATH` names another SQLite file, which
//! several hubs on one machine may share (WAL mode): a cluster for tests
//! and small setups. The password never leaves this module but to the
//! driver: `Debug` and errors show the URL with `****` for it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;

use crate::store::postgres::{url, PgStore};
use crate::store::{sqlite::SqliteStore, SharedStore};

/// A parsed `--store`.
#[derive(Clone, PartialEq, Eq)]
pub enum StoreUrl {
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL database (the URL as given, password included).
    Postgres(String),
}

impl std::fmt::Debug for StoreUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreUrl::Sqlite(p) => write!(f, "sqlite://{}", p.display()),
            StoreUrl::Postgres(u) => f.write_str(&url::redact(u)),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadStoreUrl(String);

impl std::str::FromStr for StoreUrl {
    type Err = BadStoreUrl;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if url::is_postgres(s) {
            return Ok(StoreUrl::Postgres(s.to_string()));
        }
        if let Some(path) = s.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err(BadStoreUrl(
                    "--store sqlite:// needs a file: sqlite:///var/lib/nextdeploy/nextdeploy.db"
                        .into(),
                ));
            }
            return Ok(StoreUrl::Sqlite(PathBuf::from(path)));
        }
        Err(BadStoreUrl(format!(
            "--store must be postgres://user@host:port/db or sqlite:///PATH, not {:?}",
            url::redact(s)
        )))
    }
}

impl StoreUrl {
    /// The data dir's own store.
    pub fn in_data_dir(dir: &Path) -> StoreUrl {
        StoreUrl::Sqlite(dir.join(super::STORE_FILE))
    }

    /// Open (creating and migrating) the store.
    /// Open the store (PostgreSQL's sync client on the blocking pool: it
    /// must not run on an async worker).
    pub async fn open(&self) -> anyhow::Result<SharedStore> {
        match self {
            StoreUrl::Sqlite(path) => {
                Ok(Arc::new(SqliteStore::open(path).with_context(|| {
                    format!("cannot open the store {}", path.display())
                })?))
            }
            StoreUrl::Postgres(u) => {
                let u = u.clone();
                let shown = url::redact(&u);
                let pg = tokio::task::spawn_blocking(move || PgStore::open(&u))
                    .await
                    .context("store task failed")??;
                tracing::info!(store = %shown, "store: PostgreSQL");
                Ok(Arc::new(pg))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sqlite_urls_and_refuses_the_rest() {
        assert_eq!(
            "sqlite:///tmp/x.db".parse::<StoreUrl>().unwrap(),
            StoreUrl::Sqlite("/tmp/x.db".into())
        );
        assert_eq!(
            "sqlite://rel/x.db".parse::<StoreUrl>().unwrap(),
            StoreUrl::Sqlite("rel/x.db".into())
        );
        assert!("sqlite://".parse::<StoreUrl>().is_err());
        assert!("/tmp/x.db".parse::<StoreUrl>().is_err());
        assert!("mysql://x".parse::<StoreUrl>().is_err());
        let pg: StoreUrl = "postgres://nd:hunter2@db:5432/nd".parse().unwrap();
        assert!(matches!(pg, StoreUrl::Postgres(_)));
        assert!(!format!("{pg:?}").contains("hunter2"));
        let bad = "mysql://nd:hunter2@db".parse::<StoreUrl>().unwrap_err();
        assert!(!bad.to_string().contains("hunter2"));
    }
}
