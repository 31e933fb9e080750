//! The conditions of [`super::usage`], [`super::restarts`] and the
//! evaluator's Docker and deploy inputs: each fires once and resolves once.

use nextdeploy_shared::docker::{ContainerHealth, Event, HealthSnapshot, HostSample};
use nextdeploy_shared::labels::Labels;
use nextdeploy_shared::protocol::alerts::{AlertInfo, AlertStatus, Condition, Severity};
use nextdeploy_shared::protocol::deploy::{ContainerOutcome, DeployOutcome, Outcome};

use crate::alerts::eval::{Change, Evaluator};
use crate::alerts::rules::Rule;
use crate::store::alerts::{RuleExtra, RuleRecord};

fn rule(name: &str, condition: Condition, for_s: u64, extra: RuleExtra) -> Rule {
    Rule::compile(RuleRecord {
        name: name.into(),
        condition,
        for_s,
        selector: None,
        container: None,
        severity: Severity::Warning,
        channel: "ops".into(),
        created_at: 0,
        extra,
    })
    .unwrap()
}

fn ev(rules: Vec<Rule>) -> Evaluator {
    let mut e = Evaluator::default();
    e.rules = rules;
    e
}

/// Apply changes as the task would; (fired, resolved).
fn take(e: &mut Evaluator, changes: Vec<Change>) -> (usize, usize) {
    let (mut f, mut r) = (0, 0);
    for c in changes {
        match c {
            Change::Fire(x) => {
                f += 1;
                let info = AlertInfo {
                    id: format!("a{}", e.firing.len()),
                    rule: x.key.2.clone(),
                    condition: e.rules[x.rule].condition(),
                    severity: Severity::Warning,
                    server: x.key.0.clone(),
                    container: Some(x.key.1.clone()),
                    labels: x.labels.clone(),
                    status: AlertStatus::Firing,
                    summary: x.summary.clone(),
                    started_at: String::new(),
                    resolved_at: None,
                    value: x.value.clone(),
                    notified: true,
                    notifications: Vec::new(),
                };
                assert!(
                    e.firing.insert(x.key.clone(), info).is_none(),
                    "fired twice"
                );
            }
            Change::Resolve(k) => {
                r += 1;
                assert!(e.firing.remove(&k).is_some(), "resolved what did not fire");
            }
        }
    }
    (f, r)
}

