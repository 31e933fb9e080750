//! The health monitor: every interval, a snapshot of every visible container
//! (state, health, restarts, CPU, memory, network) and of the host (see
//! [`crate::host`]) recorded for the hub ([`crate::buffer`]) and pushed on the control channel. CPU, memory and network come from the kernel (see
//! [`kernel`]), or from one concurrent sweep of the engine's stats API for
//! containers the kernel cannot tell; restart count, pid and network mode from
//! inspect, refreshed only when a container's status text changed.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bollard::query_parameters::InspectContainerOptions;
use nextdeploy_shared::docker::{
    ContainerHealth, ContainerRow, HealthSnapshot, StatsSample, STATS_FROM_ENGINE,
    STATS_FROM_KERNEL,
};
use nextdeploy_shared::time::{now_unix, parse_rfc3339, rfc3339};
use tokio_util::sync::CancellationToken;

use super::containers::{list_all, to_row};
use super::stats::Sampler;
use super::{kernel, DockerError, Engine};
use crate::buffer::{Kind, Recorder};

/// What the monitor remembers of a container between sweeps.
#[derive(Debug, Clone, Default)]
pub struct Known {
    /// The status text the inspect below was made at.
    status: String,
    /// The state then (`running`, `exited`, ...).
    state: String,
    /// Whether the last reading came from the kernel.
    kernel: bool,
    /// Docker's restart count.
    restarts: i64,
    /// When the current run started (RFC 3339), while running.
    started_at: Option<String>,
    /// The init process (0 when not running).
    pid: u32,
    /// Whether the container has a network namespace of its own.
    own_network: bool,
    /// The last kernel reading's CPU counter and when it was taken.
    cpu: Option<(u64, Instant)>,
}

/// Containers known to the monitor, by id.
pub type KnownMap = HashMap<String, Known>;

impl Known {
    /// Whether `r` needs a new inspect (restart count, pid). While the kernel
    /// reads a container, a restart shows as its pid leaving the container's
    /// cgroup (the read fails) or as a change of state; otherwise any change
    /// of the status text counts (which changes every second at first).
    fn stale(&self, r: &ContainerRow) -> bool {
        if self.kernel {
            self.state != r.state
        } else {
            self.status != r.status
        }
    }
}

/// Inspect a container whose status text changed: restarts, pid, network
/// mode. `None` when the engine did not answer.
async fn inspect(engine: &Engine, r: &ContainerRow) -> Option<Known> {
    let id = r.id.clone();
    let i = engine
        .call(|d| async move {
            d.inspect_container(&id, None::<InspectContainerOptions>)
                .await
        })
        .await
        .ok()?;
    let mode = i
        .host_config
        .as_ref()
        .and_then(|h| h.network_mode.as_deref())
        .unwrap_or("");
    let started_at = i
        .state
        .as_ref()
        .filter(|s| s.running == Some(true))
        .and_then(|s| s.started_at.as_deref())
        .and_then(parse_rfc3339)
        .map(rfc3339);
    Some(Known {
        status: r.status.clone(),
        state: r.state.clone(),
        kernel: false,
        restarts: i.restart_count.unwrap_or(0),
        started_at,
        pid: i
            .state
            .as_ref()
            .and_then(|s| s.pid)
            .and_then(|p| u32::try_from(p).ok())
            .unwrap_or(0),
        own_network: mode != "host",
        cpu: None,
    })
}

/// One sweep; `files`: the kernel files kept open between sweeps.
pub async fn take_snapshot(
    engine: &Engine,
    sampler: &Sampler,
    known: &mut KnownMap,
    files: &mut kernel::Files,
) -> Result<HealthSnapshot, DockerError> {
    let started = Instant::now();
    let list = list_all(engine, None).await?;
    let rows: Vec<_> = list.iter().map(to_row).collect();
    let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
    sampler.retain(&ids);
    known.retain(|k, _| ids.contains(k));
    refresh_known(engine, &rows, known).await;
    let readings = read_kernel(&rows, known, files).await;
    let (from_kernel, ask_engine) = split_by_source(&rows, known, &readings);
    let samples = if ask_engine.is_empty() {
        Vec::new()
    } else {
        sampler.sweep(engine, &ask_engine).await?
    };
    let containers = build_health(rows, known, &from_kernel, &samples);
    Ok(HealthSnapshot {
        at: now_unix(),
        docker_available: true,
        docker_error: None,
        sweep_ms: started.elapsed().as_millis() as u64,
        containers,
        ..Default::default()
    })
}

/// Inspect again every container that is new or whose status changed.
async fn refresh_known(engine: &Engine, rows: &[ContainerRow], known: &mut KnownMap) {
    for r in rows {
        if known.get(&r.id).is_none_or(|k| k.stale(r)) {
            match inspect(engine, r).await {
                Some(mut k) => {
                    // The status text changes every second at first ("Up 2
                    // seconds"): the same process keeps its CPU baseline.
                    if let Some(old) = known.get(&r.id).filter(|o| o.pid == k.pid) {
                        k.cpu = old.cpu;
                    }
                    known.insert(r.id.clone(), k);
                }
                // Not answered: what was known stays (the restart count
                // included) and, still stale, is asked again next sweep.
                None => {
                    known.entry(r.id.clone()).or_default();
                }
            }
        }
    }
}

