//! Agents, tokens and the audit log.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use nextdeploy_shared::labels::Labels;

use super::recv_within;
use crate::store::backend::Backend;
use crate::store::{ApiTokenRecord, AuditEntry, JoinRefusal, JoinTokenRecord, Role, Store};
use nextdeploy_shared::token::hash_secret;

fn join<B: Backend>(store: &B, id: &str, secret: &str, name: &str, expires_at: i64) {
    store
        .insert_join_token(&JoinTokenRecord {
            id: id.into(),
            secret_hash: hash_secret(secret),
            name: name.into(),
            labels: Labels::new(),
            created_at: 0,
            expires_at,
            used_at: None,
            created_by: "test".into(),
        })
        .unwrap();
}

/// Suite case.
pub fn join_token_consumed_once<B: Backend>(s: &B) {
    join(s, "t1", "sec", "a1", 100);
    assert_eq!(
        s.consume_join_token("t1", "bad", "k1", "f1", 10)
            .unwrap()
            .unwrap_err(),
        JoinRefusal::Invalid
    );
    assert_eq!(
        s.consume_join_token("nope", "sec", "k1", "f1", 10)
            .unwrap()
            .unwrap_err(),
        JoinRefusal::Invalid
    );
    let rec = s
        .consume_join_token("t1", "sec", "k1", "f1", 10)
        .unwrap()
        .unwrap();
    assert_eq!(rec.name, "a1");
    assert_eq!(
        s.consume_join_token("t1", "sec", "k2", "f2", 11)
            .unwrap()
            .unwrap_err(),
        JoinRefusal::Used
    );
    join(s, "t2", "sec", "a2", 5);
    assert_eq!(
        s.consume_join_token("t2", "sec", "k3", "f3", 10)
            .unwrap()
            .unwrap_err(),
        JoinRefusal::Expired
    );
}

/// Suite case.
pub fn name_taken_until_revoked<B: Backend>(s: &B) {
    join(s, "t1", "x", "web", 100);
    join(s, "t2", "x", "web", 100);
    s.consume_join_token("t1", "x", "k1", "f1", 1)
        .unwrap()
        .unwrap();
    assert!(matches!(
        s.consume_join_token("t2", "x", "k2", "f2", 2).unwrap(),
        Err(JoinRefusal::NameTaken(_))
    ));
    // The refused attempt did not burn the token.
    assert!(s.join_token("t2").unwrap().unwrap().used_at.is_none());
    assert!(s.revoke_agent("web", 3).unwrap());
    let rec = s
        .consume_join_token("t2", "x", "k2", "f2", 4)
        .unwrap()
        .unwrap();
    assert_eq!(rec.public_key, "k2");
    assert!(s.agent_by_key("k1").unwrap().is_none());
}

/// Suite case.
pub fn the_label_index_follows_enrolments_and_revocations<B: Backend>(s: &B) {
    let names = |s: &B| -> Vec<String> {
        s.agent_labels()
            .unwrap()
            .iter()
            .map(|(n, _)| n.clone())
            .collect()
    };
    assert!(names(s).is_empty());
    join(s, "t1", "x", "web", 100);
    join(s, "t2", "x", "db", 100);
    join(s, "t3", "x", "web", 100);
    s.consume_join_token("t1", "x", "k1", "f1", 1)
        .unwrap()
        .unwrap();
    assert_eq!(names(s), ["web"]);
    // Served from memory until the next change: the same Arc.
    assert!(Arc::ptr_eq(
        &s.agent_labels().unwrap(),
        &s.agent_labels().unwrap()
    ));
    s.consume_join_token("t2", "x", "k2", "f2", 2)
        .unwrap()
        .unwrap();
    assert_eq!(names(s), ["db", "web"]);
    // A refused enrolment changes nothing; a revocation removes the name.
    assert!(s
        .consume_join_token("t3", "x", "k3", "f3", 3)
        .unwrap()
        .is_err());
    assert_eq!(names(s), ["db", "web"]);
    assert!(s.revoke_agent("web", 4).unwrap());
    assert_eq!(names(s), ["db"]);
    // Re-enrolled under the revoked name: back in the index.
    s.consume_join_token("t3", "x", "k3", "f3", 5)
        .unwrap()
        .unwrap();
    assert_eq!(names(s), ["db", "web"]);
}

/// Suite case.
pub fn api_tokens_and_audit<B: Backend>(s: &B) {
    assert_eq!(s.api_token_count().unwrap(), 0);
    s.insert_api_token(&ApiTokenRecord {
        id: "i".into(),
        secret_hash: hash_secret("s"),
        name: "n".into(),
        role: Role::Operator,
        created_at: 1,
        expires_at: None,
        revoked_at: None,
        no_exec: false,
    })
    .unwrap();
    assert_eq!(s.api_token("i").unwrap().unwrap().role, Role::Operator);
    let mut revocations = s.revocations();
    assert!(s.revoke_api_token("i", 2).unwrap());
    assert!(!s.revoke_api_token("i", 3).unwrap());
    // Announced once: the second call revoked nothing.
    assert_eq!(recv_within(&mut revocations).as_deref(), Some("i"));
    assert_eq!(recv_within(&mut revocations), None);
    s.audit(&AuditEntry {
        at: 1,
        actor: "a".into(),
        action: "x".into(),
        target: "t".into(),
        detail: "d".into(),
    })
    .unwrap();
    assert_eq!(s.audit_page(10, None).unwrap().len(), 1);
}

