//! Presence: each [`CLUSTER_HEARTBEAT`] the hub writes its row and extends
//! its leases (one transaction), reads every hub and lease into its
//! [`View`], cuts local agents another hub took, and gives up leases of
//! agents it no longer holds. A hub that cannot write its heartbeat for
//! [`CLUSTER_CUT_OFF_AFTER`] cuts all its agents, so they reconnect to a hub
//! that reaches the store, and takes none until it writes one again; its
//! extension only touches leases still its own, so it never re-claims an
//! agent another hub took meanwhile.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use nextdeploy_shared::time::now_unix_ms;
use tracing::{info, warn};

use super::{Cluster, View};
use crate::limits::{AGENT_LEASE, CLUSTER_CUT_OFF_AFTER, CLUSTER_HEARTBEAT, HUB_FORGOTTEN_AFTER};
use crate::store::cluster::{HubRow, LeaseRow};
use crate::store::{self, StoreError};
use crate::Services;

/// Why an agent cannot be brought online here.
#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    /// The hub lost the store for longer than a lease.
    #[error("this hub is cut off from the cluster's store; try another hub")]
    CutOff,
    /// Writing the lease failed.
    #[error("cannot take the agent's lease: {0}")]
    Store(#[from] StoreError),
}

/// Take `agent`'s lease before registering it (a cluster hub only).
pub async fn claim(svc: &Services, agent: &str) -> Result<(), ClaimError> {
    let Some(c) = svc.config.cluster.clone() else {
        return Ok(());
    };
    if c.is_cut_off() {
        return Err(ClaimError::CutOff);
    }
    c.claimed().insert(agent.to_string());
    let until = now_unix_ms() + AGENT_LEASE.as_millis() as i64;
    let r = c.claims(&svc.store).claim(agent, until).await;
    if r.is_err() {
        c.claimed().remove(agent);
    }
    Ok(r?)
}

/// Give `agent`'s lease up when it leaves (if still this hub's; a hub cut
/// off from the store leaves it to expire).
pub async fn release(svc: &Services, agent: &str) {
    let Some(c) = svc.config.cluster.clone() else {
        return;
    };
    c.claimed().remove(agent);
    if c.is_cut_off() {
        // Its lease expires by itself; a write would wait on the store.
        return;
    }
    let (name, hub) = (agent.to_string(), c.me.id.clone());
    if let Err(e) = store::blocking(&svc.store, move |s| s.drop_lease(&name, &hub)).await {
        // The next heartbeat gives it up (it is not claimed any more).
        warn!(agent, error = %e, "cannot give up the agent's lease");
    }
}

/// What one heartbeat's read asks to do.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Reconcile {
    /// Local agents whose lease another hub holds: cut them.
    pub kick: Vec<String>,
    /// This hub's leases of agents it does not hold: give them up.
    pub drop: Vec<String>,
}

/// Compare the leases with what this hub holds. `local`: agents registered
/// before the leases were read (so their lease was taken before too);
/// `claimed`: agents claimed when the read ended.
pub fn reconcile(
    me: &str,
    local: &[String],
    claimed: &HashSet<String>,
    leases: &HashMap<String, LeaseRow>,
) -> Reconcile {
    let mut kick: Vec<String> = local
        .iter()
        .filter(|a| leases.get(*a).is_some_and(|l| l.hub_id != me))
        .cloned()
        .collect();
    let mut drop: Vec<String> = leases
        .values()
        .filter(|l| l.hub_id == me && !claimed.contains(&l.agent))
        .map(|l| l.agent.clone())
        .collect();
    kick.sort();
    drop.sort();
    Reconcile { kick, drop }
}

/// Run the heartbeat until shutdown. A beat runs in a task of its own and
/// is waited for one heartbeat at most: a store that hangs (a lock held, a
/// network gone) counts as failing, and no second beat starts while one
/// is still in flight.
pub async fn run(svc: Arc<Services>, cluster: Arc<Cluster>) {
    let mut tick = tokio::time::interval(CLUSTER_HEARTBEAT);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_ok = Instant::now();
    let mut inflight: Option<tokio::task::JoinHandle<Result<(), StoreError>>> = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = svc.cancel.cancelled() => return,
        }
        let task = inflight.get_or_insert_with(|| {
            let (svc, cluster) = (svc.clone(), cluster.clone());
            tokio::spawn(async move { beat(&svc, &cluster).await })
        });
        let outcome = match tokio::time::timeout(CLUSTER_HEARTBEAT, &mut *task).await {
            Err(_) => Err("the store did not answer within a heartbeat".to_string()),
            Ok(joined) => {
                inflight = None;
                match joined {
                    Ok(r) => r.map_err(|e| e.to_string()),
                    Err(e) => Err(format!("heartbeat task failed: {e}")),
                }
            }
        };
        match outcome {
            Ok(()) => {
                last_ok = Instant::now();
                if cluster.cut_off.swap(false, Ordering::Relaxed) {
                    info!("the store answers again: taking agents");
                }
            }
            Err(e) => {
                warn!(error = %e, "cluster heartbeat failed");
                if last_ok.elapsed() >= CLUSTER_CUT_OFF_AFTER
                    && !cluster.cut_off.swap(true, Ordering::Relaxed)
                {
                    warn!("no heartbeat for longer than a lease: cutting every agent so that they reconnect to another hub");
                }
                if cluster.is_cut_off() {
                    cut_all(&svc);
                }
            }
        }
    }
}

