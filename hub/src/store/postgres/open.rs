//! Opening a PostgreSQL store: read the URL ([`Dial`]), connect, migrate,
//! start the revocation listener.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast;

use super::dial::Dial;
use super::url::redact;
use super::{notify, schema, PgConn, PgStore};
use crate::limits;
use crate::store::backend::LabelCache;
use crate::store::sql::{p, tx, Db};
use crate::store::sqlite::REVOCATION_QUEUE;
use crate::store::{StoreError, StoreResult};

/// Held while migrating, so hubs starting together apply each migration once.
const MIGRATION_LOCK: i64 = 0x6e65_7874_6465_706c; // "nextdepl"

impl PgStore {
    /// Connect to the database at `url` (`postgres://user:password@host:port/db`)
    /// and migrate it. Errors name the URL without its password.
    pub fn open(url: &str) -> StoreResult<Self> {
        let shown = redact(url);
        let dial = Dial::parse(url)?;
        if dial.exposed() {
            tracing::warn!(store = %shown, "the store is reached over the network without TLS: add sslmode=require (and sslrootcert=CA.pem) to its URL");
        }
        let connect = || {
            PgConn::connect(&dial).map_err(|e| {
                let why = super::db::chain(&e);
                StoreError::Open(format!("cannot connect to the store at {shown}: {why}"))
            })
        };
        let mut main = connect()?;
        migrate(&mut main)?;
        let reads = (0..limits::PG_READ_CONNECTIONS.max(1))
            .map(|_| connect().map(Mutex::new))
            .collect::<StoreResult<Vec<_>>>()?;
        let health = connect()?;
        let health_read = connect()?;
        let revoked = broadcast::channel(REVOCATION_QUEUE).0;
        let stop = Arc::new(AtomicBool::new(false));
        notify::listen(dial.clone(), shown, revoked.clone(), stop.clone())?;
        Ok(PgStore {
            main: Mutex::new(main),
            reads,
            next_read: Default::default(),
            health: Mutex::new((health, Default::default())),
            health_read: Mutex::new(health_read),
            history_cache: Default::default(),
            labels: LabelCache::new(Some(limits::PG_LABEL_INDEX_TTL)),
            revoked,
            stop,
        })
    }
}

/// Apply the migrations not recorded yet, in one transaction under an
/// advisory lock.
fn migrate(db: &mut dyn Db) -> StoreResult<()> {
    tx(db, |tx| {
        tx.execute("SELECT pg_advisory_xact_lock(?1)", p![MIGRATION_LOCK])?;
        tx.batch(
            "CREATE TABLE IF NOT EXISTS nextdeploy_migrations (\
             version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
        )?;
        let done: i64 = tx
            .one(
                "SELECT COALESCE(MAX(version), 0) FROM nextdeploy_migrations",
                p![],
            )?
            .get(0)?;
        for (i, sql) in schema::MIGRATIONS
            .iter()
            .enumerate()
            .skip(done.max(0) as usize)
        {
            tx.batch(sql)?;
            tx.execute(
                "INSERT INTO nextdeploy_migrations (version, applied_at) VALUES (?1, ?2)",
                p![(i + 1) as i64, nextdeploy_shared::time::now_unix()],
            )?;
        }
        Ok(())
    })
}
