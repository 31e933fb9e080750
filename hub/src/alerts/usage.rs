//! `cpu` and `memory`: a container's usage above a rule's threshold in every
//! health snapshot for the rule's `for_s`.
//!
//! CPU is the snapshot's `cpu_percent` (`docker stats`' figure: 100 = one
//! CPU busy). Memory is `mem_usage` over `mem_limit` (the agent reports the
//! host's memory as the limit of a container without one, as `docker stats`
//! does; a zero limit falls back to the snapshot's host memory).
//!
//! Hysteresis: a snapshot at or below the threshold restarts the pending
//! clock; a firing alert resolves only at a snapshot below
//! [`HYSTERESIS`] × threshold, or when the container stops running or goes.

use std::collections::HashMap;

use nextdeploy_shared::docker::{ContainerHealth, HealthSnapshot};
use nextdeploy_shared::labels::Labels;
use nextdeploy_shared::protocol::alerts::Condition;
use serde_json::json;

use super::eval::{firing, Change, Evaluator, Key};
use super::rules::Rule;

/// A firing `cpu`/`memory` alert resolves below this share of its
/// threshold (90 % → below 81 %): a value hovering at the threshold does
/// not fire and resolve at every snapshot.
pub const HYSTERESIS: f64 = 0.9;

/// A container above a threshold since `at`, with the latest value.
#[derive(Debug, Clone)]
pub struct Hot {
    /// Unix time of the first snapshot above.
    pub at: i64,
    /// The latest value, percent.
    pub value: f64,
    /// The agent's labels.
    pub labels: Labels,
}

/// The percent a rule of `cond` reads from a container; `None` when it
/// does not run (or the agent did not say).
pub fn percent(cond: Condition, c: &ContainerHealth, s: &HealthSnapshot) -> Option<f64> {
    if c.state != "running" {
        return None;
    }
    match cond {
        Condition::Cpu => c.cpu_percent,
        Condition::Memory => {
            let limit = match c.mem_limit {
                0 => s.host.as_ref().map(|h| h.mem_total_bytes).unwrap_or(0),
                l => l,
            };
            (limit > 0).then(|| c.mem_usage as f64 * 100.0 / limit as f64)
        }
        _ => None,
    }
}

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

impl Hot {
    fn new(at: i64, value: f64, labels: &Labels) -> Hot {
        Hot {
            at,
            value,
            labels: labels.clone(),
        }
    }
}

/// Pending clocks: agent -> container -> (rule, since when).
pub type HotMap = HashMap<String, HashMap<String, Vec<(String, Hot)>>>;

/// A container's pending clocks, made on first sight; always `Some`.
fn hot_of<'a>(all: &'a mut HotMap, agent: &str, name: &str) -> Option<&'a mut Vec<(String, Hot)>> {
    if !all.contains_key(agent) {
        all.insert(agent.to_string(), HashMap::new());
    }
    let m = all.get_mut(agent)?;
    if !m.contains_key(name) {
        m.insert(name.to_string(), Vec::new());
    }
    m.get_mut(name)
}

/// Drop `agent`'s clocks of (container, rule) that `pick`, and what that
/// leaves empty.
pub fn drop_hot(all: &mut HotMap, agent: &str, pick: impl Fn(&str, &str) -> bool) {
    let Some(m) = all.get_mut(agent) else {
        return;
    };
    for (n, l) in m.iter_mut() {
        l.retain(|(r, _)| !pick(n, r));
    }
    m.retain(|_, l| !l.is_empty());
    if m.is_empty() {
        all.remove(agent);
    }
}

impl Evaluator {
    /// Usage rules on one snapshot: start, keep or drop each pending clock,
    /// resolve what went below the hysteresis or away.
    pub(super) fn usage(
        &mut self,
        agent: &str,
        labels: &Labels,
        s: &HealthSnapshot,
    ) -> Vec<Change> {
        let mut out = Vec::new();
        let rules = self
            .rules
            .iter()
            .filter(|r| matches!(r.condition(), Condition::Cpu | Condition::Memory));
        // The common case, below every threshold with nothing pending or
        // firing for the container, allocates nothing.
        let firing_here = self.has_firing(agent);
        // Entries made below are for containers above: none was pending.
        let agent_hot = self.hot.contains_key(agent);
        for r in rules {
            let above = r.record.extra.above.unwrap_or(100.0);
            let rule = r.record.name.as_str();
            for c in &s.containers {
                let name = c.name.trim_start_matches('/');
                if !r.matches(labels, name) {
                    continue;
                }
                let v = percent(r.condition(), c, s);
                if let Some(v) = v.filter(|v| *v > above) {
                    let Some(list) = hot_of(&mut self.hot, agent, name) else {
                        continue;
                    };
                    match list.iter_mut().find(|(n, _)| n == rule) {
                        Some((_, h)) => h.value = v,
                        None => list.push((rule.to_string(), Hot::new(s.at, v, labels))),
                    }
                    continue;
                }
                let pending = agent_hot
                    && self
                        .hot
                        .get(agent)
                        .and_then(|m| m.get(name))
                        .is_some_and(|l| l.iter().any(|(n, _)| n == rule));
                if !pending && !firing_here {
                    continue;
                }
                let key: Key = (agent.to_string(), name.to_string(), rule.to_string());
                let firing = self.firing.contains_key(&key);
                if firing && v.is_some_and(|v| v >= above * HYSTERESIS) {
                    continue;
                }
                drop_hot(&mut self.hot, agent, |n, r| n == name && r == rule);
                if firing {
                    out.push(Change::Resolve(key));
                }
            }
        }
        if s.docker_available {
            out.extend(self.usage_gone(agent, s));
        }
        out
    }

    /// Pending clocks and firing usage alerts of containers no longer in
    /// `agent`'s snapshot.
    fn usage_gone(&mut self, agent: &str, s: &HealthSnapshot) -> Vec<Change> {
        let present = |n: &str| {
            s.containers
                .iter()
                .any(|c| c.name.trim_start_matches('/') == n)
        };
        drop_hot(&mut self.hot, agent, |n, _| !present(n));
        if !self.has_firing(agent) {
            return Vec::new();
        }
        self.resolve(agent, |c, k| {
            matches!(c, Condition::Cpu | Condition::Memory) && !present(k)
        })
    }

    /// Fire the usage alerts of `rule` that held for its `for_s`.
    pub(super) fn tick_usage(&self, i: usize, rule: &Rule, now: i64) -> Vec<Change> {
        let above = rule.record.extra.above.unwrap_or(100.0);
        let what = match rule.condition() {
            Condition::Cpu => "CPU",
            _ => "memory",
        };
        let field = match rule.condition() {
            Condition::Cpu => "cpu_percent",
            _ => "memory_percent",
        };
        let mut out = Vec::new();
        let all = self.hot.iter().flat_map(|(a, m)| {
            m.iter()
                .flat_map(move |(n, l)| l.iter().map(move |(r, h)| (a, n, r, h)))
        });
        for (agent, name, r, h) in all {
            if r != &rule.record.name || now - h.at < rule.record.for_s as i64 {
                continue;
            }
            let v = round1(h.value);
            let summary = format!(
                "container {name} on {agent}: {what} at {v}% (above {above}% for {}s)",
                now - h.at
            );
            let value = json!({field: v, "above": above, "for_s": now - h.at});
            out.push(firing(
                i, rule, agent, name, &h.labels, summary, value, h.at,
            ));
        }
        out
    }
}

#[cfg(test)]
#[path = "conditions_tests.rs"]
mod tests;
