//! `--store URL`: where the hub keeps its state. Without it, the data dir's
//! `nextdeploy.db`. `sqlite:///PATH` names another SQLite file, which
//! several hubs on one machine may share (WAL mode): a cluster for tests
//! and small setups. (`postgres://` is the cluster store proper.)

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;

use crate::store::{sqlite::SqliteStore, SharedStore};

/// A parsed `--store`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    /// A SQLite file.
    Sqlite(PathBuf),
}

/// A `--store` that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadStoreUrl(String);

impl std::str::FromStr for StoreUrl {
    type Err = BadStoreUrl;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
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
            "--store must be sqlite:///PATH, not {s:?}"
        )))
    }
}

impl StoreUrl {
    /// The data dir's own store.
    pub fn in_data_dir(dir: &Path) -> StoreUrl {
        StoreUrl::Sqlite(dir.join(super::STORE_FILE))
    }

    /// Open (creating and migrating) the store.
    pub fn open(&self) -> anyhow::Result<SharedStore> {
        match self {
            StoreUrl::Sqlite(path) => {
                Ok(Arc::new(SqliteStore::open(path).with_context(|| {
                    format!("cannot open the store {}", path.display())
                })?))
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
    }
}
