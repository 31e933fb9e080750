//! Deploys, exec sessions, alert channels and rules, alerts and their
//! notifications, buffer sequences.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use nextdeploy_shared::labels::Labels;
use nextdeploy_shared::protocol::alerts::{
    AlertInfo, AlertStatus, ChannelKind, Condition, Severity,
};
use nextdeploy_shared::protocol::deploy::{DeployKind, DeployOutcome, Outcome};
use nextdeploy_shared::time::rfc3339;
use serde_json::json;

use crate::store::alert_state::{self, Attempt, NewAlert, Next, Outbox};
use crate::store::alerts::{self, ChannelConfig, ChannelRecord, RuleExtra, RuleRecord};
use crate::store::backend::Backend;
use crate::store::deploys::{self, DeployRecord};
use crate::store::exec::{self, NewSession, SessionEnd};
use crate::store::sql::p;
use crate::store::{buffer_seqs, StoreError};

/// A record written before the outcome was typed (a hub failure without
/// kind or times, an agent outcome with nulls) loads, and its times
/// leave as RFC 3339.
pub fn old_deploy_records_load_and_times_leave_as_rfc3339<B: Backend>(s: &B) {
    s.main(|c| {
        let old = [
            (
                "a",
                r#"{"outcome":"failed","error":"agent offline","code":"agent_offline"}"#,
            ),
            (
                "b",
                r#"{"deploy_id":"b","kind":"deploy","image":"app:2","outcome":"rolled_back","containers":[{"container":"web","from_image":"app:1","to_image":"app:2","outcome":"rolled_back","failed_step":"health","error":"unhealthy","code":"no_such_code","logs_tail":null}],"started_ms":1,"finished_ms":2,"steps":[{"deploy_id":"b","container":"web","step":"swap","status":"done","at_ms":1,"old_id":"o","new_id":"n","detail":"x"}]}"#,
            ),
        ];
        for (id, o) in old {
            c.execute(
                "INSERT INTO deploys (id, actor, server, image, status, created_at, finished_at, outcome) VALUES (?1, 'op', 's', 'app:2', 'failed', 1795600000, 1795600001, ?2)",
                p![id, o],
            )
            .unwrap();
        }
        let a = deploys::get(c, "a").unwrap().unwrap();
        let oa = a.outcome.clone().unwrap();
        assert_eq!(oa.outcome, Outcome::Failed);
        assert_eq!(oa.kind, None);
        let b = deploys::get(c, "b").unwrap().unwrap().outcome.unwrap();
        assert_eq!(b.kind, Some(DeployKind::Deploy));
        assert_eq!(b.containers[0].failed_step.as_deref(), Some("health"));
        assert_eq!(b.containers[0].code, None, "an unknown code reads as none");
        assert_eq!(
            oa.code,
            Some(nextdeploy_shared::protocol::ErrorCode::AgentOffline)
        );
        assert_eq!(b.steps[0].old_id.as_deref(), Some("o"));
        let e = a.entry();
        assert_eq!(e.created_at, "2026-11-25T09:46:40Z");
        assert_eq!(e.finished_at.as_deref(), Some("2026-11-25T09:46:41Z"));
        let wire = serde_json::to_value(&e).unwrap();
        assert_eq!(wire["created_at"], "2026-11-25T09:46:40Z");
        Ok(())
    })
    .unwrap();
}

fn running(id: &str, server: &str) -> DeployRecord {
    DeployRecord {
        id: id.into(),
        actor: "op".into(),
        server: server.into(),
        container: Some("web".into()),
        image: "app:2".into(),
        status: "running".into(),
        created_at: 1,
        finished_at: None,
        outcome: None,
    }
}

fn outcome(id: &str, o: Outcome) -> DeployOutcome {
    DeployOutcome {
        deploy_id: id.into(),
        outcome: o,
        ..DeployOutcome::default()
    }
}

