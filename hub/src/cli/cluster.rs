//! `nextdeploy hub cluster status`: the hubs of the cluster the saved (or
//! given) hub belongs to, their addresses, the agents each holds and their
//! heartbeats. A client command: it asks the hub over the API.

use clap::Subcommand;
use nextdeploy_shared::protocol::agents::Empty;
use nextdeploy_shared::protocol::cluster::ClusterStatus;
use nextdeploy_shared::protocol::Action;
use nextdeploy_shared::secret::Secret;

use super::client::Client;
use super::output::{self, Output};

/// `nextdeploy hub cluster ...`.
#[derive(Debug, Subcommand)]
pub enum ClusterCmd {
    /// Hubs, their addresses, the agents each holds, last heartbeat, alive or not.
    Status,
}

/// Run `cmd` against `hub`.
pub async fn run(
    cmd: ClusterCmd,
    hub: &str,
    token: &Secret<String>,
    out: Output,
) -> anyhow::Result<()> {
    match cmd {
        ClusterCmd::Status => status(hub, token, out).await,
    }
}

async fn status(hub: &str, token: &Secret<String>, out: Output) -> anyhow::Result<()> {
    let mut c = Client::connect(hub, token).await?;
    let v = c.call(Action::ClusterStatus(Empty {}), None).await?;
    if out == Output::Json {
        return output::json(&v);
    }
    let s: ClusterStatus = serde_json::from_value(v)?;
    let Some(id) = s.cluster_id else {
        println!("This hub is not in a cluster (start hubs with --store and --cluster-secret-file to make one).");
        return Ok(());
    };
    println!("Cluster {id}");
    let this = s.this_hub.unwrap_or_default();
    let rows: Vec<Vec<String>> = s
        .hubs
        .into_iter()
        .map(|h| {
            let mark = if h.id == this { " (this hub)" } else { "" };
            vec![
                format!("{}{mark}", h.id),
                h.ssh_address,
                h.api_url,
                if h.alive { "alive" } else { "dead" }.to_string(),
                h.last_heartbeat,
                h.agents.len().to_string(),
                h.agents.join(","),
            ]
        })
        .collect();
    output::table(
        &[
            "HUB",
            "SSH",
            "API",
            "STATE",
            "LAST HEARTBEAT",
            "AGENTS",
            "NAMES",
        ],
        &rows,
    );
    Ok(())
}
