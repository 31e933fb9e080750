//! The last events of each agent, kept in memory so `events` with `since`
//! can replay what happened before the request (a dashboard opened after a
//! crash), then go on live. Lost when the hub restarts.
//!
//! Every event goes through [`RecentEvents::publish`], which keeps it and
//! sends it on the live bus under one lock; [`RecentEvents::replay`] takes
//! the same lock to subscribe and copy the rings, so each event is either in
//! the copy or on the new subscription, never both and never neither.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use nextdeploy_shared::docker::Event;
use nextdeploy_shared::labels::Labels;
use nextdeploy_shared::time::now_unix_ms;
use tokio::sync::broadcast;

use crate::limits::{EVENT_RING_BYTES, EVENT_RING_LEN};
use crate::telemetry::{HubEvent, Telemetry};

/// What one kept event is counted as: its queue slot (the struct) and each
/// string with an allocator header. A usual container event (a 64-hex id, a
/// name, an image) counts about 400 bytes.
fn cost(e: &Event) -> usize {
    const HEADER: usize = 16;
    let opt = |s: &Option<String>| s.as_ref().map_or(0, |s| s.len() + HEADER);
    std::mem::size_of::<Event>()
        + e.kind.len()
        + e.action.len()
        + 2 * HEADER
        + opt(&e.container_id)
        + opt(&e.container)
        + opt(&e.image)
        + opt(&e.health)
        + opt(&e.signal)
}

/// One agent's ring: at most [`EVENT_RING_LEN`] events and
/// [`EVENT_RING_BYTES`] by [`cost`] (one event alone may be larger), oldest
/// first.
struct Ring {
    labels: Labels,
    events: VecDeque<Event>,
    bytes: usize,
}

impl Ring {
    fn new() -> Ring {
        Ring {
            labels: Labels::new(),
            // Never more: the oldest leaves before a new one comes.
            events: VecDeque::with_capacity(EVENT_RING_LEN),
            bytes: 0,
        }
    }

    fn push(&mut self, e: Event) {
        let c = cost(&e);
        while self.events.len() >= EVENT_RING_LEN
            || (!self.events.is_empty() && self.bytes + c > EVENT_RING_BYTES)
        {
            if let Some(old) = self.events.pop_front() {
                self.bytes -= cost(&old);
            }
        }
        self.bytes += c;
        self.events.push_back(e);
    }
}

/// The rings of every agent that published since the hub started.
#[derive(Default)]
pub struct RecentEvents {
    rings: Mutex<HashMap<String, Ring>>,
}

impl RecentEvents {
    /// Keep `event` in `agent`'s ring and send it to live subscribers.
    pub fn publish(&self, bus: &Telemetry, agent: &str, labels: &Labels, event: Event) {
        let mut rings = crate::sync::lock_or_recover(&self.rings);
        let ring = rings.entry(agent.to_string()).or_insert_with(Ring::new);
        ring.labels.clone_from(labels);
        ring.push(event.clone());
        bus.publish(agent, labels, event);
    }

    /// An agent came online, went offline or met a conflict.
    pub fn agent_event(&self, bus: &Telemetry, agent: &str, labels: &Labels, action: &str) {
        let event = Event {
            kind: "agent".into(),
            action: action.into(),
            time_ms: now_unix_ms(),
            ..Default::default()
        };
        self.publish(bus, agent, labels, event);
    }

    /// Forget a revoked agent's ring.
    pub fn forget(&self, agent: &str) {
        crate::sync::lock_or_recover(&self.rings).remove(agent);
    }

