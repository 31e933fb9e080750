//! Agents, join tokens, API tokens and the audit log on either backend:
//! the statements behind the first part of [`super::Store`].

use nextdeploy_shared::labels::Labels;
use nextdeploy_shared::token::verify_secret;

use super::sql::{for_update, p, tx_write, Db, Row};
use super::{
    AgentRecord, ApiTokenRecord, AuditEntry, AuditRecord, JoinRefusal, JoinTokenRecord, Role,
    StoreError, StoreResult,
};

/// Labels from their JSON text.
pub(crate) fn labels_from(text: &str) -> StoreResult<Labels> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("labels: {e}")))
}

/// Labels as JSON text.
pub(crate) fn labels_to(labels: &Labels) -> String {
    serde_json::to_string(labels).unwrap_or_else(|_| "{}".into())
}

pub(crate) const AGENT_COLS: &str = "name, public_key, fingerprint, labels, enrolled_at, last_seen, last_address, version, hostname, revoked_at";

pub(crate) fn agent_row(r: &Row) -> StoreResult<AgentRecord> {
    Ok(AgentRecord {
        name: r.get(0)?,
        public_key: r.get(1)?,
        fingerprint: r.get(2)?,
        labels: labels_from(&r.get::<String>(3)?)?,
        enrolled_at: r.get(4)?,
        last_seen: r.get(5)?,
        last_address: r.get(6)?,
        version: r.get(7)?,
        hostname: r.get(8)?,
        revoked_at: r.get(9)?,
    })
}

pub(crate) const JOIN_COLS: &str =
    "id, secret_hash, name, labels, created_at, expires_at, used_at, created_by";

pub(crate) fn join_row(r: &Row) -> StoreResult<JoinTokenRecord> {
    Ok(JoinTokenRecord {
        id: r.get(0)?,
        secret_hash: r.get(1)?,
        name: r.get(2)?,
        labels: labels_from(&r.get::<String>(3)?)?,
        created_at: r.get(4)?,
        expires_at: r.get(5)?,
        used_at: r.get(6)?,
        created_by: r.get(7)?,
    })
}

pub(crate) const API_COLS: &str =
    "id, secret_hash, name, role, created_at, expires_at, revoked_at, no_exec";

pub(crate) fn api_row(r: &Row) -> StoreResult<ApiTokenRecord> {
    let role: String = r.get(3)?;
    Ok(ApiTokenRecord {
        id: r.get(0)?,
        secret_hash: r.get(1)?,
        name: r.get(2)?,
        role: Role::parse(&role).unwrap_or(Role::Viewer),
        created_at: r.get(4)?,
        expires_at: r.get(5)?,
        revoked_at: r.get(6)?,
        no_exec: r.get(7)?,
    })
}

/// One agent by a column (`name` or `public_key`).
pub fn agent_by(db: &mut dyn Db, col: &str, value: &str) -> StoreResult<Option<AgentRecord>> {
    let sql = format!("SELECT {AGENT_COLS} FROM agents WHERE {col} = ?1");
    db.opt(&sql, p![value])?.as_ref().map(agent_row).transpose()
}

/// All agents by name.
pub fn list_agents(db: &mut dyn Db) -> StoreResult<Vec<AgentRecord>> {
    let sql = format!("SELECT {AGENT_COLS} FROM agents ORDER BY name");
    db.map(&sql, p![], agent_row)
}

/// Unrevoked agents' names and labels, by name.
pub fn agent_labels(db: &mut dyn Db) -> StoreResult<Vec<(String, Labels)>> {
    db.map(
        "SELECT name, labels FROM agents WHERE revoked_at IS NULL ORDER BY name",
        p![],
        |r| Ok((r.get(0)?, labels_from(&r.get::<String>(1)?)?)),
    )
}

/// [`super::Store::touch_agent`].
pub fn touch(
    db: &mut dyn Db,
    name: &str,
    at: i64,
    address: Option<&str>,
    version: Option<&str>,
    hostname: Option<&str>,
) -> StoreResult<()> {
    db.execute(
        "UPDATE agents SET last_seen = ?2,
            last_address = COALESCE(?3, last_address),
            version = COALESCE(?4, version),
            hostname = COALESCE(?5, hostname)
         WHERE name = ?1",
        p![name, at, address, version, hostname],
    )?;
    Ok(())
}

/// [`super::Store::revoke_agent`].
pub fn revoke(db: &mut dyn Db, name: &str, at: i64) -> StoreResult<bool> {
    let n = db.execute(
        "UPDATE agents SET revoked_at = ?2 WHERE name = ?1 AND revoked_at IS NULL",
        p![name, at],
    )?;
    Ok(n == 1)
}

