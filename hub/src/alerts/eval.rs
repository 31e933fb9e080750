//! The evaluator's state machine, without I/O: events, snapshots and ticks
//! in, [`Change`]s (an alert to fire, one to resolve) out. The task in
//! [`super::run`] writes the changes to the store.
//!
//! State is bounded by the fleet: one entry per unhealthy, hot or restarting
//! container and per offline agent or engine, and one per firing alert.
//! The conditions on usage are in [`super::usage`], restart loops in
//! [`super::restarts`].

use std::collections::{BTreeMap, HashMap};

use nextdeploy_shared::docker::{Event, HealthSnapshot};
use nextdeploy_shared::labels::Labels;
use nextdeploy_shared::protocol::alerts::{AlertInfo, Condition};
use nextdeploy_shared::protocol::deploy::{DeployKind, DeployOutcome, Outcome};
use serde_json::{json, Value};

use super::rules::Rule;

/// An alert's key: server, container (`""` for none), rule. Ordered by
/// server first, so one agent's alerts are a range.
pub type Key = (String, String, String);

/// What the evaluator decided.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Start firing.
    Fire(Firing),
    /// Resolve the firing alert of this key.
    Resolve(Key),
}

/// An alert to start.
#[derive(Debug, Clone, PartialEq)]
pub struct Firing {
    /// Its key.
    pub key: Key,
    /// The rule's index in [`Evaluator::rules`].
    pub rule: usize,
    /// The agent's labels.
    pub labels: Labels,
    /// One line for people.
    pub summary: String,
    /// What was seen.
    pub value: Value,
    /// Unix time it started.
    pub at: i64,
}

/// Since when something has been wrong, and on an agent with which labels.
#[derive(Debug, Clone)]
pub(super) struct Since {
    pub(super) at: i64,
    pub(super) labels: Labels,
}

/// Rules, firing alerts and pending `--for` conditions.
#[derive(Debug, Default)]
pub struct Evaluator {
    /// The rules.
    pub rules: Vec<Rule>,
    /// Alerts firing now.
    pub firing: BTreeMap<Key, AlertInfo>,
    unhealthy: HashMap<(String, String), Since>,
    offline: HashMap<String, Since>,
    /// `cpu` and `memory` above their threshold: agent -> (container,
    /// rule) -> since when (by agent, so a snapshot of an agent with none
    /// allocates nothing).
    pub(super) hot: super::usage::HotMap,
    /// Restarts seen per agent and container, for `restart_loop`.
    pub(super) restarts: HashMap<String, HashMap<String, super::restarts::Restarts>>,
    /// Agents whose Docker engine is down, and its last error.
    pub(super) docker_down: HashMap<String, (Since, Option<String>)>,
}

/// A signal's name from a death's exit code (128 + n, as shells report it).
pub fn signal_of(exit_code: i64) -> Option<&'static str> {
    Some(match exit_code - 128 {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        6 => "SIGABRT",
        9 => "SIGKILL",
        11 => "SIGSEGV",
        13 => "SIGPIPE",
        15 => "SIGTERM",
        _ => return None,
    })
}

/// An alert from an event replayed from the agent's buffer (it happened
/// while the link was down) says so in its value: `"late": true`.
fn mark_late(value: &mut Value, e: &Event) {
    if e.late {
        value["late"] = Value::Bool(true);
    }
}

impl Evaluator {
    /// An event of `agent` (container or agent kind).
    pub fn event(&mut self, agent: &str, labels: &Labels, e: &Event, now: i64) -> Vec<Change> {
        let name = e.container.as_deref().unwrap_or("").trim_start_matches('/');
        let mut out =
            self.restart_event(agent, labels, name, &e.action, e.kind == "container", now);
        out.extend(self.event_changes(agent, labels, e, name, now));
        out
    }

    fn event_changes(
        &mut self,
        agent: &str,
        labels: &Labels,
        e: &Event,
        name: &str,
        now: i64,
    ) -> Vec<Change> {
        match (e.kind.as_str(), e.action.as_str()) {
            ("agent", "offline") => {
                let since = Since {
                    at: now,
                    labels: labels.clone(),
                };
                self.offline.entry(agent.to_string()).or_insert(since);
                Vec::new()
            }
            ("agent", "online") => {
                self.offline.remove(agent);
                self.resolve(agent, |c, k| c == Condition::AgentOffline && k.is_empty())
            }
            ("container", "die") => match e.exit_code {
                Some(code) if code != 0 => {
                    let mut value = json!({"exit_code": code, "signal": signal_of(code)});
                    mark_late(&mut value, e);
                    let summary = format!("container {name} on {agent} died with exit code {code}");
                    self.fire_on(
                        Condition::ContainerDied,
                        agent,
                        labels,
                        name,
                        summary,
                        value,
                        now,
                    )
                }
                _ => Vec::new(),
            },
            ("container", "oom") => {
                let summary = format!("container {name} on {agent} was killed: out of memory");
                let mut value = json!({"oom": true});
                mark_late(&mut value, e);
                self.fire_on(Condition::Oom, agent, labels, name, summary, value, now)
            }
            ("container", "start") => self.resolve(agent, |c, k| {
                matches!(c, Condition::ContainerDied | Condition::Oom) && k == name
            }),
            ("container", "health_status") => {
                let health = e.health.as_deref().unwrap_or("");
                self.health(agent, labels, name, health, now)
            }
            ("container", "destroy") => {
                self.unhealthy
                    .remove(&(agent.to_string(), name.to_string()));
                if let Some(m) = self.restarts.get_mut(agent) {
                    m.remove(name);
                }
                super::usage::drop_hot(&mut self.hot, agent, |n, _| n == name);
                self.resolve(agent, |_, k| k == name)
            }
            _ => Vec::new(),
        }
    }

