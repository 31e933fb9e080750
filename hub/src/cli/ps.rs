//! `nextdeploy agent ps`: the containers of an agent with docker's columns.

use std::collections::BTreeMap;

use nextdeploy_shared::docker::ContainerRow;
use nextdeploy_shared::protocol::containers::PsRequest;
use nextdeploy_shared::protocol::Action;
use nextdeploy_shared::time::{human_age, now_unix, parse_rfc3339};

use super::client::Client;
use super::exit::Usage;
use super::output::{self, Output};

/// `ps`.
pub async fn ps(
    c: &mut Client,
    server: &str,
    all: bool,
    filters: &[String],
    quiet: bool,
    out: Output,
) -> anyhow::Result<()> {
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for f in filters {
        let (k, v) = f.split_once('=').ok_or_else(|| {
            Usage(format!(
                "--filter {f}: give key=value, e.g. label=env=prod or status=running"
            ))
        })?;
        map.entry(k.to_string()).or_default().push(v.to_string());
    }
    let ps = PsRequest {
        all,
        filters: Some(map),
    };
    let v = c.call(Action::Ps(ps), Some(server)).await?;
    if out == Output::Json {
        return output::json(&v);
    }
    let rows: Vec<ContainerRow> = serde_json::from_value(v)?;
    if quiet {
        for r in &rows {
            println!("{}", short_id(&r.id));
        }
        return Ok(());
    }
    let now = now_unix();
    let cells: Vec<Vec<String>> = rows.iter().map(|r| ps_cells(r, now)).collect();
    output::table(&PS_HEADER, &cells);
    Ok(())
}

/// `docker ps`'s columns.
const PS_HEADER: [&str; 7] = [
    "CONTAINER ID",
    "IMAGE",
    "COMMAND",
    "CREATED",
    "STATUS",
    "PORTS",
    "NAMES",
];

/// How much of a command `ps` shows, as docker truncates it.
const PS_COMMAND_WIDTH: usize = 20;

/// The 12-character id docker shows.
fn short_id(id: &str) -> String {
    id.chars().take(12).collect()
}

/// One `ps` row as docker prints it.
fn ps_cells(r: &ContainerRow, now: i64) -> Vec<String> {
    let mut command: String = r.command.chars().take(PS_COMMAND_WIDTH).collect();
    if r.command.chars().count() > PS_COMMAND_WIDTH {
        command.pop();
        command.push('…');
    }
    vec![
        short_id(&r.id),
        r.image.clone(),
        format!("\"{command}\""),
        parse_rfc3339(&r.created)
            .map(|t| format!("{} ago", human_age(now - t)))
            .unwrap_or_else(|| "-".into()),
        r.status.clone(),
        r.ports.join(", "),
        r.name.clone(),
    ]
}
