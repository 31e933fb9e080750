//! Bounds on a pushed health snapshot, applied before it is kept anywhere:
//! containers per snapshot, length of every string field, the host's figures
//! clamped to what a host can show, and the snapshot's time clamped to the
//! hub's clock. A snapshot's bytes are bounded earlier,
//! by the control frame's cap
//! ([`MAX_SNAPSHOT_BYTES`](crate::limits::MAX_SNAPSHOT_BYTES)).

use nextdeploy_shared::docker::{CompactString, ContainerHealth, HealthSnapshot, HostSample};

use crate::limits::{MAX_CLOCK_SKEW, MAX_SNAPSHOT_CONTAINERS, MAX_SNAPSHOT_FIELD_LEN};

/// Fixed bytes a queued container costs beside its strings (the struct).
const CONTAINER_COST: usize = std::mem::size_of::<ContainerHealth>();

/// What [`bound`] changed, for one warning per snapshot.
#[derive(Debug, Default, PartialEq)]
pub struct Trimmed {
    /// Containers dropped past [`MAX_SNAPSHOT_CONTAINERS`].
    pub containers: usize,
    /// String fields cut to [`MAX_SNAPSHOT_FIELD_LEN`], and host figures
    /// clamped (see [`clamp_host`]).
    pub fields: usize,
    /// The agent's time, when it was replaced by the hub's.
    pub clamped_from: Option<i64>,
}

impl Trimmed {
    /// Whether anything was changed.
    pub fn any(&self) -> bool {
        self.containers > 0 || self.fields > 0 || self.clamped_from.is_some()
    }
}

/// A snapshot's string field: a `String` or a [`CompactString`].
trait Text: std::ops::Deref<Target = str> {
    fn truncate_to(&mut self, len: usize);
}

impl Text for String {
    fn truncate_to(&mut self, len: usize) {
        self.truncate(len);
    }
}

impl Text for CompactString {
    fn truncate_to(&mut self, len: usize) {
        self.truncate(len);
    }
}

/// Cut `s` to at most [`MAX_SNAPSHOT_FIELD_LEN`] bytes at a character boundary.
fn cut<S: Text>(s: &mut S, n: &mut usize) {
    if s.len() > MAX_SNAPSHOT_FIELD_LEN {
        let mut end = MAX_SNAPSHOT_FIELD_LEN;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate_to(end);
        *n += 1;
    }
}

fn cut_opt<S: Text>(s: &mut Option<S>, n: &mut usize) {
    if let Some(s) = s {
        cut(s, n);
    }
}

/// Apply the bounds to `snap` in place, with `now` the hub's unix time.
pub fn bound(snap: &mut HealthSnapshot, now: i64) -> Trimmed {
    let mut t = Trimmed::default();
    if snap.containers.len() > MAX_SNAPSHOT_CONTAINERS {
        t.containers = snap.containers.len() - MAX_SNAPSHOT_CONTAINERS;
        snap.containers.truncate(MAX_SNAPSHOT_CONTAINERS);
    }
    cut_opt(&mut snap.docker_error, &mut t.fields);
    for c in &mut snap.containers {
        cut(&mut c.id, &mut t.fields);
        for s in [&mut c.name, &mut c.image, &mut c.state] {
            cut(s, &mut t.fields);
        }
        for s in [&mut c.health, &mut c.started_at, &mut c.stats_from] {
            cut_opt(s, &mut t.fields);
        }
    }
    if let Some(h) = &mut snap.host {
        t.fields += clamp_host(h);
    }
    if snap.at.abs_diff(now) > MAX_CLOCK_SKEW.as_secs() {
        t.clamped_from = Some(snap.at);
        snap.at = now;
    }
    t
}

/// Make a pushed host sample one a host can have, counting the figures
/// changed: a CPU share outside 0..=100 or not finite is clamped (NaN
/// dropped), a load average not finite or negative becomes 0, and memory in
/// use is at most the total. (JSON has no NaN or infinity, but a hostile or
/// broken agent can send 1e308 or -5.)
pub fn clamp_host(h: &mut HostSample) -> usize {
    let mut n = 0;
    if let Some(p) = h.cpu_percent {
        let fixed = (!p.is_nan()).then(|| p.clamp(0.0, 100.0));
        if fixed != Some(p) {
            h.cpu_percent = fixed;
            n += 1;
        }
    }
    for l in [&mut h.load1, &mut h.load5, &mut h.load15] {
        if !l.is_finite() || *l < 0.0 {
            *l = 0.0;
            n += 1;
        }
    }
    if h.mem_used_bytes > h.mem_total_bytes {
        h.mem_used_bytes = h.mem_total_bytes;
        n += 1;
    }
    n
}