/// Suite case.
pub fn audit_pages_newest_first_with_the_token_id<B: Backend>(s: &B) {
    for n in 0..5 {
        let e = AuditEntry {
            at: n,
            actor: "admin".into(),
            action: format!("a{n}"),
            target: "t".into(),
            detail: "d".into(),
        };
        let token = (n % 2 == 0).then_some("tok");
        s.audit_by_token(&e, token).unwrap();
    }
    let first = s.audit_page(2, None).unwrap();
    let actions: Vec<_> = first.iter().map(|r| r.entry.action.as_str()).collect();
    assert_eq!(actions, ["a4", "a3"]);
    assert_eq!(first[0].actor_token.as_deref(), Some("tok"));
    assert_eq!(first[1].actor_token, None);
    let next = s.audit_page(10, Some(first[1].seq)).unwrap();
    let actions: Vec<_> = next.iter().map(|r| r.entry.action.as_str()).collect();
    assert_eq!(actions, ["a2", "a1", "a0"]);
    assert!(s.audit_page(10, Some(next[2].seq)).unwrap().is_empty());
}

/// Suite case.
pub fn withdraw_forgets_a_recent_enrolment_and_frees_its_token<B: Backend>(s: &B) {
    join(s, "t1", "sec", "w1", 1000);
    s.consume_join_token("t1", "sec", "k1", "f1", 100)
        .unwrap()
        .unwrap();
    // Enrolled before the window: refused, nothing changes.
    assert_eq!(s.withdraw_enrolment("k1", 101).unwrap(), None);
    assert!(s.agent_by_key("k1").unwrap().is_some());
    // Unknown key: nothing.
    assert_eq!(s.withdraw_enrolment("k2", 0).unwrap(), None);
    assert_eq!(
        s.withdraw_enrolment("k1", 100).unwrap().as_deref(),
        Some("w1")
    );
    assert!(s.agent_by_key("k1").unwrap().is_none());
    assert!(s.agent_labels().unwrap().is_empty());
    assert_eq!(s.join_token("t1").unwrap().unwrap().used_at, None);
    // The same token enrols again, with another key.
    s.consume_join_token("t1", "sec", "k3", "f3", 200)
        .unwrap()
        .unwrap();
    // Revoked agents cannot withdraw.
    s.revoke_agent("w1", 201).unwrap();
    assert_eq!(s.withdraw_enrolment("k3", 0).unwrap(), None);
}

/// A key rotates once from the key it was asked from; a revoked agent's
/// never.
pub fn rotation_swaps_a_key_once<B: Backend>(s: &B) {
    join(s, "t1", "x", "web", 100);
    s.consume_join_token("t1", "x", "k1", "f1", 1)
        .unwrap()
        .unwrap();
    assert!(s.rotate_agent_key("web", "k1", "k2", "f2").unwrap());
    assert!(!s.rotate_agent_key("web", "k1", "k3", "f3").unwrap());
    let a = s.agent_by_name("web").unwrap().unwrap();
    assert_eq!(
        (a.public_key.as_str(), a.fingerprint.as_str()),
        ("k2", "f2")
    );
    s.touch_agent("web", 9, Some("10.0.0.1:22"), Some("1.0"), None)
        .unwrap();
    let a = s.agent_by_key("k2").unwrap().unwrap();
    assert_eq!(
        (a.last_seen, a.last_address.as_deref()),
        (Some(9), Some("10.0.0.1:22"))
    );
    assert!(s.revoke_agent("web", 10).unwrap());
    assert!(!s.rotate_agent_key("web", "k2", "k4", "f4").unwrap());
    assert_eq!(s.list_agents().unwrap().len(), 1);
    assert!(s.delete_join_token("t1").unwrap());
    assert!(s.list_join_tokens().unwrap().is_empty());
}

/// A key enrolled under one name cannot enrol under another: a conflict,
/// and the second token stays usable.
pub fn a_key_enrols_under_one_name_only<B: Backend>(s: &B) {
    join(s, "t1", "x", "a", 100);
    join(s, "t2", "x", "b", 100);
    s.consume_join_token("t1", "x", "k1", "f1", 1)
        .unwrap()
        .unwrap();
    let e = s.consume_join_token("t2", "x", "k1", "f1", 2).unwrap_err();
    assert!(matches!(e, crate::store::StoreError::Conflict(_)), "{e:?}");
    assert_eq!(s.join_token("t2").unwrap().unwrap().used_at, None);
    assert!(s.agent_by_name("b").unwrap().is_none());
}
