//! Several hubs on one store (issue 23). A hub started with
//! `--cluster-secret-file` is one of a cluster:
//! - [`secret`]: the operator's secret file, checked;
//! - [`seal`]: AES-256-GCM under a key derived from it;
//! - [`identity`]: the SSH host key, API certificate and cluster id sealed
//!   into the store by the first hub, unsealed by the others;
//! - [`presence`]: the heartbeat, the agents' leases and what this hub
//!   knows of the others ([`View`]);
//! - [`status`]: the `cluster_status` answer;
//! - [`changes`]: revocations and enrolments made on other hubs, polled;
//! - [`peer_auth`] and [`forward`]: a request for an agent another hub
//!   holds, forwarded to that hub, authenticated both ways;
//! - [`fleet`]: `events` and `status` spanning every hub.
//!
//! The lease rules: a hub takes an agent's lease before it registers the
//! agent (an agent saying hello here has left any other hub), extends all
//! its leases with each heartbeat, gives a lease up when the agent leaves
//! (only if still its own), and cuts an agent whose lease another hub took.
//! An agent is online through another hub when that hub is alive (a recent
//! heartbeat) and its lease has not expired.

pub mod changes;
pub mod claims;
pub mod fleet;
pub mod forward;
pub mod identity;
pub mod peer_auth;
pub mod presence;
pub mod seal;
pub mod secret;
pub mod status;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use crate::limits::HUB_ALIVE_WITHIN;
use crate::store::cluster::{HubRow, LeaseRow};

/// This hub's place in its cluster, shared by the sessions, the API and the
/// heartbeat task.
#[derive(Debug)]
pub struct Cluster {
    /// The cluster's id (sealed with its keys).
    pub cluster_id: String,
    /// This hub's row: its id (random per start), addresses, start time.
    pub me: HubRow,
    /// What hubs of this cluster sign forwarded requests with.
    pub peer_key: peer_auth::PeerKey,
    /// Shared links to other hubs for one-shot requests, by hub id.
    pub links: forward::Links,
    /// The latest hubs and leases read from the store.
    view: RwLock<Arc<View>>,
    /// Agents this hub has taken (or is taking) a lease for.
    claimed: Mutex<HashSet<String>>,
    /// The heartbeat failed for longer than a lease: no claims until it works.
    cut_off: AtomicBool,
    /// The lease writer, started by the first claim.
    claims: std::sync::OnceLock<claims::Claims>,
}

/// The hubs and leases as one heartbeat read them.
#[derive(Debug, Default)]
pub struct View {
    /// Unix ms of the read.
    pub at: i64,
    /// Every hub that wrote a heartbeat.
    pub hubs: Vec<HubRow>,
    /// Leases by agent.
    pub leases: HashMap<String, LeaseRow>,
}

/// Where an agent held by another hub is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// That hub's id.
    pub hub_id: String,
    /// Its SSH address.
    pub ssh_address: String,
    /// Its API URL.
    pub api_url: String,
}

impl View {
    /// Whether `hub` counts as alive at `now` (ms).
    pub fn alive(hub: &HubRow, now: i64) -> bool {
        now - hub.heartbeat_at <= HUB_ALIVE_WITHIN.as_millis() as i64
    }

    /// The live hub holding `agent` at `now` with an unexpired lease.
    pub fn holder(&self, agent: &str, now: i64) -> Option<&HubRow> {
        let lease = self.leases.get(agent).filter(|l| l.expires_at > now)?;
        self.hubs
            .iter()
            .find(|h| h.id == lease.hub_id && Self::alive(h, now))
    }

    /// Agents with a live lease per hub id.
    pub fn held_by(&self, now: i64) -> HashMap<&str, Vec<&str>> {
        let mut out: HashMap<&str, Vec<&str>> = HashMap::new();
        for l in self.leases.values() {
            if self.holder(&l.agent, now).is_some() {
                out.entry(l.hub_id.as_str()).or_default().push(&l.agent);
            }
        }
        out
    }
}

impl Cluster {
    /// This hub's state in cluster `cluster_id`, as `me`.
    pub fn new(cluster_id: String, peer_key: peer_auth::PeerKey, me: HubRow) -> Arc<Cluster> {
        Arc::new(Cluster {
            cluster_id,
            me,
            peer_key,
            links: forward::Links::default(),
            view: RwLock::new(Arc::default()),
            claimed: Mutex::default(),
            cut_off: AtomicBool::new(false),
            claims: std::sync::OnceLock::new(),
        })
    }

    /// The latest view.
    pub fn view(&self) -> Arc<View> {
        crate::sync::read_or_recover(&self.view).clone()
    }

    fn set_view(&self, v: View) {
        *crate::sync::write_or_recover(&self.view) = Arc::new(v);
    }

    /// The other hub that holds `agent` now (None: nobody else, as this hub
    /// knows from its last heartbeat).
    pub fn remote_holder(&self, agent: &str) -> Option<Holder> {
        let view = self.view();
        let now = nextdeploy_shared::time::now_unix_ms();
        view.holder(agent, now)
            .filter(|h| h.id != self.me.id)
            .map(|h| Holder {
                hub_id: h.id.clone(),
                ssh_address: h.ssh_address.clone(),
                api_url: h.api_url.clone(),
            })
    }

    /// Whether the hub is cut off from the store (see [`presence`]).
    pub fn is_cut_off(&self) -> bool {
        self.cut_off.load(Ordering::Relaxed)
    }

    fn claimed(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        crate::sync::lock_or_recover(&self.claimed)
    }

    /// The lease writer on `store` (started by the first call).
    fn claims(&self, store: &crate::store::SharedStore) -> &claims::Claims {
        self.claims
            .get_or_init(|| claims::Claims::start(store.clone(), self.me.id.clone()))
    }
}

/// The SSH addresses to give an agent enrolling now: this hub's public one,
/// then (in a cluster) every other live hub's, comma-separated as
/// `nextdeploy-agent enroll --hub` takes them.
pub fn agent_addresses(svc: &crate::Services) -> Option<String> {
    let mut list: Vec<String> = svc.config.ssh_public_address.iter().cloned().collect();
    if let Some(c) = &svc.config.cluster {
        let view = c.view();
        let now = nextdeploy_shared::time::now_unix_ms();
        for h in view.hubs.iter().filter(|h| View::alive(h, now)) {
            if !list.contains(&h.ssh_address) {
                list.push(h.ssh_address.clone());
            }
        }
    }
    (!list.is_empty()).then(|| list.join(","))
}
