//! Deploy history: who deployed what where, every step, the outcome.
//! Times are stored as Unix seconds (every record ever written is) and
//! leave the hub as RFC 3339 ([`DeployRecord::entry`]).

use nextdeploy_shared::protocol::deploy::{DeployEntry, DeployOutcome};
use nextdeploy_shared::time::rfc3339;
use rusqlite::{params, Connection, OptionalExtension};

use super::StoreResult;

/// Schema (applied as a migration).
pub const SCHEMA: &str = r#"
CREATE TABLE deploys (
    id          TEXT PRIMARY KEY,
    actor       TEXT NOT NULL,
    server      TEXT NOT NULL,
    container   TEXT,
    image       TEXT NOT NULL,
    status      TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    finished_at INTEGER,
    outcome     TEXT
);
CREATE INDEX deploys_by_server ON deploys (server, created_at);
"#;

/// One deploy.
#[derive(Debug, Clone)]
pub struct DeployRecord {
    /// Id chosen by the hub.
    pub id: String,
    /// Token name of who asked.
    pub actor: String,
    /// Agent.
    pub server: String,
    /// Container asked for (none: by repository).
    pub container: Option<String>,
    /// New image.
    pub image: String,
    /// running, succeeded, rolled_back, failed, unknown.
    pub status: String,
    /// Unix time.
    pub created_at: i64,
    /// Unix time.
    pub finished_at: Option<i64>,
    /// The agent's outcome (containers, steps with timings, errors).
    pub outcome: Option<DeployOutcome>,
}

impl DeployRecord {
    /// The record as `deploys_list` and `deploys_show` answer it.
    pub fn entry(self) -> DeployEntry {
        DeployEntry {
            id: self.id,
            actor: self.actor,
            server: self.server,
            container: self.container,
            image: self.image,
            status: self.status,
            created_at: rfc3339(self.created_at),
            finished_at: self.finished_at.map(rfc3339),
            outcome: self.outcome,
            progress: None,
        }
    }
}

/// Insert a new, running deploy.
pub fn insert(c: &Connection, d: &DeployRecord) -> StoreResult<()> {
    c.execute(
        "INSERT INTO deploys (id, actor, server, container, image, status, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![d.id, d.actor, d.server, d.container, d.image, d.status, d.created_at],
    )?;
    Ok(())
}

/// Record the outcome (idempotent: a repeated report changes nothing new).
/// An outcome an agent pushed on its own (`pushed_by`: that agent) only
/// updates a deploy of that agent that has no final outcome yet: an agent
/// cannot rewrite another server's history, nor a finished record. Returns
/// whether a record changed.
pub fn finish(
    c: &Connection,
    id: &str,
    status: &str,
    outcome: &DeployOutcome,
    at: i64,
    pushed_by: Option<&str>,
) -> StoreResult<bool> {
    // A rollback learns its image from the agent.
    let image = outcome.image.as_deref().filter(|i| !i.is_empty());
    let text = serde_json::to_string(outcome).unwrap_or_default();
    let n = c.execute(
        "UPDATE deploys SET status = ?2, outcome = ?3, finished_at = COALESCE(finished_at, ?4), image = COALESCE(?5, image) \
         WHERE id = ?1 AND (?6 IS NULL OR (server = ?6 AND finished_at IS NULL))",
        params![id, status, text, at, image, pushed_by],
    )?;
    Ok(n == 1)
}