    /// The kept events at or after `since_ms` that `keep` accepts, oldest
    /// first, and a subscription to every event published after them.
    pub fn replay(
        &self,
        bus: &Telemetry,
        since_ms: i64,
        keep: impl Fn(&str, &Labels, &Event) -> bool,
    ) -> (Vec<HubEvent>, broadcast::Receiver<HubEvent>) {
        let rings = crate::sync::lock_or_recover(&self.rings);
        let rx = bus.events.subscribe();
        let mut out: Vec<HubEvent> = rings
            .iter()
            .flat_map(|(agent, ring)| {
                ring.events
                    .iter()
                    .filter(|e| e.time_ms >= since_ms && keep(agent, &ring.labels, e))
                    .map(|e| HubEvent {
                        agent: agent.clone(),
                        labels: ring.labels.clone(),
                        event: e.clone(),
                    })
            })
            .collect();
        drop(rings);
        out.sort_by_key(|h| h.event.time_ms);
        (out, rx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(action: &str, t: i64) -> Event {
        Event {
            kind: "container".into(),
            action: action.into(),
            time_ms: t,
            container: Some("web".into()),
            ..Default::default()
        }
    }

    #[test]
    fn a_ring_keeps_the_newest_events_up_to_its_length() {
        let (r, bus) = (RecentEvents::default(), Telemetry::default());
        for t in 0..(EVENT_RING_LEN as i64 + 10) {
            r.publish(&bus, "a", &Labels::new(), ev("start", t));
        }
        let (got, _) = r.replay(&bus, 0, |_, _, _| true);
        assert_eq!(got.len(), EVENT_RING_LEN);
        assert_eq!(got[0].event.time_ms, 10);
        assert_eq!(
            got[EVENT_RING_LEN - 1].event.time_ms,
            EVENT_RING_LEN as i64 + 9
        );
    }

    #[test]
    fn a_ring_holds_at_most_its_bytes() {
        let (r, bus) = (RecentEvents::default(), Telemetry::default());
        let mut big = ev("die", 1);
        big.image = Some("x".repeat(4096));
        for _ in 0..EVENT_RING_LEN {
            r.publish(&bus, "a", &Labels::new(), big.clone());
        }
        let rings = crate::sync::lock_or_recover(&r.rings);
        let ring = &rings["a"];
        assert!(ring.bytes <= EVENT_RING_BYTES);
        assert_eq!(ring.bytes, ring.events.len() * cost(&big));
        assert_eq!(ring.events.len(), EVENT_RING_BYTES / cost(&big));
        assert!(ring.events.capacity() <= EVENT_RING_LEN.next_power_of_two());
    }

    #[test]
    fn replay_filters_by_time_and_target_and_merges_agents_in_time_order() {
        let (r, bus) = (RecentEvents::default(), Telemetry::default());
        r.publish(&bus, "a", &Labels::new(), ev("start", 5));
        r.publish(&bus, "b", &Labels::new(), ev("die", 3));
        r.publish(&bus, "a", &Labels::new(), ev("stop", 1));
        r.publish(&bus, "b", &Labels::new(), ev("restart", 7));
        let (got, _) = r.replay(&bus, 3, |_, _, _| true);
        let order: Vec<_> = got.iter().map(|h| h.event.time_ms).collect();
        assert_eq!(order, [3, 5, 7]);
        let (only_a, _) = r.replay(&bus, 0, |agent, _, _| agent == "a");
        assert_eq!(only_a.len(), 2);
        r.forget("a");
        let (after, _) = r.replay(&bus, 0, |agent, _, _| agent == "a");
        assert!(after.is_empty());
    }

    #[test]
    fn a_ring_of_usual_events_keeps_all_64() {
        let (r, bus) = (RecentEvents::default(), Telemetry::default());
        let mut e = ev("restart", 1);
        e.container_id = Some("a".repeat(64));
        e.container = Some("web-frontend-12".into());
        e.image = Some("registry.example.com/team/web:2.14.3".into());
        for _ in 0..EVENT_RING_LEN * 2 {
            r.publish(&bus, "a", &Labels::new(), e.clone());
        }
        let (got, _) = r.replay(&bus, 0, |_, _, _| true);
        assert_eq!(got.len(), EVENT_RING_LEN);
    }

    #[tokio::test]
    async fn an_event_after_the_replay_arrives_live_and_only_live() {
        let (r, bus) = (RecentEvents::default(), Telemetry::default());
        r.publish(&bus, "a", &Labels::new(), ev("start", 1));
        let (got, mut rx) = r.replay(&bus, 0, |_, _, _| true);
        r.publish(&bus, "a", &Labels::new(), ev("die", 2));
        assert_eq!(got.len(), 1);
        let live = rx.recv().await.unwrap();
        assert_eq!(live.event.action, "die");
        assert!(rx.try_recv().is_err());
    }
}