/// An agent's pushed outcome lands only on its own unfinished deploy
/// (also one left `unknown` by a lost link); another server's deploy and
/// a finished one stay as they are. The hub's own relay is not limited.
pub fn a_pushed_outcome_lands_only_on_the_agents_unfinished_deploy<B: Backend>(s: &B) {
    s.main(|c| {
        deploys::insert(c, &running("d1", "a")).unwrap();
        deploys::set_status(c, "d1", "unknown").unwrap();
        let ok = outcome("d1", Outcome::Succeeded);
        let forged = outcome("d1", Outcome::Failed);
        assert!(!deploys::finish(c, "d1", "failed", &forged, 5, Some("b")).unwrap());
        let d = deploys::get(c, "d1").unwrap().unwrap();
        assert_eq!((d.status.as_str(), d.finished_at), ("unknown", None));
        assert!(d.outcome.is_none());

        assert!(deploys::finish(c, "d1", "succeeded", &ok, 6, Some("a")).unwrap());
        assert!(!deploys::finish(c, "d1", "failed", &forged, 7, Some("a")).unwrap());
        let d = deploys::get(c, "d1").unwrap().unwrap();
        assert_eq!((d.status.as_str(), d.finished_at), ("succeeded", Some(6)));
        assert_eq!(d.outcome.unwrap().outcome, Outcome::Succeeded);

        assert!(!deploys::finish(c, "nope", "failed", &forged, 8, Some("a")).unwrap());
        deploys::insert(c, &running("d2", "a")).unwrap();
        assert!(deploys::finish(c, "d2", "failed", &forged, 9, None).unwrap());
        assert!(deploys::finish(c, "d2", "succeeded", &ok, 10, None).unwrap());
        assert_eq!(deploys::get(c, "d2").unwrap().unwrap().status, "succeeded");
        Ok(())
    })
    .unwrap();
}

fn session(id: &str, started: i64) -> NewSession {
    NewSession {
        id: id.into(),
        actor: "ops".into(),
        token_id: "t1".into(),
        server: "prod".into(),
        container: "web".into(),
        command: "sh".into(),
        tty: true,
        started,
    }
}

pub fn sessions_record_and_prune_oldest_recordings_first<B: Backend>(s: &B) {
    s.main(|c| {
        exec::insert(c, &session("a", 10)).unwrap();
        exec::insert(c, &session("b", 20)).unwrap();
        exec::append(c, "a", b"0123456789").unwrap();
        exec::append(c, "a", b"ab").unwrap();
        exec::append(c, "b", b"xyz").unwrap();
        assert_eq!(
            exec::recording(c, "a").unwrap(),
            vec![b"0123456789".to_vec(), b"ab".to_vec()]
        );
        let end = SessionEnd {
            ended: 30,
            exit_code: Some(3),
            bytes_in: 5,
            bytes_out: 12,
            ..Default::default()
        };
        exec::finish(c, "a", &end).unwrap();
        let a = exec::get(c, "a").unwrap().unwrap();
        assert_eq!(
            (a.exit_code, a.bytes_out, a.recording_bytes),
            (Some(3), 12, 12)
        );
        assert_eq!(exec::list(c, None, 10).unwrap()[0].id, "b");
        assert_eq!(exec::list(c, Some("other"), 10).unwrap().len(), 0);
        assert_eq!(exec::prune(c, 100).unwrap(), 0);
        assert_eq!(exec::prune(c, 5).unwrap(), 1);
        assert!(exec::recording(c, "a").unwrap().is_empty());
        assert_eq!(exec::get(c, "a").unwrap().unwrap().recording_bytes, 0);
        assert_eq!(exec::recording(c, "b").unwrap().len(), 1);
        Ok(())
    })
    .unwrap();
}

fn ch(name: &str) -> ChannelRecord {
    ChannelRecord {
        name: name.into(),
        kind: ChannelKind::Webhook,
        url: "https://hooks.example/abc/secret-path".into(),
        secret: Some("s".into()),
        config: ChannelConfig::default(),
        min_severity: Severity::Info,
        created_at: 1,
    }
}

fn rule(name: &str, channel: &str) -> RuleRecord {
    RuleRecord {
        name: name.into(),
        condition: Condition::ContainerDied,
        for_s: 0,
        selector: Some("env=prod".into()),
        container: Some("web*".into()),
        severity: Severity::Critical,
        channel: channel.into(),
        created_at: 2,
        extra: RuleExtra::default(),
    }
}

