//! `restart_loop`: a container restarted `count` times within `within_s`.
//!
//! What the agent sends: Docker's `die` then `start` for a restart by the
//! restart policy (no `stop` in between: `docker stop` sends `die`, `stop`),
//! `restart` for `docker restart` (after its own `die`, `stop`, `start`),
//! and every snapshot carries Docker's `RestartCount` (restart-policy
//! restarts). A restart is counted from the events at once; the snapshot's
//! count adds the restarts whose events were not seen (the evaluator's queue
//! was full, the agent was reconnecting). The two are reconciled so one
//! restart counts once: a snapshot's increase first consumes the restarts
//! the events already counted, and a restart the snapshot counted first
//! consumes its event if that event comes before the next snapshot.
//!
//! A loop resolves once the container went `within_s` without a restart
//! (or was removed).

use std::collections::{HashMap, VecDeque};

use nextdeploy_shared::docker::HealthSnapshot;
use nextdeploy_shared::labels::Labels;
use nextdeploy_shared::protocol::alerts::Condition;
use serde_json::json;

use super::eval::{firing, Change, Evaluator};
use super::rules::Rule;

/// Restart times kept per container: enough for any sane `count`.
pub const MAX_RESTARTS_KEPT: usize = 256;

/// `restart_loop`'s defaults.
pub const DEFAULT_COUNT: u32 = 3;
/// Default window, seconds.
pub const DEFAULT_WITHIN_S: u64 = 600;

/// One container's recent restarts.
#[derive(Debug, Clone, Default)]
pub struct Restarts {
    /// Unix times, oldest first.
    pub times: VecDeque<i64>,
    /// A `die` with no `stop` or `start` after it yet.
    died: bool,
    /// Docker's restart count in the last snapshot.
    snap_count: Option<i64>,
    /// Restarts counted by events and not yet seen in a snapshot's count
    /// (negative: counted by a snapshot, its event not seen yet).
    ahead: i64,
}

impl Restarts {
    fn push(&mut self, at: i64) {
        if self.times.len() == MAX_RESTARTS_KEPT {
            self.times.pop_front();
        }
        self.times.push_back(at);
    }

    /// Restarts at or after `since`.
    pub fn since(&self, since: i64) -> usize {
        self.times.iter().filter(|t| **t >= since).count()
    }
}

/// A container's entry, made on first sight (the only allocation); always
/// `Some`.
fn restarts_of<'a>(
    all: &'a mut HashMap<String, HashMap<String, Restarts>>,
    agent: &str,
    name: &str,
) -> Option<&'a mut Restarts> {
    if !all.contains_key(agent) {
        all.insert(agent.to_string(), HashMap::new());
    }
    let m = all.get_mut(agent)?;
    if !m.contains_key(name) {
        m.insert(name.to_string(), Restarts::default());
    }
    m.get_mut(name)
}

fn window(rule: &Rule) -> (u32, u64) {
    let x = &rule.record.extra;
    (
        x.count.unwrap_or(DEFAULT_COUNT),
        x.within_s.unwrap_or(DEFAULT_WITHIN_S),
    )
}

impl Evaluator {
    /// A container event's part in restart loops.
    pub(super) fn restart_event(
        &mut self,
        agent: &str,
        labels: &Labels,
        name: &str,
        action: &str,
        container: bool,
        now: i64,
    ) -> Vec<Change> {
        let watched = self
            .rules
            .iter()
            .any(|r| r.condition() == Condition::RestartLoop);
        if !container || name.is_empty() || !watched {
            return Vec::new();
        }
        let Some(r) = restarts_of(&mut self.restarts, agent, name) else {
            return Vec::new();
        };
        match action {
            "die" => r.died = true,
            "stop" => r.died = false,
            // `docker restart`: not in Docker's restart count.
            "restart" => r.push(now),
            // A start right after a death: the restart policy's.
            "start" if std::mem::take(&mut r.died) => {
                if r.ahead >= 0 {
                    r.push(now);
                }
                r.ahead += 1;
            }
            _ => return Vec::new(),
        }
        if !matches!(action, "restart" | "start") {
            return Vec::new();
        }
        self.restart_check(agent, labels, name, now)
    }

    /// Snapshots' restart counts: the restarts no event told of.
    pub(super) fn restart_counts(
        &mut self,
        agent: &str,
        labels: &Labels,
        s: &HealthSnapshot,
    ) -> Vec<Change> {
        if !self
            .rules
            .iter()
            .any(|r| r.condition() == Condition::RestartLoop)
        {
            return Vec::new();
        }
        if !self.restarts.contains_key(agent) {
            self.restarts.insert(agent.to_string(), HashMap::new());
        }
        let Some(m) = self.restarts.get_mut(agent) else {
            return Vec::new();
        };
        let mut missed_in = Vec::new();
        for c in &s.containers {
            let name = c.name.trim_start_matches('/');
            if !m.contains_key(name) {
                m.insert(name.to_string(), Restarts::default());
            }
            let Some(r) = m.get_mut(name) else { continue };
            // An event the previous snapshot counted and that never came.
            r.ahead = r.ahead.max(0);
            let prev = r.snap_count.replace(c.restarts);
            let Some(prev) = prev else { continue };
            let d = c.restarts - prev;
            if d <= 0 {
                continue;
            }
            let missed = d - r.ahead.min(d);
            for _ in 0..missed {
                r.push(s.at);
            }
            r.ahead -= d;
            if missed > 0 {
                missed_in.push(name);
            }
        }
        missed_in
            .into_iter()
            .flat_map(|name| self.restart_check(agent, labels, name, s.at))
            .collect()
    }

    /// Fire the restart-loop rules `agent`'s container `name` now meets.
    fn restart_check(&self, agent: &str, labels: &Labels, name: &str, now: i64) -> Vec<Change> {
        let Some(r) = self.restarts.get(agent).and_then(|m| m.get(name)) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, rule) in self.rules.iter().enumerate() {
            if rule.condition() != Condition::RestartLoop || !rule.matches(labels, name) {
                continue;
            }
            let (count, within) = window(rule);
            let n = r.since(now - within as i64);
            let key = (
                agent.to_string(),
                name.to_string(),
                rule.record.name.clone(),
            );
            if n < count as usize || self.firing.contains_key(&key) {
                continue;
            }
            let summary =
                format!("container {name} on {agent} restarted {n} times within {within}s");
            let value = json!({"restarts": n, "within_s": within, "restart_count": r.snap_count});
            out.push(firing(i, rule, agent, name, labels, summary, value, now));
        }
        out
    }

    /// Resolve `rule`'s loops with no restart within its window.
    pub(super) fn tick_restarts(&self, rule: &Rule, now: i64) -> Vec<Change> {
        let (_, within) = window(rule);
        self.firing
            .iter()
            .filter(|(k, _)| k.2 == rule.record.name)
            .filter(|(k, _)| {
                self.restarts
                    .get(&k.0)
                    .and_then(|m| m.get(&k.1))
                    .and_then(|r| r.times.back())
                    .is_none_or(|last| now - last >= within as i64)
            })
            .map(|(k, _)| Change::Resolve(k.clone()))
            .collect()
    }
}
