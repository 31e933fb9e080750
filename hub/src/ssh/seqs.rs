//! What the hub has taken from one agent's buffer (agents with
//! `feature::BUFFER`): sequence numbers as sorted inclusive ranges, loaded
//! from the store at the hello, checked for every numbered snapshot and
//! event (one already taken is skipped: a replay cut short and resumed
//! counts nothing twice), and stored then acknowledged to the agent
//! ([`Downstream::BufferAck`]) every [`BUFFER_ACK_EVERY`], or
//! [`BUFFER_ACK_EVERY_LATE`] while late records come. Acknowledged records
//! are always stored first, so an acknowledgement never covers a record a
//! restarted hub would not know it took.

use std::time::{Duration, Instant};

use nextdeploy_shared::protocol::{Downstream, Hello};
use tracing::{debug, warn};

use crate::agents::AgentConn;
use crate::limits::{BUFFER_ACK_EVERY, BUFFER_ACK_EVERY_LATE, MAX_SEQ_RANGES};
use crate::store;
use crate::Services;

/// Sorted, disjoint, inclusive ranges of sequence numbers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ranges(Vec<[u64; 2]>);

impl Ranges {
    /// Read the stored form; anything malformed reads as nothing taken.
    pub fn parse(text: &str) -> Ranges {
        let mut r: Vec<[u64; 2]> = serde_json::from_str(text).unwrap_or_default();
        r.retain(|[a, b]| a <= b);
        r.sort_unstable();
        let mut out = Ranges(r);
        out.normalize();
        while out.0.len() > MAX_SEQ_RANGES {
            out.merge_closest();
        }
        out
    }

    fn normalize(&mut self) {
        let mut out: Vec<[u64; 2]> = Vec::with_capacity(self.0.len());
        for r in std::mem::take(&mut self.0) {
            match out.last_mut() {
                Some(l) if r[0] <= l[1].saturating_add(1) => l[1] = l[1].max(r[1]),
                _ => out.push(r),
            }
        }
        self.0 = out;
    }

    /// Whether `seq` was taken.
    pub fn contains(&self, seq: u64) -> bool {
        let i = self.0.partition_point(|r| r[1] < seq);
        self.0.get(i).is_some_and(|r| r[0] <= seq)
    }

    /// Record `seq` as taken; `false` if it was already.
    pub fn insert(&mut self, seq: u64) -> bool {
        let i = self.0.partition_point(|r| r[1] < seq);
        if self.0.get(i).is_some_and(|r| r[0] <= seq) {
            return false;
        }
        let joins_prev = i > 0 && self.0[i - 1][1] + 1 == seq;
        let joins_next = self.0.get(i).is_some_and(|r| r[0] == seq + 1);
        match (joins_prev, joins_next) {
            (true, true) => {
                self.0[i - 1][1] = self.0[i][1];
                self.0.remove(i);
            }
            (true, false) => self.0[i - 1][1] = seq,
            (false, true) => self.0[i][0] = seq,
            (false, false) => self.0.insert(i, [seq, seq]),
        }
        while self.0.len() > MAX_SEQ_RANGES {
            self.merge_closest();
        }
        true
    }

    /// Merge the two ranges with the smallest gap between them.
    fn merge_closest(&mut self) {
        let Some(i) = (1..self.0.len()).min_by_key(|&i| self.0[i][0] - self.0[i - 1][1]) else {
            return;
        };
        warn!(
            from = self.0[i - 1][1] + 1,
            to = self.0[i][0] - 1,
            "too many gaps in an agent's buffer ranges; counting a gap as taken"
        );
        self.0[i - 1][1] = self.0[i][1];
        self.0.remove(i);
    }

    /// The ranges.
    pub fn as_slice(&self) -> &[[u64; 2]] {
        &self.0
    }

    fn text(&self) -> String {
        serde_json::to_string(&self.0).unwrap_or_else(|_| "[]".into())
    }
}

/// One connection's view of its agent's buffer.
#[derive(Debug)]
pub struct Seqs {
    id: String,
    ranges: Ranges,
    /// Taken since the last store write.
    dirty: bool,
    /// Late records among those.
    late: bool,
    last_flush: Instant,
    /// Records skipped as taken already.
    pub skipped: u64,
}