pub fn channels_and_rules_keep_names_unique_and_rules_pin_their_channel<B: Backend>(s: &B) {
    s.main(|c| {
        alerts::add_channel(c, &ch("ops")).unwrap();
        assert!(matches!(
            alerts::add_channel(c, &ch("ops")),
            Err(StoreError::Conflict(_))
        ));
        let info = alerts::channel(c, "ops").unwrap().unwrap().info();
        assert_eq!(info.target, "https://hooks.example/…");
        assert!(info.signed);
        assert!(matches!(
            alerts::add_rule(c, &rule("r", "nope")),
            Err(StoreError::Conflict(_))
        ));
        alerts::add_rule(c, &rule("r", "ops")).unwrap();
        assert!(alerts::add_rule(c, &rule("r", "ops")).is_err());
        let got = alerts::rules(c).unwrap();
        assert_eq!(got[0].severity, Severity::Critical);
        assert_eq!(got[0].container.as_deref(), Some("web*"));
        assert!(matches!(
            alerts::remove_channel(c, "ops"),
            Err(StoreError::Conflict(_))
        ));
        assert!(alerts::remove_rule(c, "r", 5).unwrap());
        assert!(!alerts::remove_rule(c, "r", 5).unwrap());
        assert!(alerts::remove_channel(c, "ops").unwrap());
        assert!(alerts::channels(c).unwrap().is_empty());
        Ok(())
    })
    .unwrap();
}

fn alert(id: &str) -> NewAlert {
    NewAlert {
        info: AlertInfo {
            id: id.into(),
            rule: "crashed".into(),
            condition: Condition::ContainerDied,
            severity: Severity::Warning,
            server: "prod".into(),
            container: Some("web".into()),
            labels: Labels::new(),
            status: AlertStatus::Firing,
            summary: "web died".into(),
            started_at: rfc3339(100),
            resolved_at: None,
            value: json!({"exit_code": 3}),
            notified: true,
            notifications: Vec::new(),
        },
        started_at: 100,
    }
}

fn note(id: &str, status: AlertStatus) -> Outbox {
    Outbox {
        id: id.into(),
        status,
        channel: "ops".into(),
        body: "{}".into(),
        created_at: 100,
        held: false,
    }
}

pub fn a_channel_above_the_alerts_severity_gets_no_notification<B: Backend>(s: &B) {
    s.main(|c| {
        c.execute(
            "INSERT INTO alert_channels (name, kind, url, created_at, min_severity) \
             VALUES ('ops', 'pagerduty', 'https://x.example/', 0, 'critical')",
            p![],
        )
        .unwrap();
        let n = note("a1-firing", AlertStatus::Firing);
        assert!(alert_state::fire(c, &alert("a1"), Some(&n)).unwrap());
        let a = &alert_state::firing(c).unwrap()[0];
        assert!(a.notifications.is_empty(), "a warning is not queued for it");
        assert!(alert_state::resolve(
            c,
            "a1",
            110,
            Some(&note("a1-resolved", AlertStatus::Resolved))
        )
        .unwrap());
        assert_eq!(
            alert_state::history(c, 0, 10).unwrap()[0].status,
            AlertStatus::Resolved
        );
        assert!(alert_state::due(c, 1000, 10).unwrap().is_empty());
        let mut crit = alert("a2");
        crit.info.severity = Severity::Critical;
        assert!(
            alert_state::fire(c, &crit, Some(&note("a2-firing", AlertStatus::Firing))).unwrap()
        );
        assert_eq!(
            alert_state::due(c, 1000, 10).unwrap().len(),
            1,
            "a critical one is"
        );
        Ok(())
    })
    .unwrap();
}