/// [`super::Store::withdraw_enrolment`]: an install that failed after
/// enrolling undoes it on the hub too (see `ssh::handler`, user
/// `nextdeploy-withdraw`). The join token it used (the one that names it and
/// was used at the enrolment's second) becomes usable again.
pub fn withdraw(db: &mut dyn Db, public_key: &str, since: i64) -> StoreResult<Option<String>> {
    tx_write(db, |tx| {
        let sql = format!(
            "SELECT name, enrolled_at FROM agents \
             WHERE public_key = ?1 AND revoked_at IS NULL AND enrolled_at >= ?2{}",
            for_update(tx)
        );
        let Some(r) = tx.opt(&sql, p![public_key, since])? else {
            return Ok(None);
        };
        let (name, enrolled_at): (String, i64) = (r.get(0)?, r.get(1)?);
        tx.execute("DELETE FROM agents WHERE name = ?1", p![name])?;
        tx.execute(
            "UPDATE join_tokens SET used_at = NULL WHERE name = ?1 AND used_at = ?2",
            p![name, enrolled_at],
        )?;
        Ok(Some(name))
    })
}

/// [`super::Store::rotate_agent_key`]: one conditional statement, so of two
/// rotations from the same key only one matches.
pub fn rotate_key(
    db: &mut dyn Db,
    name: &str,
    old_key: &str,
    new_key: &str,
    new_fingerprint: &str,
) -> StoreResult<bool> {
    let n = db.execute(
        "UPDATE agents SET public_key = ?3, fingerprint = ?4 \
         WHERE name = ?1 AND public_key = ?2 AND revoked_at IS NULL",
        p![name, old_key, new_key, new_fingerprint],
    )?;
    Ok(n == 1)
}

/// [`super::Store::insert_join_token`].
pub fn insert_join_token(db: &mut dyn Db, t: &JoinTokenRecord) -> StoreResult<()> {
    let sql =
        format!("INSERT INTO join_tokens ({JOIN_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)");
    db.execute(
        &sql,
        p![
            t.id,
            t.secret_hash,
            t.name,
            labels_to(&t.labels),
            t.created_at,
            t.expires_at,
            t.used_at,
            t.created_by
        ],
    )?;
    Ok(())
}

/// A join token by id.
pub fn join_token(db: &mut dyn Db, id: &str) -> StoreResult<Option<JoinTokenRecord>> {
    let sql = format!("SELECT {JOIN_COLS} FROM join_tokens WHERE id = ?1");
    db.opt(&sql, p![id])?.as_ref().map(join_row).transpose()
}

/// All join tokens, newest first.
pub fn list_join_tokens(db: &mut dyn Db) -> StoreResult<Vec<JoinTokenRecord>> {
    let sql = format!("SELECT {JOIN_COLS} FROM join_tokens ORDER BY created_at DESC, id");
    db.map(&sql, p![], join_row)
}