impl Seqs {
    /// For an agent whose hello names a buffer: what the store says was
    /// taken from it (nothing if the id changed: a fresh or lost buffer).
    pub async fn load(svc: &Services, agent: &str, hello: &Hello) -> Option<Box<Seqs>> {
        let buffer = hello
            .buffer
            .as_ref()
            .filter(|_| hello.supports(nextdeploy_shared::protocol::feature::BUFFER))?;
        if buffer.dropped_snapshots + buffer.dropped_events > 0 {
            warn!(
                dropped_snapshots = buffer.dropped_snapshots,
                dropped_events = buffer.dropped_events,
                "the agent's buffer overflowed while the hub was out of reach"
            );
        }
        let name = agent.to_string();
        let stored = store::blocking(&svc.store, move |s| s.buffer_seqs(&name))
            .await
            .unwrap_or_else(|e| {
                warn!(error = %e, "cannot read what was taken from the agent's buffer");
                None
            });
        let ranges = match stored {
            Some((id, text)) if id == buffer.id => Ranges::parse(&text),
            Some(_) => {
                debug!("the agent's buffer is new: starting its sequence over");
                Ranges::default()
            }
            None => Ranges::default(),
        };
        Some(Box::new(Seqs {
            id: buffer.id.clone(),
            ranges,
            dirty: true,
            late: false,
            last_flush: Instant::now(),
            skipped: 0,
        }))
    }

    /// Whether to take a record numbered `seq` (unnumbered ones always).
    pub fn take(&mut self, seq: Option<u64>, late: bool) -> bool {
        let Some(seq) = seq else { return true };
        if self.ranges.insert(seq) {
            self.dirty = true;
            self.late |= late;
            true
        } else {
            self.skipped += 1;
            debug!(seq, "a record taken already; skipped");
            false
        }
    }

    /// How long until the next store write and acknowledgement.
    pub fn until_due(&self) -> Option<Duration> {
        let every = if self.late {
            BUFFER_ACK_EVERY_LATE
        } else {
            BUFFER_ACK_EVERY
        };
        self.dirty
            .then(|| every.saturating_sub(self.last_flush.elapsed()))
    }

    /// The acknowledgement of what is stored.
    pub fn ack(&self) -> Downstream {
        Downstream::BufferAck {
            id: self.id.clone(),
            ranges: self.ranges.as_slice().to_vec(),
        }
    }

    /// Store the ranges; then, if `conn` is given, acknowledge them.
    pub async fn flush(&mut self, svc: &Services, agent: &str, conn: Option<&AgentConn>) {
        let (name, id, text) = (agent.to_string(), self.id.clone(), self.ranges.text());
        self.last_flush = Instant::now();
        if let Err(e) =
            store::blocking(&svc.store, move |s| s.set_buffer_seqs(&name, &id, &text)).await
        {
            warn!(error = %e, "cannot store what was taken from the agent's buffer");
            return;
        }
        self.dirty = false;
        self.late = false;
        if let Some(conn) = conn {
            if let Err(e) = conn.control.send(&self.ack()).await {
                debug!(error = %e, "buffer acknowledgement not sent");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_join_split_and_stay_bounded() {
        let mut r = Ranges::default();
        for s in [1, 2, 3, 7, 5, 6, 10] {
            assert!(r.insert(s));
        }
        assert!(!r.insert(2));
        assert_eq!(r.as_slice(), &[[1, 3], [5, 7], [10, 10]]);
        assert!(r.insert(4));
        assert_eq!(r.as_slice(), &[[1, 7], [10, 10]]);
        assert!(r.contains(7) && !r.contains(8) && r.contains(10) && !r.contains(0));
        assert_eq!(Ranges::parse(&r.text()), r);
        assert_eq!(Ranges::parse("nonsense"), Ranges::default());
        assert_eq!(Ranges::parse("[[5,1],[3,9],[1,2]]").as_slice(), &[[1, 9]]);
        let mut many = Ranges::default();
        for s in 0..1000u64 {
            many.insert(s * 3 + (s % 7));
        }
        assert!(many.as_slice().len() <= MAX_SEQ_RANGES);
    }
}
