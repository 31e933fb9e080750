//! The hub's state behind one narrow interface. SQLite is the embedded default
//! ([`sqlite::SqliteStore`]); a PostgreSQL implementation is the planned second
//! one for several hubs. Methods are synchronous: async callers go through
//! [`blocking`], which runs them on tokio's blocking pool.

pub mod agents;
pub mod alert_channels;
pub mod alert_rules;
pub mod alert_state;
pub mod alerts;
pub mod backend;
mod backend_parts;
pub mod buffer_seqs;
pub mod cluster;
pub mod deploys;
pub mod exec;
pub mod health;
pub mod migrate;
pub mod postgres;
pub mod sessions;
pub mod sql;
pub mod sqlite;
#[doc(hidden)]
pub mod suite;

use std::sync::Arc;

use nextdeploy_shared::docker::HealthSnapshot;
use nextdeploy_shared::labels::Labels;
use serde::Serialize;

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed.
    #[error("store: {0}")]
    Db(#[from] rusqlite::Error),
    /// A value in the database could not be decoded.
    #[error("store: corrupt value: {0}")]
    Corrupt(String),
    /// A unique name is taken.
    #[error("{0}")]
    Conflict(String),
    /// A file of the store could not be created or protected.
    #[error("store file: {0}")]
    Io(String),
    /// The blocking task failed.
    #[error("store task failed: {0}")]
    Task(String),
    /// PostgreSQL failed.
    #[error("store: {0}")]
    Pg(#[from] ::postgres::Error),
    /// A row with that key exists (a unique index or primary key refused it).
    #[error("store: a row with that key exists: {0}")]
    Unique(String),
    /// The store could not be reached or opened.
    #[error("{0}")]
    Open(String),
}

/// Result alias of the store.
pub type StoreResult<T> = Result<T, StoreError>;

use nextdeploy_shared::protocol::admin::ApiTokenInfo;
/// Roles of API tokens: defined with the actions that need them.
pub use nextdeploy_shared::protocol::Role;
use nextdeploy_shared::time::rfc3339;

/// An enrolled agent.
#[derive(Debug, Clone, Serialize)]
pub struct AgentRecord {
    /// Unique name.
    pub name: String,
    /// OpenSSH public key line (`ssh-ed25519 AAAA...`).
    pub public_key: String,
    /// `SHA256:...`.
    pub fingerprint: String,
    /// Labels.
    pub labels: Labels,
    /// Unix time of enrolment.
    pub enrolled_at: i64,
    /// Unix time last heard from.
    pub last_seen: Option<i64>,
    /// Address of the last connection.
    pub last_address: Option<String>,
    /// Agent version of the last hello.
    pub version: Option<String>,
    /// Host name of the last hello.
    pub hostname: Option<String>,
    /// Unix time of revocation.
    pub revoked_at: Option<i64>,
}

/// A join token (never its secret).
#[derive(Debug, Clone, Serialize)]
pub struct JoinTokenRecord {
    /// Public id.
    pub id: String,
    /// `sha256(secret)`; not serialized.
    #[serde(skip)]
    pub secret_hash: String,
    /// Name the agent will get.
    pub name: String,
    /// Labels the agent will get.
    pub labels: Labels,
    /// Unix time created.
    pub created_at: i64,
    /// Unix time it expires.
    pub expires_at: i64,
    /// Unix time used, if used.
    pub used_at: Option<i64>,
    /// Who created it (token name).
    pub created_by: String,
}

/// An API token (never its secret).
#[derive(Debug, Clone, Serialize)]
pub struct ApiTokenRecord {
    /// Public id.
    pub id: String,
    /// `sha256(secret)`; not serialized.
    #[serde(skip)]
    pub secret_hash: String,
    /// A name for people.
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// Unix time created.
    pub created_at: i64,
    /// Unix time it expires, if ever.
    pub expires_at: Option<i64>,
    /// Unix time revoked.
    pub revoked_at: Option<i64>,
    /// It may not `exec`.
    pub no_exec: bool,
}

impl ApiTokenRecord {
    /// As the API shows it: everything but the secret's hash.
    pub fn info(&self) -> ApiTokenInfo {
        ApiTokenInfo {
            id: self.id.clone(),
            name: self.name.clone(),
            role: self.role,
            created_at: rfc3339(self.created_at),
            expires_at: self.expires_at.map(rfc3339),
            revoked_at: self.revoked_at.map(rfc3339),
            no_exec: self.no_exec,
        }
    }
}

/// One line of the audit log.
#[derive(Debug, Clone, Serialize)]
pub struct AuditEntry {
    /// Unix time.
    pub at: i64,
    /// Who (token name, `agent:<name>` or `hub`).
    pub actor: String,
    /// What (`create_token`, `enroll`, `revoke_agent`, ...).
    pub action: String,
    /// On what.
    pub target: String,
    /// Outcome or detail.
    pub detail: String,
}

/// An audit entry as stored: its place in the log and the API token it was
/// made with.
#[derive(Debug, Clone)]
pub struct AuditRecord {
    /// Increasing with every entry.
    pub seq: i64,
    /// The entry.
    pub entry: AuditEntry,
    /// The API token's id (`None` for agents and the hub itself).
    pub actor_token: Option<String>,
}

/// Why consuming a join token failed. The reasons are told to the agent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JoinRefusal {
    /// No such id, or the secret is wrong (one message for both).
    #[error("the join token is invalid")]
    Invalid,
    /// Already used.
    #[error("the join token has already been used")]
    Used,
    /// Past its expiry.
    #[error("the join token has expired")]
    Expired,
    /// The name is held by an enrolled, unrevoked agent.
    #[error("an agent named {0:?} is already enrolled; revoke it first")]
    NameTaken(String),
}

