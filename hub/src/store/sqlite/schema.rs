//! The schema: migrations applied in order at open, tracked in `user_version`.

/// Schema versions, applied in order; index + 1 is the `user_version` after it.
pub(super) const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE agents (
    name         TEXT PRIMARY KEY,
    public_key   TEXT NOT NULL UNIQUE,
    fingerprint  TEXT NOT NULL,
    labels       TEXT NOT NULL,
    enrolled_at  INTEGER NOT NULL,
    last_seen    INTEGER,
    last_address TEXT,
    version      TEXT,
    hostname     TEXT,
    revoked_at   INTEGER
);
CREATE TABLE join_tokens (
    id          TEXT PRIMARY KEY,
    secret_hash TEXT NOT NULL,
    name        TEXT NOT NULL,
    labels      TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    used_at     INTEGER,
    created_by  TEXT NOT NULL
);
CREATE TABLE api_tokens (
    id          TEXT PRIMARY KEY,
    secret_hash TEXT NOT NULL,
    name        TEXT NOT NULL,
    role        TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER,
    revoked_at  INTEGER
);
CREATE TABLE audit (
    seq    INTEGER PRIMARY KEY AUTOINCREMENT,
    at     INTEGER NOT NULL,
    actor  TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT NOT NULL
);
"#,
    crate::store::health::OLD_SCHEMA,
    crate::store::deploys::SCHEMA,
    // The API token an audited action was made with: names are not unique,
    // ids are (NULL for agents and the hub itself).
    "ALTER TABLE audit ADD COLUMN actor_token TEXT;",
    // The packed health history (issue 20); the earlier tables are
    // converted into it and dropped at open.
    crate::store::health::SCHEMA,
    // Exec sessions and their recordings; tokens without exec (issue 21).
    crate::store::exec::SCHEMA,
    // Alert channels, rules, alerts, their notifications outbox and
    // delivery log (issue 22).
    crate::store::alerts::SCHEMA,
    // Alert channels of every kind: their settings and secrets as JSON, and
    // the least severity each is notified of.
    crate::store::alerts::CHANNEL_CONFIG,
    // Rule settings (thresholds, repeat, quiet hours) and silences.
    crate::store::alert_rules::SCHEMA,
    // What the hub took from each agent's buffer (issue 22).
    crate::store::buffer_seqs::SCHEMA,
    // Several hubs on one store (issue 23): the sealed identity, the
    // hubs' heartbeats and the agents' leases.
    crate::store::cluster::SCHEMA,
    // Dashboard sessions, shared by the hubs of a cluster (issue 23).
    crate::store::sessions::SCHEMA,
];
