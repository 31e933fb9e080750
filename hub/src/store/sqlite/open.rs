//! Opening the store: the main connection (settings, migrations) and the
//! health history's own connection to the same database.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::Connection;
use tokio::sync::broadcast;

use super::{files, schema, HealthDb, SqliteStore, REVOCATION_QUEUE};
use crate::store::StoreResult;

impl SqliteStore {
    /// Open (creating if needed) the database at `path` and migrate it.
    pub fn open(path: &Path) -> StoreResult<Self> {
        files::create_private(path)?;
        let conn = Connection::open(path)?;
        let mut store = Self::init(conn, || Ok(Connection::open(path)?))?;
        let read = Connection::open(path)?;
        read.busy_timeout(crate::limits::STORE_BUSY_TIMEOUT)?;
        store.health_read = Some(Mutex::new(read));
        // WAL mode made the -wal and -shm files (with the database's mode,
        // as SQLite does); older stores' may predate that.
        files::make_private(path)?;
        Ok(store)
    }

    /// An in-memory store, for unit tests.
    pub fn in_memory() -> StoreResult<Self> {
        // Two in-memory connections are two databases: the health one gets
        // the schema too, and only its history tables are used.
        let open = || -> StoreResult<Connection> {
            let c = Connection::open_in_memory()?;
            Self::migrate(&c)?;
            Ok(c)
        };
        Self::init(Connection::open_in_memory()?, open)
    }

    /// Migrate `conn` and open the health connection with `open_health`.
    fn init(
        conn: Connection,
        open_health: impl FnOnce() -> StoreResult<Connection>,
    ) -> StoreResult<Self> {
        Self::migrate(&conn)?;
        let mut health = open_health()?;
        health.busy_timeout(crate::limits::STORE_BUSY_TIMEOUT)?;
        health.pragma_update(None, "synchronous", "NORMAL")?;
        let converted = crate::store::health::compact::convert_old(&mut health)?;
        if converted > 0 {
            tracing::info!(
                points = converted,
                "converted the health history to the packed layout"
            );
        }
        Ok(SqliteStore {
            conn: Mutex::new(conn),
            health: Mutex::new(HealthDb {
                conn: health,
                names: Default::default(),
            }),
            health_read: None,
            history_cache: Default::default(),
            labels: Default::default(),
            revoked: broadcast::channel(REVOCATION_QUEUE).0,
        })
    }

    /// Settings of the main connection and the migrations.
    fn migrate(conn: &Connection) -> StoreResult<()> {
        conn.busy_timeout(crate::limits::STORE_BUSY_TIMEOUT)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        for (i, sql) in schema::MIGRATIONS
            .iter()
            .enumerate()
            .skip(version.max(0) as usize)
        {
            // Several hubs may open one file at once (a cluster on one
            // machine): take the write lock first, then look again.
            let tx = rusqlite::Transaction::new_unchecked(
                conn,
                rusqlite::TransactionBehavior::Immediate,
            )?;
            let now: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
            if now > i as i64 {
                continue;
            }
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)?;
            tx.commit()?;
        }
        Ok(())
    }
}