    /// A container's health is now `health`.
    fn health(
        &mut self,
        agent: &str,
        labels: &Labels,
        name: &str,
        h: &str,
        at: i64,
    ) -> Vec<Change> {
        let key = (agent.to_string(), name.to_string());
        if h == "unhealthy" {
            let since = Since {
                at,
                labels: labels.clone(),
            };
            self.unhealthy.entry(key).or_insert(since);
            return Vec::new();
        }
        if self.unhealthy.remove(&key).is_none() && h != "healthy" {
            return Vec::new();
        }
        self.resolve(agent, |c, k| c == Condition::Unhealthy && k == name)
    }

    /// A health snapshot of `agent`: unhealthy containers start their
    /// clocks, healthy or gone ones resolve, running ones resolve deaths.
    pub fn snapshot(&mut self, agent: &str, labels: &Labels, s: &HealthSnapshot) -> Vec<Change> {
        let mut out = self.docker_state(agent, labels, s);
        out.extend(self.usage(agent, labels, s));
        out.extend(self.restart_counts(agent, labels, s));
        for c in &s.containers {
            let name = c.name.trim_start_matches('/');
            if let Some(h) = c.health.as_deref() {
                out.extend(self.health(agent, labels, name, h, s.at));
            }
            if c.state == "running" {
                out.extend(self.resolve(agent, |cond, k| {
                    matches!(cond, Condition::ContainerDied | Condition::Oom) && k == name
                }));
            }
        }
        if !s.docker_available {
            return out;
        }
        let present = |n: &str| {
            s.containers
                .iter()
                .any(|c| c.name.trim_start_matches('/') == n)
        };
        let gone: Vec<String> = self
            .unhealthy
            .keys()
            .filter(|(a, n)| a == agent && !present(n))
            .map(|(_, n)| n.clone())
            .collect();
        for name in gone {
            self.unhealthy.remove(&(agent.to_string(), name.clone()));
            out.extend(self.resolve(agent, |c, k| c == Condition::Unhealthy && k == name));
        }
        out
    }

    /// Agents offline since `at` (shortly after the hub's start, for
    /// enrolled agents not connected then).
    pub fn assume_offline(&mut self, agent: &str, labels: &Labels, at: i64) {
        let since = Since {
            at,
            labels: labels.clone(),
        };
        self.offline.entry(agent.to_string()).or_insert(since);
    }

    /// Fire the `--for` conditions that have held long enough by `now`, and
    /// resolve restart loops that calmed down.
    pub fn tick(&mut self, now: i64) -> Vec<Change> {
        let mut out = Vec::new();
        for (i, rule) in self.rules.iter().enumerate() {
            let held = |since: i64| now - since >= rule.record.for_s as i64;
            match rule.condition() {
                Condition::Unhealthy => {
                    for ((agent, name), s) in &self.unhealthy {
                        if held(s.at) && rule.matches(&s.labels, name) {
                            let summary = format!("container {name} on {agent} is unhealthy");
                            let value = json!({"health": "unhealthy", "for_s": now - s.at});
                            out.push(firing(
                                i, rule, agent, name, &s.labels, summary, value, s.at,
                            ));
                        }
                    }
                }
                Condition::AgentOffline => {
                    for (agent, s) in &self.offline {
                        if held(s.at) && rule.matches_agent(&s.labels) {
                            let summary = format!("agent {agent} is offline");
                            let value = json!({"offline_s": now - s.at});
                            out.push(firing(i, rule, agent, "", &s.labels, summary, value, s.at));
                        }
                    }
                }
                Condition::DockerUnavailable => out.extend(self.tick_docker(i, rule, now)),
                Condition::Cpu | Condition::Memory => out.extend(self.tick_usage(i, rule, now)),
                Condition::RestartLoop => out.extend(self.tick_restarts(rule, now)),
                Condition::ContainerDied | Condition::Oom | Condition::DeployFailed => {}
            }
        }
        out.retain(|c| !matches!(c, Change::Fire(f) if self.firing.contains_key(&f.key)));
        out
    }

