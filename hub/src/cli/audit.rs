//! `nextdeploy audit`: the audit log, newest first (admin).

use nextdeploy_shared::protocol::admin::{AuditList, AuditRow};
use nextdeploy_shared::protocol::Action;
use nextdeploy_shared::secret::Secret;

use super::client::Client;
use super::output::{self, Output};

/// Print the newest `limit` audit entries, older than `before` if given.
pub async fn audit(
    hub: &str,
    token: &Secret<String>,
    limit: u64,
    before: Option<i64>,
    out: Output,
) -> anyhow::Result<()> {
    let mut c = Client::connect(hub, token).await?;
    let payload = AuditList {
        limit: Some(limit),
        before,
    };
    let v = c.call(Action::AuditList(payload), None).await?;
    match out {
        Output::Json => output::json(&v)?,
        Output::Table => {
            let rows: Vec<AuditRow> = serde_json::from_value(v)?;
            let cells: Vec<Vec<String>> = rows
                .into_iter()
                .map(|r| {
                    vec![
                        r.id.to_string(),
                        r.time,
                        r.actor,
                        r.actor_token.unwrap_or_default(),
                        r.action,
                        r.target,
                        r.detail,
                    ]
                })
                .collect();
            output::table(
                &["ID", "TIME", "ACTOR", "TOKEN", "ACTION", "TARGET", "DETAIL"],
                &cells,
            );
        }
    }
    Ok(())
}
