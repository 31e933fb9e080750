//! `cluster_status`: this hub's view of its cluster (the last heartbeat's
//! read of the store), for `nextdeploy hub cluster status`.

use nextdeploy_shared::protocol::cluster::{ClusterStatus, HubStatus};
use nextdeploy_shared::time::{now_unix_ms, rfc3339};
use serde_json::Value;

use super::View;
use crate::Services;

/// The answer of `cluster_status`.
pub fn answer(svc: &Services) -> Value {
    let status = match &svc.config.cluster {
        None => ClusterStatus {
            cluster_id: None,
            this_hub: None,
            hubs: Vec::new(),
        },
        Some(c) => {
            let view = c.view();
            let now = now_unix_ms();
            let held = view.held_by(now);
            let hubs = view
                .hubs
                .iter()
                .map(|h| {
                    let mut agents: Vec<String> = held
                        .get(h.id.as_str())
                        .map(|a| a.iter().map(|s| s.to_string()).collect())
                        .unwrap_or_default();
                    agents.sort();
                    HubStatus {
                        id: h.id.clone(),
                        ssh_address: h.ssh_address.clone(),
                        api_url: h.api_url.clone(),
                        started_at: rfc3339(h.started_at / 1000),
                        last_heartbeat: rfc3339(h.heartbeat_at / 1000),
                        alive: View::alive(h, now),
                        agents,
                    }
                })
                .collect();
            ClusterStatus {
                cluster_id: Some(c.cluster_id.clone()),
                this_hub: Some(c.me.id.clone()),
                hubs,
            }
        }
    };
    serde_json::to_value(status).unwrap_or_default()
}
