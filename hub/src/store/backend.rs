//! [`Store`] on any [`Backend`]: a backend hands out its connections (as
//! [`Db`]) and its few own mechanisms (the label index cache, how a
//! revocation is announced); every method's SQL is shared (see
//! [`super::sql`]).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nextdeploy_shared::docker::HealthSnapshot;
use nextdeploy_shared::labels::Labels;
use nextdeploy_shared::protocol::deploy::DeployOutcome;
use tokio::sync::broadcast;

use super::deploys::DeployRecord;
use super::health::{self, cache::BlockCache, HistoryPoint, NameCache};
use super::sql::{tx, Db};
use super::{
    agents, AgentRecord, ApiTokenRecord, AuditEntry, AuditRecord, JoinRefusal, JoinTokenRecord,
    Store, StoreResult,
};

/// Unrevoked agents' names and labels (see [`Store::agent_labels`]).
pub type LabelIndex = Arc<Vec<(String, Labels)>>;

/// The label index kept in memory: dropped by every change made through
/// this store, and after `ttl` where other hubs change the same store.
#[derive(Default)]
pub struct LabelCache {
    index: Mutex<Option<(Instant, LabelIndex)>>,
    ttl: Option<Duration>,
}

impl LabelCache {
    /// A cache whose index is kept until a change (`None`) or at most `ttl`.
    pub fn new(ttl: Option<Duration>) -> Self {
        LabelCache {
            index: Mutex::new(None),
            ttl,
        }
    }

    fn get(&self) -> Option<LabelIndex> {
        let guard = crate::sync::lock_or_recover(&self.index);
        let (at, index) = guard.as_ref()?;
        match self.ttl {
            Some(ttl) if at.elapsed() >= ttl => None,
            _ => Some(index.clone()),
        }
    }

    fn put(&self, index: LabelIndex) {
        *crate::sync::lock_or_recover(&self.index) = Some((Instant::now(), index));
    }

    pub(super) fn drop_index(&self) {
        crate::sync::lock_or_recover(&self.index).take();
    }
}

/// What a database gives the shared [`Store`] implementation.
pub trait Backend: Send + Sync + 'static {
    /// Run `f` on the main connection (every write but the history's).
    fn main<T>(&self, f: impl FnOnce(&mut dyn Db) -> StoreResult<T>) -> StoreResult<T>;
    /// Run `f`, which only reads, where authentication's look-ups run: the
    /// main connection unless the backend keeps readers of its own.
    fn read<T>(&self, f: impl FnOnce(&mut dyn Db) -> StoreResult<T>) -> StoreResult<T> {
        self.main(f)
    }
    /// Run `f` on the history writer's connection with its name cache.
    fn health<T>(
        &self,
        f: impl FnOnce(&mut dyn Db, &mut NameCache) -> StoreResult<T>,
    ) -> StoreResult<T>;
    /// Run `f` on a connection for history reads, with the block cache.
    fn health_read<T>(
        &self,
        f: impl FnOnce(&mut dyn Db, &mut BlockCache) -> StoreResult<T>,
    ) -> StoreResult<T>;
    /// The label index cache (one hub alone sees every enrolment and keeps
    /// it until a change; several hubs on one store keep it briefly).
    fn label_cache(&self) -> &LabelCache;
    /// Announce API token `id`'s revocation (on `db`, inside the call that
    /// revoked it) to every [`Store::revocations`] receiver of every hub.
    fn announce_revocation(&self, db: &mut dyn Db, id: &str) -> StoreResult<()>;
    /// A receiver of revoked API token ids.
    fn subscribe_revocations(&self) -> broadcast::Receiver<String>;
    /// API token `id` was revoked by another hub (found by the cluster's
    /// poll of the store): tell this hub's receivers, unless the backend's
    /// own announcement already reaches them (PostgreSQL's `NOTIFY`).
    fn heard_revocation(&self, id: &str);
}

fn drop_labels<B: Backend>(b: &B) {
    b.label_cache().drop_index();
}

impl<B: Backend> Store for B {
    fn agent_by_key(&self, public_key: &str) -> StoreResult<Option<AgentRecord>> {
        self.read(|db| agents::agent_by(db, "public_key", public_key))
    }

    fn agent_by_name(&self, name: &str) -> StoreResult<Option<AgentRecord>> {
        self.main(|db| agents::agent_by(db, "name", name))
    }

    fn list_agents(&self) -> StoreResult<Vec<AgentRecord>> {
        self.main(agents::list_agents)
    }

    fn agent_labels(&self) -> StoreResult<LabelIndex> {
        // Read and filled under the main connection's lock, so it never
        // outlives a change made through this store.
        self.main(|db| {
            let cache = self.label_cache();
            if let Some(index) = cache.get() {
                return Ok(index);
            }
            let index: LabelIndex = Arc::new(agents::agent_labels(db)?);
            cache.put(index.clone());
            Ok(index)
        })
    }

    fn touch_agent(
        &self,
        name: &str,
        at: i64,
        address: Option<&str>,
        version: Option<&str>,
        hostname: Option<&str>,
    ) -> StoreResult<()> {
        self.main(|db| agents::touch(db, name, at, address, version, hostname))
    }

    fn revoke_agent(&self, name: &str, at: i64) -> StoreResult<bool> {
        self.main(|db| {
            let done = agents::revoke(db, name, at)?;
            drop_labels(self);
            Ok(done)
        })
    }

