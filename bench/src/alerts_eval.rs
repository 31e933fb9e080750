//! `alerts-eval`: what the alert evaluator costs per health snapshot at a
//! fleet's size (issue 22: "rule evaluation cost per snapshot for 10,000
//! agents x 20 containers"). The hub's own [`Evaluator`] in this process,
//! fed the simulated agents' snapshots ([`crate::sim::Synth`]) round after
//! round 5 s apart, under three rule sets: one `container-died` rule (no
//! rule reads snapshots: the floor), the five snapshot conditions scoped
//! to half the fleet with nothing hot, and the same with one container of
//! every agent above its CPU threshold (pending clocks everywhere). The
//! evaluator runs on one thread in the hub, so wall time of the loop is
//! its CPU time; the median round is reported.

use std::time::Instant;

use nextdeploy_hub::alerts::eval::Evaluator;
use nextdeploy_hub::alerts::rules::Rule;
use nextdeploy_hub::store::alerts::{RuleExtra, RuleRecord};
use nextdeploy_shared::docker::HealthSnapshot;
use nextdeploy_shared::labels::Labels;
use nextdeploy_shared::protocol::alerts::{Condition, Severity};
use serde_json::json;

use crate::sim::synth::Synth;

/// Seconds between rounds (the agents' health interval).
const INTERVAL_S: i64 = 5;

/// The `alerts-eval` subcommand.
#[derive(clap::Args)]
pub struct Args {
    /// Simulated agents.
    #[arg(long, default_value_t = 10_000)]
    agents: usize,
    /// Containers per agent.
    #[arg(long, default_value_t = 20)]
    containers: usize,
    /// Rounds per rule set (each round: one snapshot of every agent).
    #[arg(long, default_value_t = 5)]
    rounds: usize,
}

fn rule(name: &str, condition: Condition, selector: Option<&str>, extra: RuleExtra) -> Rule {
    let record = RuleRecord {
        name: name.into(),
        condition,
        for_s: 300,
        selector: selector.map(Into::into),
        container: Some("*-app-*".into()),
        severity: Severity::Warning,
        channel: "ops".into(),
        created_at: 0,
        extra,
    };
    Rule::compile(record).unwrap_or_else(|e| panic!("rule {name}: {e}"))
}

/// The snapshot conditions, each scoped to `env=prod` (half the fleet).
fn snapshot_rules() -> Vec<Rule> {
    let above = |v| RuleExtra {
        above: Some(v),
        ..Default::default()
    };
    let prod = Some("env=prod");
    vec![
        rule("hot", Condition::Cpu, prod, above(90.0)),
        rule("full", Condition::Memory, prod, above(95.0)),
        rule(
            "loop",
            Condition::RestartLoop,
            prod,
            RuleExtra {
                count: Some(3),
                within_s: Some(600),
                ..Default::default()
            },
        ),
        rule("sick", Condition::Unhealthy, prod, RuleExtra::default()),
        rule(
            "nodocker",
            Condition::DockerUnavailable,
            None,
            RuleExtra::default(),
        ),
    ]
}

/// Per round: every agent's snapshot fed once; the time each round took.
fn run_set(
    rules: Vec<Rule>,
    fleet: &mut [(String, Labels, HealthSnapshot)],
    rounds: usize,
) -> (Vec<f64>, usize) {
    let mut ev = Evaluator::default();
    ev.rules = rules;
    let mut changes = 0;
    let mut ms = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        for (_, _, s) in fleet.iter_mut() {
            s.at += INTERVAL_S;
        }
        let t0 = Instant::now();
        for (agent, labels, snap) in fleet.iter() {
            changes += ev.snapshot(agent, labels, snap).len();
        }
        changes += ev.tick(fleet.first().map_or(0, |f| f.2.at)).len();
        ms.push(t0.elapsed().as_secs_f64() * 1000.0);
    }
    (ms, changes)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// Measure and print; the report as JSON on stdout's last line.
pub fn run(a: Args) -> anyhow::Result<()> {
    let now = nextdeploy_shared::time::now_unix();
    let mut fleet: Vec<(String, Labels, HealthSnapshot)> = (0..a.agents)
        .map(|i| {
            let name = crate::fleet::sim_name(i);
            let env = if i % 2 == 0 { "prod" } else { "staging" };
            let labels: Labels = [("env".to_string(), env.to_string())].into();
            let snap = Synth::new(&name, a.containers).snapshot(now, INTERVAL_S as f64);
            (name, labels, snap)
        })
        .collect();
    let died = vec![rule(
        "died",
        Condition::ContainerDied,
        None,
        RuleExtra::default(),
    )];
    let mut results = Vec::new();
    for (set, rules, hot) in [
        ("container-died only", died, false),
        ("five snapshot rules, none hot", snapshot_rules(), false),
        (
            "five snapshot rules, one hot container per agent",
            snapshot_rules(),
            true,
        ),
    ] {
        for (_, _, s) in fleet.iter_mut() {
            if let Some(c) = s.containers.first_mut() {
                c.cpu_percent = Some(if hot { 95.0 } else { 1.0 });
            }
        }
        let (ms, changes) = run_set(rules, &mut fleet, a.rounds);
        let round = median(ms);
        let us = round * 1000.0 / a.agents as f64;
        println!(
            "{set}: {us:.2} us per snapshot ({:.3} us per container point), \
             a round of {} agents {round:.0} ms, {changes} changes",
            us / a.containers.max(1) as f64,
            a.agents
        );
        results.push(json!({"rules": set, "us_per_snapshot": us, "round_ms": round}));
    }
    let report = json!({"mode": "alerts-eval", "agents": a.agents,
        "containers_per_agent": a.containers, "rounds": a.rounds, "results": results});
    println!("{report}");
    Ok(())
}
