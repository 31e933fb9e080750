//! The cluster's presence and sealed items.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::store::backend::Backend;
use crate::store::cluster::{ClusterStore, HubRow};
use crate::store::Store;

fn hub(id: &str, at: i64) -> HubRow {
    HubRow {
        id: id.into(),
        ssh_address: format!("{id}:2222"),
        api_url: format!("https://{id}:8080"),
        started_at: 0,
        heartbeat_at: at,
    }
}

/// Every lease as (agent, hub, expiry).
fn all_leases<B: Backend>(s: &B) -> Vec<(String, String, i64)> {
    let leases = s.leases().unwrap();
    leases
        .into_iter()
        .map(|l| (l.agent, l.hub_id, l.expires_at))
        .collect()
}

fn lease(agent: &str, hub: &str, at: i64) -> (String, String, i64) {
    (agent.into(), hub.into(), at)
}

pub fn leases_move_extend_and_drop_only_for_their_holder<B: Backend>(s: &B) {
    assert!(s.insert_cluster_item("x", b"1").unwrap());
    assert!(!s.insert_cluster_item("x", b"2").unwrap(), "written once");
    assert_eq!(s.cluster_item("x").unwrap(), Some(b"1".to_vec()));
    s.heartbeat(&hub("h1", 1000), 0, 0).unwrap();
    s.heartbeat(&hub("h2", 1000), 0, 0).unwrap();
    s.take_lease("a", "h1", 2000).unwrap();
    s.take_lease("b", "h1", 2000).unwrap();
    // h2 takes b over (the agent said hello there).
    s.take_lease("b", "h2", 2500).unwrap();
    // h1's heartbeat extends a only; its drop of b does nothing.
    assert_eq!(s.heartbeat(&hub("h1", 1500), 6000, 0).unwrap(), 1);
    assert!(!s.drop_lease("b", "h1").unwrap());
    assert_eq!(
        all_leases(s),
        vec![lease("a", "h1", 6000), lease("b", "h2", 2500)]
    );
    assert!(s.drop_lease("b", "h2").unwrap());
    // h2 silent since 1000: forgotten by h1's heartbeat, with its leases.
    s.take_lease("c", "h2", 9000).unwrap();
    s.heartbeat(&hub("h1", 5000), 9000, 2000).unwrap();
    assert_eq!(s.hubs().unwrap(), vec![hub("h1", 5000)]);
    assert_eq!(s.leases().unwrap().len(), 1);
    // A batch of claims in one transaction: new leases and one taken over.
    s.take_leases("h3", &[("a".into(), 9500), ("d".into(), 9600)])
        .unwrap();
    assert_eq!(
        all_leases(s),
        vec![lease("a", "h3", 9500), lease("d", "h3", 9600)]
    );
    // A storm's batch: 300 claims (chunks of 256, 32, 8 and 4 rows), one
    // agent claimed twice (its last claim holds), one taken over from h3.
    let mut batch: Vec<(String, i64)> =
        (0..299).map(|i| (format!("s{i:03}"), 10_000 + i)).collect();
    batch.push(("s007".into(), 20_000));
    batch.push(("d".into(), 30_000));
    s.take_leases("h4", &batch).unwrap();
    let all = all_leases(s);
    assert_eq!(all.len(), 301, "a, d and 299 new");
    assert!(all.contains(&lease("s007", "h4", 20_000)), "{all:?}");
    assert!(all.contains(&lease("s298", "h4", 10_298)), "{all:?}");
    assert!(all.contains(&lease("d", "h4", 30_000)), "{all:?}");
    assert!(all.contains(&lease("a", "h3", 9500)), "{all:?}");
}

pub fn changes_name_revocations_since_and_the_enrolment_mark<B: Backend>(s: &B) {
    let before = s.changes_since(0).unwrap();
    assert_eq!(before.agents_mark, (0, 0));
    let (id, _) = nextdeploy_shared::token::new_api_token();
    s.insert_api_token(&crate::store::ApiTokenRecord {
        id: id.clone(),
        secret_hash: "x".into(),
        name: "t".into(),
        role: crate::store::Role::Viewer,
        created_at: 10,
        expires_at: None,
        revoked_at: None,
        no_exec: false,
    })
    .unwrap();
    assert!(s.revoke_api_token(&id, 100).unwrap());
    assert_eq!(
        s.changes_since(100).unwrap().tokens_revoked,
        vec![(id, 100)]
    );
    assert!(s.changes_since(101).unwrap().tokens_revoked.is_empty());
    // Another hub's revocation reaches this store's subscribers.
    let mut rx = s.revocations();
    s.changed_elsewhere(&["other".to_string()], true);
    // SQLite tells its receivers; on PostgreSQL the revoking hub's NOTIFY did.
    if !s.main(|db| Ok(db.is_pg())).unwrap() {
        assert_eq!(rx.try_recv().unwrap(), "other");
    }
}

pub fn dashboard_sessions_are_seen_by_every_hub_until_they_end<B: Backend>(s: &B) {
    use crate::store::sessions::{SessionRow, SessionStore};
    let row = |h: &str, expires_at| SessionRow {
        hash: h.into(),
        token_id: "tok".into(),
        opened_at: 100,
        expires_at,
    };
    s.put_session(&row("aa", 1000), 0).unwrap();
    s.put_session(&row("bb", 150), 0).unwrap();
    assert_eq!(s.live_session("aa", 200).unwrap(), Some(row("aa", 1000)));
    assert_eq!(s.live_session("bb", 200).unwrap(), None, "expired");
    assert_eq!(s.live_session("cc", 200).unwrap(), None);
    assert!(s.end_session("aa", 300).unwrap());
    assert!(!s.end_session("aa", 301).unwrap(), "ended twice");
    assert_eq!(s.live_session("aa", 302).unwrap(), None);
    assert_eq!(s.sessions_ended_since(300).unwrap(), vec!["aa".to_string()]);
    assert!(s.sessions_ended_since(301).unwrap().is_empty());
    // A later sign-in forgets what ended or expired before its bound.
    s.put_session(&row("dd", 5000), 400).unwrap();
    assert!(s.sessions_ended_since(0).unwrap().is_empty());
    assert!(s.live_session("dd", 401).unwrap().is_some());
}
