//! Several hubs on one store (issue 23): the store and cluster secret the
//! hubs of one test share. Set-up failures panic: these are tests' helpers.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::hub::{Hub, HubOpts};
use crate::paths::TempDir;

/// A store (file or database) and a secret, shared by the hubs of one test.
pub struct Shared {
    /// The test's directory.
    pub dir: TempDir,
    /// The `--store` URL.
    pub store: String,
    /// The secret file.
    pub secret: PathBuf,
    /// The PostgreSQL server of a test on PostgreSQL (stopped when dropped).
    pub pg: Option<crate::postgres::Postgres>,
}

impl Default for Shared {
    fn default() -> Shared {
        Shared::new()
    }
}

impl Shared {
    /// On a SQLite file.
    pub fn new() -> Shared {
        let dir = TempDir::new("cluster").unwrap();
        let store = format!("sqlite://{}", dir.path().join("cluster.db").display());
        Self::with(dir, store, None)
    }

    /// The hubs share a PostgreSQL database (a server of the test's own).
    pub fn on_postgres() -> Shared {
        let pg = crate::postgres::Postgres::start();
        let store = pg.create_db();
        Self::with(TempDir::new("cluster").unwrap(), store, Some(pg))
    }

    fn with(dir: TempDir, store: String, pg: Option<crate::postgres::Postgres>) -> Shared {
        let secret = write_secret(
            dir.path(),
            "cluster.secret",
            "9f2c1be47a0d8e6c5b3a29f10e7d4c6b8a5f3e2d",
            0o600,
        );
        Shared {
            dir,
            store,
            secret,
            pg,
        }
    }

    /// The flags of a hub of this cluster, with `secret`.
    pub fn args(&self, secret: &Path) -> HubOpts {
        HubOpts::args([
            "--store".to_string(),
            self.store.clone(),
            "--cluster-secret-file".to_string(),
            secret.display().to_string(),
        ])
    }

    /// The first hub (it makes the initial admin token).
    pub fn first(&self) -> Hub {
        Hub::start(self.args(&self.secret)).unwrap()
    }

    /// Another hub of the cluster.
    pub fn join(&self, first: &Hub) -> Hub {
        Hub::start_joining(self.args(&self.secret), &first.admin_token).unwrap()
    }
}

/// Write `text` to `dir/name` with `mode`.
pub fn write_secret(dir: &Path, name: &str, text: &str, mode: u32) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("{text}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}

/// The id `hub` goes by in the cluster (from the `Cluster:` line of its
/// latest start: a hub takes a new id at each).
pub fn hub_id(hub: &Hub) -> String {
    let log = hub.log_text();
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains("] Cluster: "))
        .unwrap_or_else(|| panic!("no Cluster line\n{}", hub.log_tail()));
    line.rsplit("this hub: ")
        .next()
        .unwrap()
        .trim_end_matches(')')
        .to_string()
}