    /// An agent's Docker engine state from its snapshot.
    fn docker_state(&mut self, agent: &str, labels: &Labels, s: &HealthSnapshot) -> Vec<Change> {
        if s.docker_available {
            self.docker_down.remove(agent);
            return self.resolve(agent, |c, k| {
                c == Condition::DockerUnavailable && k.is_empty()
            });
        }
        let since = Since {
            at: s.at,
            labels: labels.clone(),
        };
        let e = self
            .docker_down
            .entry(agent.to_string())
            .or_insert((since, None));
        e.1 = s.docker_error.clone();
        Vec::new()
    }

    fn tick_docker(&self, i: usize, rule: &Rule, now: i64) -> Vec<Change> {
        let mut out = Vec::new();
        for (agent, (s, error)) in &self.docker_down {
            if now - s.at >= rule.record.for_s as i64 && rule.matches_agent(&s.labels) {
                let why = error.as_deref().unwrap_or("no answer");
                let summary = format!("Docker is unavailable on {agent}: {why}");
                let value = json!({"down_s": now - s.at, "error": error});
                out.push(firing(i, rule, agent, "", &s.labels, summary, value, s.at));
            }
        }
        out
    }

    /// A deploy or rollback of `agent` finished: a failure fires
    /// `deploy_failed` for its container, a success resolves it.
    pub fn deploy(
        &mut self,
        agent: &str,
        labels: &Labels,
        d: &DeployOutcome,
        now: i64,
    ) -> Vec<Change> {
        match d.outcome {
            Outcome::Failed | Outcome::RolledBack => {
                let failed = d
                    .containers
                    .iter()
                    .find(|c| matches!(c.outcome, Outcome::Failed | Outcome::RolledBack))
                    .or(d.containers.first());
                let name = failed.map(|c| c.container.as_str()).unwrap_or("");
                let error = failed.and_then(|c| c.error.clone()).or(d.error.clone());
                let kind = match d.kind {
                    Some(DeployKind::Rollback) => "rollback",
                    Some(DeployKind::Deploy) | None => "deploy",
                };
                let what = if name.is_empty() {
                    String::new()
                } else {
                    format!(" of {name}")
                };
                let summary = format!(
                    "{kind} {}{what} on {agent} {}: {}",
                    d.deploy_id,
                    d.outcome.as_str().replace('_', " "),
                    error.as_deref().unwrap_or("no error given")
                );
                let value = json!({
                    "deploy_id": d.deploy_id,
                    "outcome": d.outcome.as_str(),
                    "kind": kind,
                    "image": d.image,
                    "failed_step": failed.and_then(|c| c.failed_step.clone()),
                    "error": error,
                });
                self.fire_on(
                    Condition::DeployFailed,
                    agent,
                    labels,
                    name,
                    summary,
                    value,
                    now,
                )
            }
            Outcome::Succeeded => {
                let mut out = Vec::new();
                for c in &d.containers {
                    let n = c.container.as_str();
                    out.extend(
                        self.resolve(agent, |cond, k| cond == Condition::DeployFailed && k == n),
                    );
                }
                out
            }
            Outcome::Unknown | Outcome::Untouched => Vec::new(),
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn fire_on(
        &self,
        cond: Condition,
        agent: &str,
        labels: &Labels,
        name: &str,
        summary: String,
        value: Value,
        at: i64,
    ) -> Vec<Change> {
        let mut out = Vec::new();
        for (i, rule) in self.rules.iter().enumerate() {
            if rule.condition() == cond && rule.matches(labels, name) {
                let f = firing(
                    i,
                    rule,
                    agent,
                    name,
                    labels,
                    summary.clone(),
                    value.clone(),
                    at,
                );
                if let Change::Fire(ref x) = f {
                    if self.firing.contains_key(&x.key) {
                        continue;
                    }
                }
                out.push(f);
            }
        }
        out
    }

    /// Whether `agent` has a firing alert.
    pub(super) fn has_firing(&self, agent: &str) -> bool {
        let from = (agent.to_string(), String::new(), String::new());
        self.firing
            .range(from..)
            .next()
            .is_some_and(|(k, _)| k.0 == agent)
    }

    /// Resolve `agent`'s firing alerts whose condition and container pass.
    pub(super) fn resolve(
        &self,
        agent: &str,
        pick: impl Fn(Condition, &str) -> bool,
    ) -> Vec<Change> {
        let from = (agent.to_string(), String::new(), String::new());
        self.firing
            .range(from..)
            .take_while(|(k, _)| k.0 == agent)
            .filter(|(k, a)| pick(a.condition, &k.1))
            .map(|(k, _)| Change::Resolve(k.clone()))
            .collect()
    }
}

#[allow(clippy::too_many_arguments)]
pub(super) fn firing(
    i: usize,
    rule: &Rule,
    agent: &str,
    name: &str,
    labels: &Labels,
    summary: String,
    value: Value,
    at: i64,
) -> Change {
    Change::Fire(Firing {
        key: (agent.into(), name.into(), rule.record.name.clone()),
        rule: i,
        labels: labels.clone(),
        summary,
        value,
        at,
    })
}

#[cfg(test)]
#[path = "eval_tests.rs"]
mod tests;
