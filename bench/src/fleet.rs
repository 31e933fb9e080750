//! The simulated fleet: enrolled identities in a store template, and the
//! child processes (`sim-agents`) that run the agents. A process here may hold
//! at most 20,000 open files, so the agents are spread over several children.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use nextdeploy_hub::store::sqlite::SqliteStore;
use nextdeploy_hub::store::{JoinTokenRecord, Store};
use nextdeploy_shared::labels::Labels;
use nextdeploy_shared::{keys, token};
use russh::keys::ssh_key::private::Ed25519Keypair;
use russh::keys::PrivateKey;

/// Agents per `sim-agents` child: well under the open-file limit.
pub const AGENTS_PER_PROC: usize = 4000;

/// Name of simulated agent `i`.
pub fn sim_name(i: usize) -> String {
    format!("sim-{i:05}")
}

/// The key of simulated agent `i`: derived from `i`, so the children need no key files.
pub fn sim_key(i: usize) -> PrivateKey {
    let mut seed = [0x5au8; 32];
    seed[..8].copy_from_slice(&(i as u64).to_le_bytes());
    PrivateKey::from(Ed25519Keypair::from_seed(&seed))
}

/// Create `dir` with a host key and a store with agents `0..n` enrolled
/// (label `bench=sim`); returns the hub's fingerprint for the agents' pin.
pub fn enrol(dir: &Path, n: usize) -> anyhow::Result<String> {
    enrol_labelled(dir, n, |_| Labels::new())
}

/// Labels that let a selector pick a share of the fleet: `shard=s00`..`s99`
/// (1 % each), `zone=z0`..`z9` (10 %), `env=prod` or `env=staging` (half).
pub fn varied_labels(i: usize) -> Labels {
    Labels::from([
        ("shard".to_string(), format!("s{:02}", i % 100)),
        ("zone".to_string(), format!("z{}", i % 10)),
        (
            "env".to_string(),
            if i.is_multiple_of(2) {
                "prod"
            } else {
                "staging"
            }
            .to_string(),
        ),
    ])
}

/// [`enrol`], agent `i` with `extra(i)`'s labels besides `bench=sim`.
pub fn enrol_labelled(dir: &Path, n: usize, extra: fn(usize) -> Labels) -> anyhow::Result<String> {
    std::fs::create_dir_all(dir)?;
    let (host, _) = nextdeploy_hub::serve::host_key(dir)?;
    let pin = keys::fingerprint(host.public_key());
    let store = SqliteStore::open(&dir.join(nextdeploy_hub::serve::STORE_FILE))?;
    let now = nextdeploy_shared::time::now_unix();
    for i in 0..n {
        let key = sim_key(i);
        let id = token::new_id();
        store.insert_join_token(&JoinTokenRecord {
            id: id.clone(),
            secret_hash: token::hash_secret("s"),
            name: sim_name(i),
            labels: {
                let mut l = extra(i);
                l.insert("bench".to_string(), "sim".to_string());
                l
            },
            created_at: 0,
            expires_at: i64::MAX,
            used_at: None,
            created_by: "bench".into(),
        })?;
        let line = keys::public_line(key.public_key());
        let fp = keys::fingerprint(key.public_key());
        store
            .consume_join_token(&id, "s", &line, &fp, now)?
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    Ok(pin)
}

/// Copy a template data dir (store closed) to a fresh one.
pub fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    let _ = std::fs::remove_dir_all(to);
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        if e.file_type()?.is_file() {
            std::fs::copy(e.path(), to.join(e.file_name()))
                .with_context(|| format!("copy {}", e.path().display()))?;
        }
    }
    Ok(())
}

/// Counters one child reports on its stdout.
#[derive(Default)]
pub struct ChildStats {
    pub connected: AtomicU64,
    pub failures: AtomicU64,
    pub refused: AtomicU64,
    pub reset: AtomicU64,
}

/// The `sim-agents` children; killed when dropped.
pub struct Fleet {
    children: Vec<Child>,
    stats: Vec<Arc<ChildStats>>,
}

impl Fleet {
    /// Start agents `0..n` against `hub`, `containers` per health snapshot
    /// (0: heartbeats only).
    pub fn start(hub: SocketAddr, pin: &str, n: usize, containers: usize) -> anyhow::Result<Fleet> {
        Fleet::start_range(&[hub], pin, (0, n), containers)
    }

    /// Start agents `from..to` against the first of `hubs` (the others
    /// tried in turn after a failed attempt).
    pub fn start_range(
        hubs: &[SocketAddr],
        pin: &str,
        (mut from, to): (usize, usize),
        containers: usize,
    ) -> anyhow::Result<Fleet> {
        let exe = std::env::current_exe()?;
        let mut fleet = Fleet {
            children: Vec::new(),
            stats: Vec::new(),
        };
        let hub = hubs.first().context("no hub")?.to_string();
        let also: Vec<String> = hubs[1..].iter().map(|h| h.to_string()).collect();
        while from < to {
            let count = AGENTS_PER_PROC.min(to - from);
            let mut cmd = Command::new(&exe);
            cmd.args(["sim-agents", "--hub", &hub, "--pin", pin]);
            if !also.is_empty() {
                cmd.args(["--also", &also.join(",")]);
            }
            let mut child = cmd
                .args(["--from", &from.to_string(), "--count", &count.to_string()])
                .args(["--containers", &containers.to_string()])
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()?;
            let out = child.stdout.take().context("no stdout")?;
            let stats = Arc::new(ChildStats::default());
            let s = stats.clone();
            std::thread::spawn(move || {
                use std::io::BufRead;
                for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                    for kv in line.split_whitespace() {
                        let Some((k, v)) = kv.split_once('=') else {
                            continue;
                        };
                        let v: u64 = v.parse().unwrap_or(0);
                        match k {
                            "connected" => s.connected.store(v, Ordering::Relaxed),
                            "failures" => s.failures.store(v, Ordering::Relaxed),
                            "refused" => s.refused.store(v, Ordering::Relaxed),
                            "reset" => s.reset.store(v, Ordering::Relaxed),
                            _ => {}
                        }
                    }
                }
            });
            fleet.children.push(child);
            fleet.stats.push(stats);
            from += count;
        }
        Ok(fleet)
    }

    fn sum(&self, f: impl Fn(&ChildStats) -> &AtomicU64) -> u64 {
        self.stats
            .iter()
            .map(|s| f(s).load(Ordering::Relaxed))
            .sum()
    }

    /// Agents connected, as the children last reported.
    /// Process ids of the simulator processes.
    pub fn pids(&self) -> Vec<u32> {
        self.children.iter().map(|c| c.id()).collect()
    }

    pub fn connected(&self) -> u64 {
        self.sum(|s| &s.connected)
    }

    /// Failed attempts other than a refused TCP connect.
    pub fn failures(&self) -> u64 {
        self.sum(|s| &s.failures)
    }

    /// Attempts refused at TCP connect (nothing listening).
    pub fn refused(&self) -> u64 {
        self.sum(|s| &s.refused)
    }

    /// Attempts reset during the TCP connect (a dying listener).
    pub fn reset(&self) -> u64 {
        self.sum(|s| &s.reset)
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
        }
        for c in &mut self.children {
            let _ = c.wait();
        }
    }
}

/// How often a child reports its counters.
pub const REPORT_EVERY: Duration = Duration::from_millis(100);