/// [`super::Store::consume_join_token`]: in one write transaction that
/// locks the token's row (SQLite: the database), so of concurrent consumers
/// on any number of hubs only the first sees it unused.
pub fn consume_join_token(
    db: &mut dyn Db,
    id: &str,
    secret: &str,
    public_key: &str,
    fingerprint: &str,
    now: i64,
) -> StoreResult<Result<AgentRecord, JoinRefusal>> {
    let mut name = None;
    let done = tx_write(db, |tx| {
        let sql = format!(
            "SELECT {JOIN_COLS} FROM join_tokens WHERE id = ?1{}",
            for_update(tx)
        );
        let Some(t) = tx.opt(&sql, p![id])?.as_ref().map(join_row).transpose()? else {
            return Ok(Err(JoinRefusal::Invalid));
        };
        if !verify_secret(secret, &t.secret_hash) {
            return Ok(Err(JoinRefusal::Invalid));
        }
        if t.used_at.is_some() {
            return Ok(Err(JoinRefusal::Used));
        }
        if t.expires_at <= now {
            return Ok(Err(JoinRefusal::Expired));
        }
        name = Some(t.name.clone());
        let sql = format!(
            "SELECT revoked_at FROM agents WHERE name = ?1{}",
            for_update(tx)
        );
        let existing: Option<Option<i64>> =
            tx.opt(&sql, p![t.name])?.map(|r| r.get(0)).transpose()?;
        match existing {
            Some(None) => return Ok(Err(JoinRefusal::NameTaken(t.name))),
            Some(Some(_)) => {
                tx.execute("DELETE FROM agents WHERE name = ?1", p![t.name])?;
            }
            None => {}
        }
        tx.execute(
            "UPDATE join_tokens SET used_at = ?2 WHERE id = ?1 AND used_at IS NULL",
            p![id, now],
        )?;
        let rec = AgentRecord {
            name: t.name.clone(),
            public_key: public_key.to_string(),
            fingerprint: fingerprint.to_string(),
            labels: t.labels.clone(),
            enrolled_at: now,
            last_seen: None,
            last_address: None,
            version: None,
            hostname: None,
            revoked_at: None,
        };
        let sql = format!(
            "INSERT INTO agents ({AGENT_COLS}) \
             VALUES (?1, ?2, ?3, ?4, ?5, NULL, NULL, NULL, NULL, NULL)"
        );
        let labels = labels_to(&rec.labels);
        tx.execute(
            &sql,
            p![rec.name, rec.public_key, rec.fingerprint, labels, now],
        )?;
        Ok(Ok(rec))
    });
    // A unique index refused the agent: the transaction is rolled back (the
    // token stays unused). Its key is enrolled, or another hub enrolled the
    // name with another token at the same moment.
    match (done, name) {
        (Err(StoreError::Unique(m)), _) if m.contains("public_key") => Err(StoreError::Conflict(
            "this key is already enrolled under another name".into(),
        )),
        (Err(StoreError::Unique(_)), Some(name)) => Ok(Err(JoinRefusal::NameTaken(name))),
        (done, _) => done,
    }
}

/// [`super::Store::insert_api_token`].
pub fn insert_api_token(db: &mut dyn Db, t: &ApiTokenRecord) -> StoreResult<()> {
    let sql =
        format!("INSERT INTO api_tokens ({API_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)");
    db.execute(
        &sql,
        p![
            t.id,
            t.secret_hash,
            t.name,
            t.role.as_str(),
            t.created_at,
            t.expires_at,
            t.revoked_at,
            t.no_exec
        ],
    )?;
    Ok(())
}

/// An API token by id.
pub fn api_token(db: &mut dyn Db, id: &str) -> StoreResult<Option<ApiTokenRecord>> {
    let sql = format!("SELECT {API_COLS} FROM api_tokens WHERE id = ?1");
    db.opt(&sql, p![id])?.as_ref().map(api_row).transpose()
}

/// All API tokens, newest first.
pub fn list_api_tokens(db: &mut dyn Db) -> StoreResult<Vec<ApiTokenRecord>> {
    let sql = format!("SELECT {API_COLS} FROM api_tokens ORDER BY created_at DESC, id");
    db.map(&sql, p![], api_row)
}

/// Revoke an API token; false if none or revoked already.
pub fn revoke_api_token(db: &mut dyn Db, id: &str, at: i64) -> StoreResult<bool> {
    let n = db.execute(
        "UPDATE api_tokens SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
        p![id, at],
    )?;
    Ok(n == 1)
}

/// How many API tokens were ever created.
pub fn api_token_count(db: &mut dyn Db) -> StoreResult<u64> {
    let n: i64 = db.one("SELECT COUNT(*) FROM api_tokens", p![])?.get(0)?;
    Ok(n.max(0) as u64)
}

/// Append to the audit log.
pub fn audit(db: &mut dyn Db, e: &AuditEntry, token_id: Option<&str>) -> StoreResult<()> {
    db.execute(
        "INSERT INTO audit (at, actor, action, target, detail, actor_token) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        p![e.at, e.actor, e.action, e.target, e.detail, token_id],
    )?;
    Ok(())
}

/// [`super::Store::audit_page`].
pub fn audit_page(
    db: &mut dyn Db,
    limit: u32,
    before: Option<i64>,
) -> StoreResult<Vec<AuditRecord>> {
    db.map(
        "SELECT seq, at, actor, action, target, detail, actor_token FROM audit \
         WHERE CAST(?2 AS BIGINT) IS NULL OR seq < ?2 ORDER BY seq DESC LIMIT ?1",
        p![limit, before],
        |r| {
            Ok(AuditRecord {
                seq: r.get(0)?,
                entry: AuditEntry {
                    at: r.get(1)?,
                    actor: r.get(2)?,
                    action: r.get(3)?,
                    target: r.get(4)?,
                    detail: r.get(5)?,
                },
                actor_token: r.get(6)?,
            })
        },
    )
}