    fn withdraw_enrolment(&self, public_key: &str, since: i64) -> StoreResult<Option<String>> {
        self.main(|db| {
            let name = agents::withdraw(db, public_key, since)?;
            drop_labels(self);
            Ok(name)
        })
    }

    fn rotate_agent_key(
        &self,
        name: &str,
        old_key: &str,
        new_key: &str,
        new_fingerprint: &str,
    ) -> StoreResult<bool> {
        self.main(|db| agents::rotate_key(db, name, old_key, new_key, new_fingerprint))
    }

    fn insert_join_token(&self, t: &JoinTokenRecord) -> StoreResult<()> {
        self.main(|db| agents::insert_join_token(db, t))
    }

    fn join_token(&self, id: &str) -> StoreResult<Option<JoinTokenRecord>> {
        self.read(|db| agents::join_token(db, id))
    }

    fn list_join_tokens(&self) -> StoreResult<Vec<JoinTokenRecord>> {
        self.main(agents::list_join_tokens)
    }

    fn delete_join_token(&self, id: &str) -> StoreResult<bool> {
        self.main(|db| {
            Ok(db.execute("DELETE FROM join_tokens WHERE id = ?1", super::sql::p![id])? == 1)
        })
    }

    fn consume_join_token(
        &self,
        id: &str,
        secret: &str,
        public_key: &str,
        fingerprint: &str,
        now: i64,
    ) -> StoreResult<Result<AgentRecord, JoinRefusal>> {
        self.main(|db| {
            let out = agents::consume_join_token(db, id, secret, public_key, fingerprint, now)?;
            if out.is_ok() {
                drop_labels(self);
            }
            Ok(out)
        })
    }

    fn insert_api_token(&self, t: &ApiTokenRecord) -> StoreResult<()> {
        self.main(|db| agents::insert_api_token(db, t))
    }

    fn api_token(&self, id: &str) -> StoreResult<Option<ApiTokenRecord>> {
        self.read(|db| agents::api_token(db, id))
    }

    fn list_api_tokens(&self) -> StoreResult<Vec<ApiTokenRecord>> {
        self.main(agents::list_api_tokens)
    }

    fn revoke_api_token(&self, id: &str, at: i64) -> StoreResult<bool> {
        self.main(|db| {
            let revoked = agents::revoke_api_token(db, id, at)?;
            if revoked {
                self.announce_revocation(db, id)?;
            }
            Ok(revoked)
        })
    }

    fn revocations(&self) -> broadcast::Receiver<String> {
        self.subscribe_revocations()
    }

    fn api_token_count(&self) -> StoreResult<u64> {
        self.main(agents::api_token_count)
    }

    fn audit(&self, e: &AuditEntry) -> StoreResult<()> {
        self.audit_by_token(e, None)
    }

    fn audit_by_token(&self, e: &AuditEntry, token_id: Option<&str>) -> StoreResult<()> {
        self.main(|db| agents::audit(db, e, token_id))
    }

    fn record_health(&self, batch: &[(String, std::sync::Arc<HealthSnapshot>)]) -> StoreResult<()> {
        self.health(|db, names| health::record(db, names, batch))
    }

    fn prune_health(&self, now: i64) -> StoreResult<usize> {
        self.health(|db, _| health::compact::prune(db, now))
    }

    fn compact_health(&self, now: i64, max: usize) -> StoreResult<usize> {
        self.health(|db, _| health::compact::compact(db, now, max))
    }

    fn put_health_blocks(&self, blocks: Vec<health::Block>) -> StoreResult<()> {
        self.health(|db, _| tx(db, |tx| health::compact::put_blocks(tx, blocks)))
    }

    fn health_history(
        &self,
        agent: &str,
        container: &str,
        res: i64,
        since: i64,
    ) -> StoreResult<Vec<HistoryPoint>> {
        self.health_read(|db, cache| health::query(db, cache, agent, container, res, since))
    }

    fn health_containers(&self, agent: &str) -> StoreResult<Vec<String>> {
        self.health_read(|db, _| health::containers(db, agent))
    }

    fn insert_deploy(&self, d: &DeployRecord) -> StoreResult<()> {
        self.main(|db| super::deploys::insert(db, d))
    }

    fn finish_deploy(
        &self,
        id: &str,
        status: &str,
        outcome: &DeployOutcome,
        at: i64,
        pushed_by: Option<&str>,
    ) -> StoreResult<bool> {
        self.main(|db| super::deploys::finish(db, id, status, outcome, at, pushed_by))
    }

    fn set_deploy_status(&self, id: &str, status: &str) -> StoreResult<()> {
        self.main(|db| super::deploys::set_status(db, id, status))
    }

    fn list_deploys(&self, server: Option<&str>, limit: u32) -> StoreResult<Vec<DeployRecord>> {
        self.main(|db| super::deploys::list(db, server, limit))
    }

    fn deploy(&self, id: &str) -> StoreResult<Option<DeployRecord>> {
        self.main(|db| super::deploys::get(db, id))
    }

    fn deploy_counts(&self) -> StoreResult<Vec<(String, u64)>> {
        self.main(super::deploys::counts)
    }

    fn audit_page(&self, limit: u32, before: Option<i64>) -> StoreResult<Vec<AuditRecord>> {
        self.main(|db| agents::audit_page(db, limit, before))
    }
}