fn snap(at: i64, cpu: Option<f64>, mem: (u64, u64), restarts: i64) -> HealthSnapshot {
    HealthSnapshot {
        at,
        docker_available: true,
        containers: vec![ContainerHealth {
            name: "web".into(),
            state: if cpu.is_some() { "running" } else { "exited" }.into(),
            cpu_percent: cpu,
            mem_usage: mem.0,
            mem_limit: mem.1,
            restarts,
            ..Default::default()
        }],
        host: Some(HostSample {
            mem_total_bytes: 1000,
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn feed(e: &mut Evaluator, s: &HealthSnapshot) -> (usize, usize) {
    let c = e.snapshot("a", &Labels::new(), s);
    let t = take(e, c);
    let c = e.tick(s.at);
    let u = take(e, c);
    (t.0 + u.0, t.1 + u.1)
}

#[test]
fn cpu_fires_once_after_its_for_and_resolves_once_below_the_hysteresis() {
    let above = RuleExtra {
        above: Some(90.0),
        ..Default::default()
    };
    let mut e = ev(vec![rule("hot", Condition::Cpu, 10, above)]);
    assert_eq!(feed(&mut e, &snap(100, Some(99.0), (0, 0), 0)), (0, 0));
    // A dip at the threshold restarts the clock.
    assert_eq!(feed(&mut e, &snap(105, Some(90.0), (0, 0), 0)), (0, 0));
    assert_eq!(feed(&mut e, &snap(110, Some(99.0), (0, 0), 0)), (0, 0));
    assert_eq!(feed(&mut e, &snap(115, Some(99.0), (0, 0), 0)), (0, 0));
    assert_eq!(feed(&mut e, &snap(120, Some(99.5), (0, 0), 0)), (1, 0));
    let a = e.firing.values().next().unwrap();
    assert_eq!(a.value["cpu_percent"], 99.5);
    assert_eq!(a.value["above"], 90.0);
    assert_eq!(
        feed(&mut e, &snap(125, Some(99.0), (0, 0), 0)),
        (0, 0),
        "once"
    );
    // Between 81 and 90: still firing (hysteresis).
    assert_eq!(feed(&mut e, &snap(130, Some(85.0), (0, 0), 0)), (0, 0));
    assert_eq!(feed(&mut e, &snap(135, Some(50.0), (0, 0), 0)), (0, 1));
    assert_eq!(feed(&mut e, &snap(140, Some(50.0), (0, 0), 0)), (0, 0));
    // Stopped while hot: resolves at once.
    assert_eq!(feed(&mut e, &snap(200, Some(99.0), (0, 0), 0)), (0, 0));
    assert_eq!(feed(&mut e, &snap(210, Some(99.0), (0, 0), 0)), (1, 0));
    assert_eq!(feed(&mut e, &snap(215, None, (0, 0), 0)), (0, 1));
}

#[test]
fn memory_is_a_percent_of_the_limit_or_of_the_host() {
    let above = RuleExtra {
        above: Some(80.0),
        ..Default::default()
    };
    let mut e = ev(vec![rule("fat", Condition::Memory, 0, above)]);
    // 90 of a limit of 200: 45 %.
    assert_eq!(feed(&mut e, &snap(100, Some(1.0), (90, 200), 0)), (0, 0));
    // 900 of no limit: the host's 1000, 90 %.
    assert_eq!(feed(&mut e, &snap(105, Some(1.0), (900, 0), 0)), (1, 0));
    let a = e.firing.values().next().unwrap();
    assert_eq!(a.value["memory_percent"], 90.0);
    assert_eq!(feed(&mut e, &snap(110, Some(1.0), (100, 0), 0)), (0, 1));
    // The container gone: nothing pending stays.
    assert_eq!(feed(&mut e, &snap(115, Some(1.0), (900, 0), 0)), (1, 0));
    let gone = HealthSnapshot {
        at: 120,
        docker_available: true,
        ..Default::default()
    };
    assert_eq!(feed(&mut e, &gone), (0, 1));
    assert!(e.hot.is_empty());
}

fn event(action: &str, t: i64) -> Event {
    Event {
        kind: "container".into(),
        action: action.into(),
        container: Some("/web".into()),
        time_ms: t * 1000,
        exit_code: (action == "die").then_some(1),
        ..Default::default()
    }
}

fn on(e: &mut Evaluator, action: &str, t: i64) -> (usize, usize) {
    let c = e.event("a", &Labels::new(), &event(action, t), t);
    take(e, c)
}

#[test]
fn a_restart_loop_fires_once_within_its_window_and_resolves_after_a_quiet_window() {
    let w = RuleExtra {
        count: Some(3),
        within_s: Some(60),
        ..Default::default()
    };
    let mut e = ev(vec![rule("loop", Condition::RestartLoop, 0, w)]);
    // docker stop + start: not a restart.
    on(&mut e, "die", 10);
    on(&mut e, "stop", 10);
    assert_eq!(on(&mut e, "start", 11), (0, 0));
    // Policy restarts: die then start, twice: not yet three.
    for t in [20, 21] {
        on(&mut e, "die", t);
        assert_eq!(on(&mut e, "start", t), (0, 0));
    }
    // Two restarts, then the third after the first left the window.
    on(&mut e, "die", 100);
    assert_eq!(on(&mut e, "start", 100), (0, 0));
    on(&mut e, "die", 101);
    assert_eq!(on(&mut e, "start", 101), (0, 0));
    on(&mut e, "die", 102);
    assert_eq!(on(&mut e, "start", 102), (1, 0));
    let a = e.firing.values().next().unwrap();
    assert_eq!(a.value["restarts"], 3);
    on(&mut e, "die", 103);
    assert_eq!(on(&mut e, "start", 103), (0, 0), "once");
    let c = e.tick(150);
    assert_eq!(take(&mut e, c), (0, 0), "restarted within the window");
    let c = e.tick(163);
    assert_eq!(take(&mut e, c), (0, 1));
}

#[test]
fn restarts_no_event_told_of_count_from_the_snapshots_once() {
    let w = RuleExtra {
        count: Some(3),
        within_s: Some(600),
        ..Default::default()
    };
    let mut e = ev(vec![rule("loop", Condition::RestartLoop, 0, w)]);
    assert_eq!(feed(&mut e, &snap(100, Some(1.0), (0, 0), 5)), (0, 0));
    // One restart seen as events, and in the next snapshot's count: once.
    on(&mut e, "die", 101);
    on(&mut e, "start", 101);
    assert_eq!(feed(&mut e, &snap(105, Some(1.0), (0, 0), 6)), (0, 0));
    // One the snapshot counts first, its events after: once.
    assert_eq!(feed(&mut e, &snap(110, Some(1.0), (0, 0), 7)), (0, 0));
    on(&mut e, "die", 111);
    assert_eq!(on(&mut e, "start", 111), (0, 0));
    assert_eq!(e.restarts["a"]["web"].since(0), 2);
    // One no event told of: the third.
    assert_eq!(feed(&mut e, &snap(115, Some(1.0), (0, 0), 8)), (1, 0));
}

#[test]
fn docker_unavailable_fires_after_its_for_and_resolves_when_back() {
    let mut e = ev(vec![rule(
        "engine",
        Condition::DockerUnavailable,
        30,
        RuleExtra::default(),
    )]);
    let down = |at| HealthSnapshot {
        at,
        docker_available: false,
        docker_error: Some("connection refused".into()),
        ..Default::default()
    };
    assert_eq!(feed(&mut e, &down(100)), (0, 0));
    assert_eq!(feed(&mut e, &down(129)), (0, 0));
    assert_eq!(feed(&mut e, &down(130)), (1, 0));
    let a = e.firing.values().next().unwrap();
    assert_eq!(a.value["error"], "connection refused");
    assert_eq!(a.container.as_deref(), Some(""));
    assert_eq!(feed(&mut e, &down(135)), (0, 0), "once");
    assert_eq!(feed(&mut e, &snap(140, Some(1.0), (0, 0), 0)), (0, 1));
}

#[test]
fn a_failed_deploy_fires_once_with_its_id_and_a_later_success_resolves_it() {
    let mut e = ev(vec![rule(
        "deploys",
        Condition::DeployFailed,
        0,
        RuleExtra::default(),
    )]);
    let doc = |id: &str, o: Outcome| DeployOutcome {
        deploy_id: id.into(),
        outcome: o,
        containers: vec![ContainerOutcome {
            container: "web".into(),
            outcome: o,
            failed_step: (o != Outcome::Succeeded).then(|| "health".into()),
            error: (o != Outcome::Succeeded).then(|| "exited at once".into()),
            ..Default::default()
        }],
        ..Default::default()
    };
    let c = e.deploy("a", &Labels::new(), &doc("d1", Outcome::RolledBack), 10);
    assert_eq!(take(&mut e, c), (1, 0));
    let a = e.firing.values().next().unwrap();
    assert_eq!(a.value["deploy_id"], "d1");
    assert_eq!(a.value["outcome"], "rolled_back");
    assert_eq!(a.value["error"], "exited at once");
    assert!(a.summary.contains("d1"), "{}", a.summary);
    let c = e.deploy("a", &Labels::new(), &doc("d2", Outcome::Unknown), 11);
    assert_eq!(take(&mut e, c), (0, 0));
    let c = e.deploy("a", &Labels::new(), &doc("d3", Outcome::Succeeded), 12);
    assert_eq!(take(&mut e, c), (0, 1));
}
