use super::*;
use crate::store::alerts::RuleRecord;
use nextdeploy_shared::docker::ContainerHealth;
use nextdeploy_shared::protocol::alerts::{AlertStatus, Severity};

fn rule(name: &str, condition: Condition, for_s: u64) -> Rule {
    Rule::compile(RuleRecord {
        name: name.into(),
        condition,
        for_s,
        selector: Some("env=prod".into()),
        container: Some("web*".into()).filter(|_| condition != Condition::AgentOffline),
        severity: Severity::Warning,
        channel: "ops".into(),
        created_at: 0,
        extra: Default::default(),
    })
    .unwrap()
}

fn prod() -> Labels {
    [("env".to_string(), "prod".to_string())].into()
}

fn ev(kind: &str, action: &str, container: &str) -> Event {
    Event {
        kind: kind.into(),
        action: action.into(),
        container: Some(container.into()),
        ..Default::default()
    }
}

/// Record a fire as the task would.
fn take(e: &mut Evaluator, changes: Vec<Change>) -> Vec<Change> {
    for c in &changes {
        match c {
            Change::Fire(f) => {
                let info = AlertInfo {
                    id: "x".into(),
                    rule: f.key.2.clone(),
                    condition: e.rules[f.rule].condition(),
                    severity: Severity::Warning,
                    server: f.key.0.clone(),
                    container: Some(f.key.1.clone()),
                    labels: f.labels.clone(),
                    status: AlertStatus::Firing,
                    summary: f.summary.clone(),
                    started_at: String::new(),
                    resolved_at: None,
                    value: f.value.clone(),
                    notified: true,
                    notifications: Vec::new(),
                };
                e.firing.insert(f.key.clone(), info);
            }
            Change::Resolve(k) => {
                e.firing.remove(k);
            }
        }
    }
    changes
}

#[test]
fn a_death_fires_once_with_its_code_and_resolves_when_it_runs_again() {
    let mut e = Evaluator {
        rules: vec![rule("crashed", Condition::ContainerDied, 0)],
        ..Default::default()
    };
    let mut die = ev("container", "die", "web-1");
    die.exit_code = Some(137);
    let got = {
        let c = e.event("prod-1", &prod(), &die, 10);
        take(&mut e, c)
    };
    let [Change::Fire(f)] = got.as_slice() else {
        panic!("{got:?}")
    };
    assert_eq!(f.value["exit_code"], 137);
    assert_eq!(f.value["signal"], "SIGKILL");
    assert!(
        e.event("prod-1", &prod(), &die, 11).is_empty(),
        "fires once"
    );
    let mut zero = ev("container", "die", "web-2");
    zero.exit_code = Some(0);
    assert!(e.event("prod-1", &prod(), &zero, 11).is_empty());
    assert!(e.event("staging", &Labels::new(), &die, 11).is_empty());
    assert!(e
        .event("prod-1", &prod(), &ev("container", "start", "db"), 12)
        .is_empty());
    let got = {
        let c = e.event("prod-1", &prod(), &ev("container", "start", "web-1"), 12);
        take(&mut e, c)
    };
    assert_eq!(got.len(), 1);
    assert!(matches!(got[0], Change::Resolve(_)));
    assert!(e.firing.is_empty());
}

#[test]
fn unhealthy_and_offline_fire_after_their_for_and_resolve() {
    let mut e = Evaluator {
        rules: vec![
            rule("sick", Condition::Unhealthy, 30),
            rule("gone", Condition::AgentOffline, 60),
        ],
        ..Default::default()
    };
    let snap = |health: &str, at: i64| HealthSnapshot {
        at,
        docker_available: true,
        containers: vec![ContainerHealth {
            name: "web".into(),
            state: "running".into(),
            health: Some(health.into()),
            ..Default::default()
        }],
        ..Default::default()
    };
    assert!(e.snapshot("p", &prod(), &snap("unhealthy", 100)).is_empty());
    assert!(e.tick(129).is_empty());
    assert_eq!(
        {
            let c = e.tick(130);
            take(&mut e, c)
        }
        .len(),
        1
    );
    assert!(e.tick(131).is_empty(), "fires once");
    assert_eq!(
        {
            let c = e.snapshot("p", &prod(), &snap("healthy", 140));
            take(&mut e, c)
        }
        .len(),
        1
    );
    assert!(e.firing.is_empty());

    e.event(
        "p",
        &prod(),
        &Event {
            kind: "agent".into(),
            action: "offline".into(),
            ..Default::default()
        },
        200,
    );
    assert!(e.tick(259).is_empty());
    assert_eq!(
        {
            let c = e.tick(260);
            take(&mut e, c)
        }
        .len(),
        1
    );
    let on = Event {
        kind: "agent".into(),
        action: "online".into(),
        ..Default::default()
    };
    assert_eq!(
        {
            let c = e.event("p", &prod(), &on, 300);
            take(&mut e, c)
        }
        .len(),
        1
    );
    assert!(e.tick(1000).is_empty());
}