/// Read running containers from the kernel (file reads, off the runtime's
/// threads). `None` for a container the kernel cannot tell.
async fn read_kernel(
    rows: &[ContainerRow],
    known: &KnownMap,
    files: &mut kernel::Files,
) -> Vec<(String, Option<kernel::Reading>)> {
    let targets: Vec<(String, u32, bool)> = rows
        .iter()
        .filter(|r| r.state == "running")
        .map(|r| {
            let k = known.get(&r.id);
            (
                r.id.clone(),
                k.map_or(0, |k| k.pid),
                k.is_none_or(|k| k.own_network),
            )
        })
        .collect();
    let mut open = std::mem::take(files);
    let (readings, open) = tokio::task::spawn_blocking(move || {
        let roots = kernel::Roots::default();
        let host = kernel::host_memory(&roots.proc);
        open.begin();
        let readings = targets
            .into_iter()
            .map(|(id, pid, own)| {
                let r = kernel::read_container(&mut open, &roots, host, &id, pid, own);
                (id, r)
            })
            .collect::<Vec<_>>();
        (readings, open)
    })
    .await
    .unwrap_or_default();
    *files = open;
    readings
}

/// Running containers the kernel read, and those (id, name) left for the
/// engine's stats API.
fn split_by_source(
    rows: &[ContainerRow],
    known: &mut KnownMap,
    readings: &[(String, Option<kernel::Reading>)],
) -> (HashMap<String, kernel::Reading>, Vec<(String, String)>) {
    let mut from_kernel: HashMap<String, kernel::Reading> = HashMap::new();
    let mut ask_engine = Vec::new();
    for r in rows.iter().filter(|r| r.state == "running") {
        let k = known.entry(r.id.clone()).or_default();
        match readings
            .iter()
            .find(|(id, _)| *id == r.id)
            .and_then(|(_, x)| *x)
        {
            Some(reading) => {
                k.kernel = true;
                from_kernel.insert(r.id.clone(), reading);
            }
            None => {
                // A pid that read before and fails now may be stale (the
                // container restarted): inspect again next sweep. One the
                // kernel never read (a remote engine, rootless Docker) stays
                // with the engine until its status text changes, as before.
                if k.kernel {
                    k.status.clear();
                }
                k.kernel = false;
                ask_engine.push((r.id.clone(), r.name.clone()));
            }
        }
    }
    (from_kernel, ask_engine)
}

/// The snapshot's rows: each container with its figures from the kernel or,
/// failing that, from the engine's sample.
fn build_health(
    rows: Vec<ContainerRow>,
    known: &mut KnownMap,
    from_kernel: &HashMap<String, kernel::Reading>,
    samples: &[StatsSample],
) -> Vec<ContainerHealth> {
    let now = Instant::now();
    let mut containers = Vec::with_capacity(rows.len());
    for r in rows {
        let k = known.entry(r.id.clone()).or_default();
        let mut c = ContainerHealth {
            id: r.id.clone(),
            name: r.name.as_str().into(),
            image: r.image.as_str().into(),
            state: r.state.as_str().into(),
            health: r.health.as_deref().map(Into::into),
            restarts: k.restarts,
            started_at: k
                .started_at
                .as_deref()
                .filter(|_| r.state == "running")
                .map(Into::into),
            ..Default::default()
        };
        if let Some(x) = from_kernel.get(&r.id) {
            c.cpu_percent = k.cpu.and_then(|(prev, at)| {
                let elapsed = now.duration_since(at).as_nanos() as u64;
                kernel::cpu_percent(prev, x.cpu_ns, elapsed)
            });
            k.cpu = Some((x.cpu_ns, now));
            c.cpu_total_ns = Some(x.cpu_ns);
            c.mem_usage = x.mem_usage;
            c.mem_limit = x.mem_limit;
            c.net_rx = x.net_rx;
            c.net_tx = x.net_tx;
            c.stats_from = Some(STATS_FROM_KERNEL.into());
        } else if let Some(s) = samples.iter().find(|s| s.id == r.id) {
            k.cpu = None;
            c.cpu_percent = s.cpu_percent;
            c.cpu_total_ns = s.cpu_total_ns;
            c.mem_usage = s.mem_usage;
            c.mem_limit = s.mem_limit;
            c.net_rx = s.net_rx;
            c.net_tx = s.net_tx;
            c.stats_from = Some(STATS_FROM_ENGINE.into());
        }
        // Hundredths are all the hub keeps: `12.34`, not `12.345678901234567`
        // (a tenth of a container's bytes on the wire).
        c.cpu_percent = c.cpu_percent.map(|p| (p * 100.0).round() / 100.0);
        containers.push(c);
    }
    containers
}

/// Push a snapshot every `interval` until `shutdown`.
pub async fn run(
    engine: Arc<Engine>,
    sampler: Arc<Sampler>,
    recorder: Arc<Recorder>,
    interval: Duration,
    shutdown: CancellationToken,
) {
    let mut known = KnownMap::new();
    let mut files = kernel::Files::default();
    let mut host = crate::host::HostSampler::default();
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.cancelled() => return,
        }
        let mut snap = match take_snapshot(&engine, &sampler, &mut known, &mut files).await {
            Ok(s) => s,
            Err(e) => HealthSnapshot {
                at: now_unix(),
                docker_available: false,
                docker_error: Some(e.message),
                ..Default::default()
            },
        };
        // Also while the engine is down: the host is read from /proc.
        snap.host = host.sample();
        let data = serde_json::to_value(&snap).unwrap_or_default();
        recorder.record(Kind::Health, data);
    }
}
