//! The pushing fleet: `sim-agents` child processes (as [`crate::fleet::Fleet`]
//! starts them, [`crate::fleet::AGENTS_PER_PROC`] each, so 10,000 agents stay
//! under a process's open-file limit), here with the snapshot interval given
//! and the snapshots each child has sent read from its counters.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

/// One child's last reported counters.
#[derive(Default)]
struct Counters {
    connected: AtomicU64,
    snapshots: AtomicU64,
    failures: AtomicU64,
}

/// The children; killed when dropped.
pub struct Pushers {
    children: Vec<Child>,
    counters: Vec<Arc<Counters>>,
}

impl Pushers {
    /// Start agents `0..n` against `hub`, each pushing a `containers`-container
    /// snapshot every `interval`.
    pub fn start(
        hub: SocketAddr,
        pin: &str,
        n: usize,
        containers: usize,
        interval: Duration,
    ) -> anyhow::Result<Pushers> {
        let exe = std::env::current_exe()?;
        let mut p = Pushers {
            children: Vec::new(),
            counters: Vec::new(),
        };
        let mut from = 0;
        while from < n {
            let count = crate::fleet::AGENTS_PER_PROC.min(n - from);
            let mut child = Command::new(&exe)
                .args(["sim-agents", "--hub", &hub.to_string(), "--pin", pin])
                .args(["--from", &from.to_string(), "--count", &count.to_string()])
                .args(["--containers", &containers.to_string()])
                .args(["--interval", &interval.as_secs().max(1).to_string()])
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()?;
            let out = child.stdout.take().context("no stdout")?;
            let c = Arc::new(Counters::default());
            let r = c.clone();
            // Ends when the child's stdout closes (the child is killed on drop).
            std::thread::spawn(move || read_counters(out, &r));
            p.children.push(child);
            p.counters.push(c);
            from += count;
        }
        Ok(p)
    }

    fn sum(&self, f: impl Fn(&Counters) -> &AtomicU64) -> u64 {
        self.counters
            .iter()
            .map(|c| f(c).load(Ordering::Relaxed))
            .sum()
    }

    /// Agents connected, as the children last reported.
    pub fn connected(&self) -> u64 {
        self.sum(|c| &c.connected)
    }

    /// Snapshots sent since the start, as the children last reported.
    pub fn snapshots(&self) -> u64 {
        self.sum(|c| &c.snapshots)
    }

    /// Failed connection attempts after the TCP connect.
    pub fn failures(&self) -> u64 {
        self.sum(|c| &c.failures)
    }
}

/// Keep `c` at the `k=v` counters of the last line of `out`.
fn read_counters(out: std::process::ChildStdout, c: &Counters) {
    use std::io::BufRead;
    for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
        for (k, v) in line.split_whitespace().filter_map(|kv| kv.split_once('=')) {
            let v: u64 = v.parse().unwrap_or(0);
            match k {
                "connected" => c.connected.store(v, Ordering::Relaxed),
                "snapshots" => c.snapshots.store(v, Ordering::Relaxed),
                "failures" => c.failures.store(v, Ordering::Relaxed),
                _ => {}
            }
        }
    }
}

impl Drop for Pushers {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
        }
        for c in &mut self.children {
            let _ = c.wait();
        }
    }
}