/// The narrow interface the hub needs from its store.
pub trait Store:
    exec::ExecSessions
    + alerts::AlertStore
    + alert_rules::AlertRuleStore
    + buffer_seqs::BufferSeqs
    + cluster::ClusterStore
    + sessions::SessionStore
    + Send
    + Sync
    + 'static
{
    /// Agent by public key line, if enrolled (revoked ones included).
    fn agent_by_key(&self, public_key: &str) -> StoreResult<Option<AgentRecord>>;
    /// Agent by name.
    fn agent_by_name(&self, name: &str) -> StoreResult<Option<AgentRecord>>;
    /// All agents, by name.
    fn list_agents(&self) -> StoreResult<Vec<AgentRecord>>;
    /// Unrevoked agents' names and labels, by name: what a selector is matched
    /// against. Kept in memory between enrolments and revocations.
    fn agent_labels(&self) -> StoreResult<Arc<Vec<(String, Labels)>>>;
    /// Record a connection or disconnection.
    fn touch_agent(
        &self,
        name: &str,
        at: i64,
        address: Option<&str>,
        version: Option<&str>,
        hostname: Option<&str>,
    ) -> StoreResult<()>;
    /// Mark an agent revoked; false if there is no such unrevoked agent.
    fn revoke_agent(&self, name: &str, at: i64) -> StoreResult<bool>;

    /// Undo a recent enrolment: delete the unrevoked agent holding
    /// `public_key` if it enrolled at or after `since` (unix time), and make
    /// its join token usable again. The agent's name, or `None`.
    fn withdraw_enrolment(&self, public_key: &str, since: i64) -> StoreResult<Option<String>>;

    /// Swap an agent's key in one statement: only if it is unrevoked and
    /// still holds `old_key` (so two rotations cannot both win). False otherwise.
    fn rotate_agent_key(
        &self,
        name: &str,
        old_key: &str,
        new_key: &str,
        new_fingerprint: &str,
    ) -> StoreResult<bool>;

    /// Store a new join token.
    fn insert_join_token(&self, t: &JoinTokenRecord) -> StoreResult<()>;
    /// A join token by id.
    fn join_token(&self, id: &str) -> StoreResult<Option<JoinTokenRecord>>;
    /// All join tokens, newest first.
    fn list_join_tokens(&self) -> StoreResult<Vec<JoinTokenRecord>>;
    /// Delete a join token; false if none.
    fn delete_join_token(&self, id: &str) -> StoreResult<bool>;
    /// Atomically check and consume a join token and enrol the agent with it.
    /// Exactly one of any number of concurrent calls with the same token wins.
    fn consume_join_token(
        &self,
        id: &str,
        secret: &str,
        public_key: &str,
        fingerprint: &str,
        now: i64,
    ) -> StoreResult<Result<AgentRecord, JoinRefusal>>;

    /// Store a new API token.
    fn insert_api_token(&self, t: &ApiTokenRecord) -> StoreResult<()>;
    /// An API token by id.
    fn api_token(&self, id: &str) -> StoreResult<Option<ApiTokenRecord>>;
    /// All API tokens, newest first.
    fn list_api_tokens(&self) -> StoreResult<Vec<ApiTokenRecord>>;
    /// Revoke an API token; false if none or already revoked. A revocation
    /// is announced to every [`Store::revocations`] receiver.
    fn revoke_api_token(&self, id: &str, at: i64) -> StoreResult<bool>;
    /// The ids of API tokens revoked from now on, for connections opened
    /// with them (the store announces them: with several hubs on one store
    /// a revocation made on any hub must reach every hub).
    fn revocations(&self) -> tokio::sync::broadcast::Receiver<String>;
    /// Number of API tokens ever created (0 means a fresh store).
    fn api_token_count(&self) -> StoreResult<u64>;

    /// Append to the audit log (an agent's or the hub's own action).
    fn audit(&self, entry: &AuditEntry) -> StoreResult<()>;
    /// Append to the audit log an action made with API token `token_id`
    /// (the entry's actor is the token's name, which is not unique).
    fn audit_by_token(&self, entry: &AuditEntry, token_id: Option<&str>) -> StoreResult<()>;
    /// Record health snapshots (agent name, snapshot) in the history tiers.
    fn record_health(&self, batch: &[(String, Arc<HealthSnapshot>)]) -> StoreResult<()>;
    /// Drop history past retention.
    fn prune_health(&self, now: i64) -> StoreResult<usize>;
    /// Pack at most `max` history windows due at `now` (see
    /// [`health::compact`]); returns how many were packed.
    fn compact_health(&self, now: i64, max: usize) -> StoreResult<usize>;
    /// Write packed blocks straight, merged with what is there, in one
    /// transaction: (agent, tier resolution, window start, points). They are
    /// not rolled up into coarser tiers. For imports and the benchmark's
    /// fast-forward fill (30 days of history without waiting 30 days).
    fn put_health_blocks(&self, blocks: Vec<health::Block>) -> StoreResult<()>;
    /// A container's history at resolution `res` (5, 60 or 900) since `since`.
    fn health_history(
        &self,
        agent: &str,
        container: &str,
        res: i64,
        since: i64,
    ) -> StoreResult<Vec<health::HistoryPoint>>;
    /// Containers of an agent that have history.
    fn health_containers(&self, agent: &str) -> StoreResult<Vec<String>>;
    /// Record a new deploy.
    fn insert_deploy(&self, d: &deploys::DeployRecord) -> StoreResult<()>;
    /// Record a deploy's outcome (idempotent). One an agent pushed
    /// (`pushed_by`) only lands on that agent's unfinished deploy.
    fn finish_deploy(
        &self,
        id: &str,
        status: &str,
        outcome: &nextdeploy_shared::protocol::deploy::DeployOutcome,
        at: i64,
        pushed_by: Option<&str>,
    ) -> StoreResult<bool>;
    /// Change an unfinished deploy's status.
    fn set_deploy_status(&self, id: &str, status: &str) -> StoreResult<()>;
    /// Deploys, newest first.
    fn list_deploys(
        &self,
        server: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<deploys::DeployRecord>>;
    /// One deploy.
    fn deploy(&self, id: &str) -> StoreResult<Option<deploys::DeployRecord>>;
    /// How many deploys the store holds, by status.
    fn deploy_counts(&self) -> StoreResult<Vec<(String, u64)>>;
    /// The newest `limit` audit entries older than entry `before` (all when
    /// `None`), newest first.
    fn audit_page(&self, limit: u32, before: Option<i64>) -> StoreResult<Vec<AuditRecord>>;
}

/// Shared handle to the store.
pub type SharedStore = std::sync::Arc<dyn Store>;

/// Run a store call on the blocking pool.
pub async fn blocking<T, F>(store: &SharedStore, f: F) -> StoreResult<T>
where
    T: Send + 'static,
    F: FnOnce(&dyn Store) -> StoreResult<T> + Send + 'static,
{
    let store = store.clone();
    tokio::task::spawn_blocking(move || f(store.as_ref()))
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
}
