//! `cluster_status`: the hubs sharing this hub's store, as its last
//! heartbeat read them (issue 23).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The answer of `cluster_status`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
pub struct ClusterStatus {
    /// The cluster's id; absent when the hub runs alone (no
    /// `--cluster-secret-file`), and then `hubs` is empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<String>,
    /// The id of the hub that answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub this_hub: Option<String>,
    /// Every hub that wrote a heartbeat to the store, by id.
    pub hubs: Vec<HubStatus>,
}

/// One hub in [`ClusterStatus`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
pub struct HubStatus {
    /// Random at each start.
    pub id: String,
    /// `HOST:PORT` agents dial.
    pub ssh_address: String,
    /// Its API's URL.
    pub api_url: String,
    /// When it started (RFC 3339).
    pub started_at: String,
    /// Its last heartbeat (RFC 3339).
    pub last_heartbeat: String,
    /// Whether the heartbeat is recent enough for its leases to count.
    pub alive: bool,
    /// The agents it holds (unexpired leases of a live hub), by name.
    pub agents: Vec<String>,
}