/// Bytes a bounded snapshot costs while queued (an estimate: its strings and
/// a fixed cost per container), for the queue's byte budget.
pub fn cost(snap: &HealthSnapshot) -> usize {
    let opt = |s: Option<&str>| s.map_or(0, str::len);
    let containers: usize = snap
        .containers
        .iter()
        .map(|c| {
            CONTAINER_COST
                + c.id.len()
                + c.name.len()
                + c.image.len()
                + c.state.len()
                + opt(c.health.as_deref())
                + opt(c.started_at.as_deref())
                + opt(c.stats_from.as_deref())
        })
        .sum();
    std::mem::size_of::<HealthSnapshot>() + opt(snap.docker_error.as_deref()) + containers
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(i: usize) -> ContainerHealth {
        ContainerHealth {
            id: format!("{i:064x}"),
            name: format!("app-{i}").into(),
            state: "running".into(),
            ..Default::default()
        }
    }

    #[test]
    fn containers_past_the_cap_are_dropped() {
        let now = 1_800_000_000;
        let mut s = HealthSnapshot {
            at: now,
            containers: (0..MAX_SNAPSHOT_CONTAINERS + 7).map(container).collect(),
            ..Default::default()
        };
        let t = bound(&mut s, now);
        assert_eq!(s.containers.len(), MAX_SNAPSHOT_CONTAINERS);
        assert_eq!(t.containers, 7);
        assert_eq!(t.fields, 0);
        assert_eq!(t.clamped_from, None);
        // The first ones are kept, in order.
        assert_eq!(s.containers[0].name, "app-0");
    }

    #[test]
    fn long_fields_are_cut_at_a_character_boundary() {
        let mut c = container(1);
        c.name = "é".repeat(MAX_SNAPSHOT_FIELD_LEN).into(); // two bytes each
        c.image = "x".repeat(MAX_SNAPSHOT_FIELD_LEN + 1).into();
        c.health = Some("h".repeat(10 * MAX_SNAPSHOT_FIELD_LEN).into());
        let mut s = HealthSnapshot {
            at: 100,
            docker_error: Some("e".repeat(MAX_SNAPSHOT_FIELD_LEN * 3)),
            containers: vec![c],
            ..Default::default()
        };
        let before = cost(&s);
        let t = bound(&mut s, 100);
        assert_eq!(t.fields, 4);
        let c = &s.containers[0];
        assert_eq!(c.name.len(), MAX_SNAPSHOT_FIELD_LEN);
        assert_eq!(c.image.len(), MAX_SNAPSHOT_FIELD_LEN);
        assert_eq!(
            c.health.as_deref().map(str::len),
            Some(MAX_SNAPSHOT_FIELD_LEN)
        );
        assert!(cost(&s) < before);
        // An odd cut inside a two-byte character backs off one byte.
        let mut odd = HealthSnapshot {
            at: 100,
            containers: vec![ContainerHealth {
                name: format!("a{}", "é".repeat(MAX_SNAPSHOT_FIELD_LEN)).into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        bound(&mut odd, 100);
        assert_eq!(odd.containers[0].name.len(), MAX_SNAPSHOT_FIELD_LEN - 1);
    }

    #[test]
    fn host_figures_are_clamped_to_what_a_host_can_show() {
        let good = HostSample {
            cpu_percent: Some(37.5),
            cpus: 4,
            mem_used_bytes: 3 << 30,
            mem_total_bytes: 8 << 30,
            load1: 1.5,
            load5: 0.0,
            load15: 2.0,
            uptime_s: 60,
        };
        let mut s = HealthSnapshot {
            at: 100,
            host: Some(good.clone()),
            ..Default::default()
        };
        assert!(!bound(&mut s, 100).any());
        assert_eq!(s.host.as_ref(), Some(&good));
        for (cpu, want) in [
            (Some(100.5), Some(100.0)),
            (Some(-0.1), Some(0.0)),
            (Some(f64::INFINITY), Some(100.0)),
            (Some(f64::NEG_INFINITY), Some(0.0)),
            (Some(f64::NAN), None),
            (Some(1e308), Some(100.0)),
        ] {
            let mut h = HostSample {
                cpu_percent: cpu,
                load1: f64::NAN,
                load5: -1.0,
                load15: f64::INFINITY,
                mem_used_bytes: 9 << 30,
                ..good.clone()
            };
            assert_eq!(clamp_host(&mut h), 5, "{cpu:?}");
            assert_eq!(h.cpu_percent, want);
            assert_eq!([h.load1, h.load5, h.load15], [0.0; 3]);
            assert_eq!(h.mem_used_bytes, h.mem_total_bytes);
        }
        // Through `bound`: counted with the fields, so it warns.
        s.host.as_mut().unwrap().cpu_percent = Some(250.0);
        let t = bound(&mut s, 100);
        assert_eq!(t.fields, 1);
        assert_eq!(s.host.unwrap().cpu_percent, Some(100.0));
    }

    #[test]
    fn time_outside_the_skew_is_the_hubs() {
        let now = 1_800_000_000;
        let skew = MAX_CLOCK_SKEW.as_secs() as i64;
        for (at, want) in [
            (now, now),
            (now - skew, now - skew),
            (now + skew, now + skew),
            (now - skew - 1, now),
            (now + skew + 1, now),
            (0, now),
            (i64::MIN, now),
            (i64::MAX, now),
        ] {
            let mut s = HealthSnapshot {
                at,
                ..Default::default()
            };
            let t = bound(&mut s, now);
            assert_eq!(s.at, want, "at {at}");
            assert_eq!(t.clamped_from.is_some(), at != want, "at {at}");
        }
    }
}