/// Set a status without an outcome (e.g. `unknown` while the agent is away).
pub fn set_status(c: &Connection, id: &str, status: &str) -> StoreResult<()> {
    c.execute(
        "UPDATE deploys SET status = ?2 WHERE id = ?1 AND finished_at IS NULL",
        params![id, status],
    )?;
    Ok(())
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<DeployRecord> {
    let outcome: Option<String> = r.get(8)?;
    Ok(DeployRecord {
        id: r.get(0)?,
        actor: r.get(1)?,
        server: r.get(2)?,
        container: r.get(3)?,
        image: r.get(4)?,
        status: r.get(5)?,
        created_at: r.get(6)?,
        finished_at: r.get(7)?,
        // Every field of an outcome has a default: older records load.
        outcome: outcome.and_then(|o| serde_json::from_str(&o).ok()),
    })
}

const COLS: &str = "id, actor, server, container, image, status, created_at, finished_at, outcome";

/// Newest first, optionally for one server.
pub fn list(c: &Connection, server: Option<&str>, limit: u32) -> StoreResult<Vec<DeployRecord>> {
    let mut st = c.prepare(&format!(
        "SELECT {COLS} FROM deploys WHERE (?1 IS NULL OR server = ?1) ORDER BY created_at DESC, rowid DESC LIMIT ?2"
    ))?;
    let rows = st.query_map(params![server, limit], row)?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// One deploy.
pub fn get(c: &Connection, id: &str) -> StoreResult<Option<DeployRecord>> {
    Ok(c.query_row(
        &format!("SELECT {COLS} FROM deploys WHERE id = ?1"),
        [id],
        row,
    )
    .optional()?)
}

/// [`super::Store::deploy_counts`] on a connection.
pub fn counts(c: &Connection) -> StoreResult<Vec<(String, u64)>> {
    let mut st =
        c.prepare("SELECT status, COUNT(*) FROM deploys GROUP BY status ORDER BY status")?;
    let rows = st.query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)?.max(0) as u64)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nextdeploy_shared::protocol::deploy::{DeployKind, Outcome};

    /// A record written before the outcome was typed (a hub failure without
    /// kind or times, an agent outcome with nulls) loads, and its times
    /// leave as RFC 3339.
    #[test]
    fn old_records_load_and_times_leave_as_rfc3339() {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch(SCHEMA).unwrap();
        let old = [
            (
                "a",
                r#"{"outcome":"failed","error":"agent offline","code":"agent_offline"}"#,
            ),
            (
                "b",
                r#"{"deploy_id":"b","kind":"deploy","image":"app:2","outcome":"rolled_back","containers":[{"container":"web","from_image":"app:1","to_image":"app:2","outcome":"rolled_back","failed_step":"health","error":"unhealthy","code":"no_such_code","logs_tail":null}],"started_ms":1,"finished_ms":2,"steps":[{"deploy_id":"b","container":"web","step":"swap","status":"done","at_ms":1,"old_id":"o","new_id":"n","detail":"x"}]}"#,
            ),
        ];
        for (id, o) in old {
            c.execute(
                "INSERT INTO deploys (id, actor, server, image, status, created_at, finished_at, outcome) VALUES (?1, 'op', 's', 'app:2', 'failed', 1795600000, 1795600001, ?2)",
                params![id, o],
            )
            .unwrap();
        }
        let a = get(&c, "a").unwrap().unwrap();
        let oa = a.outcome.clone().unwrap();
        assert_eq!(oa.outcome, Outcome::Failed);
        assert_eq!(oa.kind, None);
        let b = get(&c, "b").unwrap().unwrap().outcome.unwrap();
        assert_eq!(b.kind, Some(DeployKind::Deploy));
        assert_eq!(b.containers[0].failed_step.as_deref(), Some("health"));
        assert_eq!(b.containers[0].code, None, "an unknown code reads as none");
        assert_eq!(
            oa.code,
            Some(nextdeploy_shared::protocol::ErrorCode::AgentOffline)
        );
        assert_eq!(b.steps[0].old_id.as_deref(), Some("o"));
        let e = a.entry();
        assert_eq!(e.created_at, "2026-11-25T09:46:40Z");
        assert_eq!(e.finished_at.as_deref(), Some("2026-11-25T09:46:41Z"));
        let wire = serde_json::to_value(&e).unwrap();
        assert_eq!(wire["created_at"], "2026-11-25T09:46:40Z");
    }

    fn running(id: &str, server: &str) -> DeployRecord {
        DeployRecord {
            id: id.into(),
            actor: "op".into(),
            server: server.into(),
            container: Some("web".into()),
            image: "app:2".into(),
            status: "running".into(),
            created_at: 1,
            finished_at: None,
            outcome: None,
        }
    }

    fn outcome(id: &str, o: Outcome) -> DeployOutcome {
        DeployOutcome {
            deploy_id: id.into(),
            outcome: o,
            ..DeployOutcome::default()
        }
    }

    /// An agent's pushed outcome lands only on its own unfinished deploy
    /// (also one left `unknown` by a lost link); another server's deploy and
    /// a finished one stay as they are. The hub's own relay is not limited.
    #[test]
    fn a_pushed_outcome_lands_only_on_the_agents_unfinished_deploy() {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch(SCHEMA).unwrap();
        insert(&c, &running("d1", "a")).unwrap();
        set_status(&c, "d1", "unknown").unwrap();
        let ok = outcome("d1", Outcome::Succeeded);
        let forged = outcome("d1", Outcome::Failed);
        assert!(!finish(&c, "d1", "failed", &forged, 5, Some("b")).unwrap());
        let d = get(&c, "d1").unwrap().unwrap();
        assert_eq!((d.status.as_str(), d.finished_at), ("unknown", None));
        assert!(d.outcome.is_none());

        assert!(finish(&c, "d1", "succeeded", &ok, 6, Some("a")).unwrap());
        assert!(!finish(&c, "d1", "failed", &forged, 7, Some("a")).unwrap());
        let d = get(&c, "d1").unwrap().unwrap();
        assert_eq!((d.status.as_str(), d.finished_at), ("succeeded", Some(6)));
        assert_eq!(d.outcome.unwrap().outcome, Outcome::Succeeded);

        assert!(!finish(&c, "nope", "failed", &forged, 8, Some("a")).unwrap());
        insert(&c, &running("d2", "a")).unwrap();
        assert!(finish(&c, "d2", "failed", &forged, 9, None).unwrap());
        assert!(finish(&c, "d2", "succeeded", &ok, 10, None).unwrap());
        assert_eq!(get(&c, "d2").unwrap().unwrap().status, "succeeded");
    }
}