pub fn one_alert_fires_per_key_and_its_notifications_are_retried_until_delivered<B: Backend>(
    s: &B,
) {
    s.main(|c| {
        assert!(alert_state::fire(
            c,
            &alert("a1"),
            Some(&note("a1-firing", AlertStatus::Firing))
        )
        .unwrap());
        assert!(
            !alert_state::fire(c, &alert("a2"), None).unwrap(),
            "one per key"
        );
        let firing_now = alert_state::firing(c).unwrap();
        assert_eq!(firing_now.len(), 1);
        assert_eq!(firing_now[0].value["exit_code"], 3);
        assert_eq!(firing_now[0].notifications[0].state, "pending");
        let d = alert_state::due(c, 100, 10).unwrap();
        assert_eq!(d.len(), 1);
        let retry = Attempt {
            id: "a1-firing".into(),
            at: 101,
            status: Some(500),
            error: Some("HTTP 500".into()),
            next: Next::RetryAt(103),
        };
        alert_state::record_attempt(c, &retry).unwrap();
        assert!(alert_state::due(c, 102, 10).unwrap().is_empty());
        assert_eq!(alert_state::due(c, 103, 10).unwrap()[0].attempts, 1);
        let ok = Attempt {
            status: Some(200),
            error: None,
            next: Next::Delivered,
            at: 103,
            ..retry
        };
        alert_state::record_attempt(c, &ok).unwrap();
        assert!(alert_state::due(c, 1000, 10).unwrap().is_empty());
        assert!(alert_state::resolve(
            c,
            "a1",
            110,
            Some(&note("a1-resolved", AlertStatus::Resolved))
        )
        .unwrap());
        assert!(!alert_state::resolve(c, "a1", 111, None).unwrap());
        assert_eq!(
            alert_state::last_resolved(c, "crashed", "prod", "web").unwrap(),
            Some(110)
        );
        assert_eq!(
            alert_state::last_resolved(c, "crashed", "prod", "db").unwrap(),
            None
        );
        let h = alert_state::history(c, 0, 10).unwrap();
        assert_eq!(h[0].status, AlertStatus::Resolved);
        assert_eq!(h[0].notifications.len(), 2);
        assert_eq!(h[0].notifications[0].state, "delivered");
        assert_eq!(h[0].notifications[0].last_status, Some(200));
        assert!(
            alert_state::fire(c, &alert("a3"), None).unwrap(),
            "a new one after resolve"
        );
        Ok(())
    })
    .unwrap();
}

/// Deploys list newest first (ties in insertion order, newest first), by
/// server, and count by status.
pub fn deploys_list_newest_first_and_count_by_status<B: Backend>(s: &B) {
    use crate::store::Store;
    for (id, server, at) in [("d1", "a", 5), ("d2", "b", 5), ("d3", "a", 7)] {
        let mut d = running(id, server);
        d.created_at = at;
        s.insert_deploy(&d).unwrap();
    }
    let ids = |v: Vec<DeployRecord>| v.into_iter().map(|d| d.id).collect::<Vec<_>>();
    assert_eq!(ids(s.list_deploys(None, 10).unwrap()), ["d3", "d2", "d1"]);
    assert_eq!(ids(s.list_deploys(Some("a"), 1).unwrap()), ["d3"]);
    assert!(s
        .finish_deploy(
            "d1",
            "succeeded",
            &outcome("d1", Outcome::Succeeded),
            9,
            None
        )
        .unwrap());
    assert_eq!(
        s.deploy_counts().unwrap(),
        [("running".to_string(), 2), ("succeeded".to_string(), 1)]
    );
    assert!(s.deploy("nope").unwrap().is_none());
}

/// An agent's buffer record is one row, replaced.
pub fn buffer_seqs_are_kept_per_agent<B: Backend>(s: &B) {
    use crate::store::buffer_seqs::BufferSeqs;
    assert_eq!(s.buffer_seqs("a").unwrap(), None);
    s.set_buffer_seqs("a", "b1", "[[1,5]]").unwrap();
    s.set_buffer_seqs("a", "b2", "[[1,9]]").unwrap();
    s.set_buffer_seqs("c", "b3", "[]").unwrap();
    assert_eq!(
        s.buffer_seqs("a").unwrap(),
        Some(("b2".to_string(), "[[1,9]]".to_string()))
    );
    s.main(|c| buffer_seqs::get(c, "c")).unwrap().unwrap();
}