/// Cut every agent's connection now: the session tasks may wait on the
/// store a while longer, the agents must not (they go to another hub).
fn cut_all(svc: &Services) {
    for c in svc.registry.all() {
        c.cancel.cancel();
        let handle = c.handle.clone();
        tokio::spawn(async move {
            let why = "this hub lost its store; connect to another hub".to_string();
            let _ = handle
                .disconnect(russh::Disconnect::ByApplication, why, "en".into())
                .await;
        });
    }
}

/// One heartbeat: write, read, reconcile.
async fn beat(svc: &Arc<Services>, cluster: &Arc<Cluster>) -> Result<(), StoreError> {
    let now = now_unix_ms();
    let me = HubRow {
        heartbeat_at: now,
        ..cluster.me.clone()
    };
    let until = now + AGENT_LEASE.as_millis() as i64;
    let local: Vec<String> = svc.registry.all().iter().map(|c| c.name.clone()).collect();
    let forget_before = now - HUB_FORGOTTEN_AFTER.as_millis() as i64;
    let (hubs, leases) = store::blocking(&svc.store, move |s| {
        s.heartbeat(&me, until, forget_before)?;
        Ok((s.hubs()?, s.leases()?))
    })
    .await?;
    let leases: HashMap<String, LeaseRow> =
        leases.into_iter().map(|l| (l.agent.clone(), l)).collect();
    let claimed = cluster.claimed().clone();
    let todo = reconcile(&cluster.me.id, &local, &claimed, &leases);
    for name in &todo.kick {
        let by = leases.get(name).map(|l| l.hub_id.as_str()).unwrap_or("");
        info!(agent = %name, hub = by, "another hub took the agent: cutting its connection here");
        svc.registry.kick(name);
    }
    cluster.set_view(View {
        at: now,
        hubs,
        leases,
    });
    for name in todo.drop {
        let hub = cluster.me.id.clone();
        store::blocking(&svc.store, move |s| s.drop_lease(&name, &hub)).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(agent: &str, hub: &str, expires_at: i64) -> (String, LeaseRow) {
        (
            agent.to_string(),
            LeaseRow {
                agent: agent.into(),
                hub_id: hub.into(),
                expires_at,
            },
        )
    }

    fn hub(id: &str, heartbeat_at: i64) -> HubRow {
        HubRow {
            id: id.into(),
            ssh_address: format!("{id}:2222"),
            api_url: format!("https://{id}:8080"),
            started_at: 0,
            heartbeat_at,
        }
    }

    #[test]
    fn cuts_agents_taken_elsewhere_and_drops_leases_not_held() {
        let leases: HashMap<_, _> = [
            lease("a", "me", 10),
            lease("b", "other", 10),
            lease("c", "me", 10),
            lease("d", "other", 10),
        ]
        .into();
        let local = vec!["a".to_string(), "b".to_string(), "new".to_string()];
        let claimed: HashSet<String> = ["a", "b", "new"].map(String::from).into();
        let r = reconcile("me", &local, &claimed, &leases);
        // b moved to another hub; "new" has no row yet: left alone.
        assert_eq!(r.kick, vec!["b".to_string()]);
        // c left this hub but its drop failed: given up now; d is not ours.
        assert_eq!(r.drop, vec!["c".to_string()]);
    }

    #[test]
    fn online_through_a_live_hub_with_an_unexpired_lease_only() {
        let now = 100_000;
        let alive = AGENT_LEASE.as_millis() as i64;
        let view = View {
            at: now,
            hubs: vec![hub("h1", now - 500), hub("h2", now - alive - 1)],
            leases: [
                lease("a", "h1", now + 1000),
                lease("b", "h1", now - 1),
                lease("c", "h2", now + 1000),
                lease("d", "gone", now + 1000),
            ]
            .into(),
        };
        assert_eq!(view.holder("a", now).map(|h| h.id.as_str()), Some("h1"));
        assert!(view.holder("b", now).is_none(), "expired lease");
        assert!(view.holder("c", now).is_none(), "dead hub");
        assert!(view.holder("d", now).is_none(), "unknown hub");
        assert!(view.holder("e", now).is_none(), "no lease");
        let held = view.held_by(now);
        assert_eq!(held.get("h1"), Some(&vec!["a"]));
        assert!(!held.contains_key("h2"));
    }
}
