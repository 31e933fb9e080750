//! What other hubs of the cluster revoked or enrolled, polled from the
//! store every [`CLUSTER_CHANGES_POLL`] (works on every backend: a read of
//! `revoked_at` columns, no table of its own). A revoked API token goes to
//! [`crate::store::Store::revocations`], which closes its WebSockets here as
//! on the hub that revoked it; a revoked agent held here is cut; any change
//! of who is enrolled drops the store's label index, kept in memory between
//! enrolments and revocations (`SqliteStore::agent_labels`); a dashboard
//! session signed out elsewhere ends here.

use std::collections::HashMap;
use std::sync::Arc;

use nextdeploy_shared::time::now_unix;
use tracing::{info, warn};

use crate::limits::{CLUSTER_CHANGES_LOOKBACK, CLUSTER_CHANGES_POLL};
use crate::store::{self, cluster::Changes};
use crate::Services;

/// What the poll has acted on, by (kind, id), with its revocation time.
#[derive(Debug, Default)]
pub struct Seen {
    revoked: HashMap<(bool, String), i64>,
    mark: Option<(i64, i64)>,
}

/// What one poll asks to do.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Todo {
    /// API tokens newly revoked.
    pub tokens: Vec<String>,
    /// Agents newly revoked.
    pub agents: Vec<String>,
    /// Who is enrolled changed.
    pub agents_changed: bool,
}

impl Seen {
    /// Take one poll's answer (asked `since`): what is new.
    pub fn take(&mut self, since: i64, c: Changes) -> Todo {
        self.revoked.retain(|_, at| *at >= since);
        let mut todo = Todo::default();
        for (id, at) in c.tokens_revoked {
            if self.revoked.insert((true, id.clone()), at).is_none() {
                todo.tokens.push(id);
            }
        }
        for (name, at) in c.agents_revoked {
            if self.revoked.insert((false, name.clone()), at).is_none() {
                todo.agents.push(name);
                todo.agents_changed = true;
            }
        }
        if self
            .mark
            .replace(c.agents_mark)
            .is_some_and(|m| m != c.agents_mark)
        {
            todo.agents_changed = true;
        }
        todo
    }
}

/// Poll until shutdown.
pub async fn run(svc: Arc<Services>) {
    let mut tick = tokio::time::interval(CLUSTER_CHANGES_POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seen = Seen::default();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = svc.cancel.cancelled() => return,
        }
        let since = now_unix() - CLUSTER_CHANGES_LOOKBACK.as_secs() as i64;
        let changes = match store::blocking(&svc.store, move |s| s.changes_since(since)).await {
            Ok(c) => c,
            Err(e) => {
                warn!(error = %e, "cannot poll the store for other hubs' changes");
                continue;
            }
        };
        let todo = seen.take(since, changes);
        sign_outs(&svc, since).await;
        for name in &todo.agents {
            if svc.registry.kick(name) {
                info!(agent = %name, "agent revoked (on this or another hub): cut");
            }
            svc.recent.forget(name);
        }
        if !todo.tokens.is_empty() || todo.agents_changed {
            svc.store
                .changed_elsewhere(&todo.tokens, todo.agents_changed);
        }
    }
}

/// Dashboard sessions signed out on any hub end here too (their WebSockets
/// close); ending one this hub does not hold is nothing.
async fn sign_outs(svc: &Services, since: i64) {
    match store::blocking(&svc.store, move |s| s.sessions_ended_since(since)).await {
        Ok(hashes) => {
            for h in hashes {
                if svc.sessions.close_hash(&h) {
                    info!("dashboard session signed out (on this or another hub): ended");
                }
            }
        }
        Err(e) => warn!(error = %e, "cannot poll the store for sign-outs"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acts_once_on_each_revocation_and_on_a_changed_enrolment() {
        let mut seen = Seen::default();
        let changes = |tokens: &[(&str, i64)], agents: &[(&str, i64)], mark| Changes {
            tokens_revoked: tokens.iter().map(|(i, a)| (i.to_string(), *a)).collect(),
            agents_revoked: agents.iter().map(|(i, a)| (i.to_string(), *a)).collect(),
            agents_mark: mark,
        };
        let t = seen.take(90, changes(&[("t1", 100)], &[], (3, 50)));
        assert_eq!(t.tokens, vec!["t1".to_string()]);
        assert!(!t.agents_changed, "the first mark is the baseline");
        let t = seen.take(91, changes(&[("t1", 100)], &[("a", 101)], (3, 50)));
        assert!(t.tokens.is_empty(), "t1 again: already acted on");
        assert_eq!(t.agents, vec!["a".to_string()]);
        assert!(t.agents_changed);
        let t = seen.take(92, changes(&[("t1", 100)], &[("a", 101)], (4, 60)));
        assert_eq!(
            t,
            Todo {
                agents_changed: true,
                ..Todo::default()
            },
            "an enrolment elsewhere"
        );
        // Out of the window, then back in it (a clock stepped): acted on again.
        let t = seen.take(200, changes(&[], &[], (4, 60)));
        assert_eq!(t, Todo::default());
        let t = seen.take(95, changes(&[("t1", 100)], &[], (4, 60)));
        assert_eq!(t.tokens, vec!["t1".to_string()]);
    }
}
