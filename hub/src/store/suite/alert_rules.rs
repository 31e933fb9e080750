//! Alert rules, silences, held notifications.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use nextdeploy_shared::labels::Labels;
use nextdeploy_shared::protocol::alerts::{
    AlertInfo, AlertStatus, ChannelKind, Condition, Severity,
};
use nextdeploy_shared::time::rfc3339;

use crate::store::alert_rules::*;
use crate::store::alert_state::{fire, resolve, NewAlert, Outbox};
use crate::store::alerts::{self, RuleExtra};
use crate::store::alerts::{ChannelRecord, RuleRecord};
use crate::store::backend::Backend;
use crate::store::sql::{p, Db};

fn ch(url: &str) -> ChannelRecord {
    ChannelRecord {
        name: "ops".into(),
        kind: ChannelKind::Webhook,
        url: url.into(),
        secret: None,
        config: Default::default(),
        min_severity: Severity::Info,
        created_at: 1,
    }
}

fn rule(name: &str, above: f64) -> RuleRecord {
    RuleRecord {
        name: name.into(),
        condition: Condition::Cpu,
        for_s: 60,
        selector: None,
        container: None,
        severity: Severity::Warning,
        channel: "ops".into(),
        created_at: 2,
        extra: RuleExtra {
            above: Some(above),
            repeat_s: Some(3600),
            quiet_hours: Some("22:00-07:00".into()),
            quiet_tz: Some("+02:00".into()),
            ..Default::default()
        },
    }
}

/// Suite case.
pub fn apply_adds_updates_replaces_and_prunes_in_one_transaction<B: Backend>(s: &B) {
    s.main(|c| {
        let plan = ApplyPlan {
            add_channels: vec![ch("http://a/1")],
            add_rules: vec![rule("hot", 90.0), rule("old", 50.0)],
            ..Default::default()
        };
        apply(c, &plan, 10).unwrap();
        let got = alerts::rules(c).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0], rule("hot", 90.0), "extra settings round-trip");
        let plan = ApplyPlan {
            replace_channels: vec![ch("http://a/2")],
            update_rules: vec![rule("hot", 95.0)],
            remove_rules: vec!["old".into()],
            ..Default::default()
        };
        apply(c, &plan, 11).unwrap();
        assert_eq!(
            alerts::channel(c, "ops").unwrap().unwrap().url,
            "http://a/2"
        );
        let got = alerts::rules(c).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].extra.above, Some(95.0));
        // A rule naming a missing channel: nothing of the plan is written.
        let mut bad = rule("new", 1.0);
        bad.channel = "nope".into();
        let plan = ApplyPlan {
            add_rules: vec![rule("fine", 1.0), bad],
            ..Default::default()
        };
        assert!(apply(c, &plan, 12).is_err());
        assert_eq!(alerts::rules(c).unwrap().len(), 1);
        Ok(())
    })
    .unwrap();
}

fn alert(id: &str) -> NewAlert {
    NewAlert {
        info: AlertInfo {
            id: id.into(),
            rule: "hot".into(),
            condition: Condition::Cpu,
            severity: Severity::Warning,
            server: "s".into(),
            container: Some("web".into()),
            labels: Labels::new(),
            status: AlertStatus::Firing,
            summary: "hot".into(),
            started_at: rfc3339(100),
            resolved_at: None,
            value: serde_json::json!({}),
            notified: true,
            notifications: Vec::new(),
        },
        started_at: 100,
    }
}

fn note(alert: &str, status: AlertStatus, held: bool) -> Outbox {
    Outbox {
        id: format!("{alert}-{}", status.as_str()),
        status,
        channel: "ops".into(),
        body: "{}".into(),
        created_at: 100,
        held,
    }
}

fn states(c: &mut dyn Db) -> Vec<(String, String)> {
    c.map(
        "SELECT id, state FROM alert_outbox ORDER BY rowid",
        p![],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .unwrap()
}

/// Suite case.
pub fn held_notes_wait_and_a_resolve_is_held_with_its_firing_notice<B: Backend>(s: &B) {
    s.main(|c| {
        // a1 fires held and resolves while held: its resolve is held too.
        fire(
            c,
            &alert("a1"),
            Some(&note("a1", AlertStatus::Firing, true)),
        )
        .unwrap();
        resolve(
            c,
            "a1",
            110,
            Some(&note("a1", AlertStatus::Resolved, false)),
        )
        .unwrap();
        // a2 fires held and keeps firing.
        let mut a2 = alert("a2");
        a2.info.container = Some("db".into());
        fire(c, &a2, Some(&note("a2", AlertStatus::Firing, true))).unwrap();
        let h = held(c).unwrap();
        assert_eq!(h.len(), 3);
        assert!(crate::store::alert_state::due(c, 1000, 10)
            .unwrap()
            .is_empty());
        assert!(!h[0].alert_firing && h[2].alert_firing);
        // Released as the evaluator decides: a1's pair dropped, a2's sent.
        assert!(firing_withheld(c, "a1").unwrap());
        release(c, "a1-firing", false, 200).unwrap();
        release(c, "a1-resolved", false, 200).unwrap();
        release(c, "a2-firing", true, 200).unwrap();
        assert_eq!(
            states(c),
            [
                ("a1-firing".into(), "dropped".into()),
                ("a1-resolved".into(), "dropped".into()),
                ("a2-firing".into(), "pending".into())
            ]
        );
        let due = crate::store::alert_state::due(c, 200, 10).unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].created_at, 200, "the deadline counts from release");
        assert_eq!(last_notes(c).unwrap(), [("a2".to_string(), 200)]);
        Ok(())
    })
    .unwrap();
}

/// Suite case.
pub fn silences_end_early_and_list_only_while_not_ended<B: Backend>(s: &B) {
    s.main(|c| {
        let s = SilenceRecord {
            id: "s1".into(),
            selector: Some("env=staging".into()),
            container: None,
            rule: None,
            comment: Some("deploy".into()),
            created_by: "op".into(),
            starts_at: 100,
            ends_at: 200,
        };
        add_silence(c, &s).unwrap();
        assert_eq!(silences(c, 150).unwrap().len(), 1);
        assert!(silences(c, 150).unwrap()[0].info(150).active);
        let ended = end_silence(c, "s1", 160).unwrap().unwrap();
        assert_eq!(ended.ends_at, 160);
        assert!(!ended.info(160).active);
        assert!(silences(c, 160).unwrap().is_empty());
        assert!(end_silence(c, "nope", 160).unwrap().is_none());
        Ok(())
    })
    .unwrap();
}
