//! Withdrawing a recent enrolment: an install that failed after enrolling
//! undoes it on the hub too (see `ssh::handler`, user `nextdeploy-withdraw`).

use rusqlite::{params, Connection, OptionalExtension};

use crate::store::StoreResult;

/// Delete the unrevoked agent holding `public_key` if it enrolled at or after
/// `since`, and make the join token it used unused again (the token that
/// names it and was used at the enrolment's second). The agent's name, or
/// `None` when there is no such agent.
pub(super) fn withdraw(
    c: &mut Connection,
    public_key: &str,
    since: i64,
) -> StoreResult<Option<String>> {
    let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let found: Option<(String, i64)> = tx
        .query_row(
            "SELECT name, enrolled_at FROM agents \
             WHERE public_key = ?1 AND revoked_at IS NULL AND enrolled_at >= ?2",
            params![public_key, since],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let Some((name, enrolled_at)) = found else {
        return Ok(None);
    };
    tx.execute("DELETE FROM agents WHERE name = ?1", [&name])?;
    tx.execute(
        "UPDATE join_tokens SET used_at = NULL WHERE name = ?1 AND used_at = ?2",
        params![name, enrolled_at],
    )?;
    tx.commit()?;
    Ok(Some(name))
}
