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
        for r in rules {
            let above = r.record.extra.above.unwrap_or(100.0);
            for c in &s.containers {
                let name = c.name.trim_start_matches('/');
                if !r.matches(labels, name) {
                    continue;
                }
                let key: Key = (agent.to_string(), name.to_string(), r.record.name.clone());
                match percent(r.condition(), c, s) {
                    Some(v) if v > above => {
                        let hot = self.hot.entry(key).or_insert(Hot {
                            at: s.at,
                            value: v,
                            labels: labels.clone(),
                        });
                        hot.value = v;
                    }
                    Some(v) if v >= above * HYSTERESIS && self.firing.contains_key(&key) => {}
                    _ => {
                        self.hot.remove(&key);
                        if self.firing.contains_key(&key) {
                            out.push(Change::Resolve(key));
                        }
                    }
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
        self.hot.retain(|k, _| k.0 != agent || present(&k.1));
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
        for ((agent, name, r), h) in &self.hot {
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
