//! Stats as `docker stats` computes them, without its cost: one-shot samples
//! (`stream=false&one-shot=true`, API >= 1.41) taken concurrently (see
//! [`SWEEP_CONCURRENCY`]), and CPU
//! percent computed from this agent's own consecutive samples of each
//! container, so no call waits the engine's second for a pre-sample.

use std::collections::HashMap;
use std::sync::Mutex;

use bollard::models::ContainerStatsResponse;
use bollard::query_parameters::{ListContainersOptions, StatsOptions};
use futures_util::StreamExt;
use nextdeploy_shared::docker::{cpu_percent, mem_usage, StatsSample};
use nextdeploy_shared::protocol::containers::StatsRequest;
use nextdeploy_shared::protocol::{ErrorCode, Reply, ReplyType};
use nextdeploy_shared::time::now_unix_ms;
use serde_json::json;
use tokio::sync::mpsc;

use super::containers::resolve;
use super::{classify, DockerError, Engine};
use crate::limits::{
    CPU_MIN_INTERVAL_MS, FIRST_SAMPLE_WAIT, MAX_PREV_AGE_MS, REPLACE_AFTER_MS,
    STATS_STREAM_INTERVAL, SWEEP_CONCURRENCY,
};
use crate::util::lock;

/// CPU counters of one sample.
#[derive(Debug, Clone, Copy)]
struct Counters {
    cpu: u64,
    system: u64,
    at_ms: i64,
}

/// What is kept per container: the sample CPU is computed against, and the
/// last figure computed with the engine reading it came from.
#[derive(Debug, Clone, Copy)]
struct Kept {
    base: Counters,
    /// (system counter of the sample, percent computed for it)
    last: Option<(u64, f64)>,
}

/// Previous CPU counters per container id.
#[derive(Default)]
pub struct Sampler {
    prev: Mutex<HashMap<String, Kept>>,
}

fn sum_blkio(s: &ContainerStatsResponse, op: &str) -> u64 {
    s.blkio_stats
        .as_ref()
        .and_then(|b| b.io_service_bytes_recursive.as_ref())
        .map(|v| {
            v.iter()
                .filter(|e| e.op.as_deref().is_some_and(|o| o.eq_ignore_ascii_case(op)))
                .filter_map(|e| e.value)
                .sum()
        })
        .unwrap_or(0)
}

impl Sampler {
    /// Turn one engine sample into figures, using and updating the cache.
    fn compute(&self, id: &str, name: &str, s: &ContainerStatsResponse) -> StatsSample {
        let cpu = s.cpu_stats.as_ref();
        let total = cpu
            .and_then(|c| c.cpu_usage.as_ref())
            .and_then(|u| u.total_usage)
            .unwrap_or(0);
        let system = cpu.and_then(|c| c.system_cpu_usage).unwrap_or(0);
        let online = cpu
            .and_then(|c| c.online_cpus)
            .or_else(|| {
                cpu.and_then(|c| c.cpu_usage.as_ref())
                    .and_then(|u| u.percpu_usage.as_ref())
                    .map(|p| p.len() as u32)
            })
            .unwrap_or(1);
        let now = now_unix_ms();
        let cur = Counters {
            cpu: total,
            system,
            at_ms: now,
        };
        // Concurrent sweeps (the monitor, a stats stream) may finish out of
        // order: compute against the kept sample only when this one is newer
        // by a useful interval, and replace it only once it is a second old.
        let cpu_percent = {
            let mut map = lock(&self.prev);
            let kept = map
                .get(id)
                .copied()
                .filter(|k| now - k.base.at_ms <= MAX_PREV_AGE_MS);
            // Concurrent sweeps can get the same engine reading (dockerd answers
            // one-shot requests at its collector's tick): the same reading gets
            // the same figure, not a missing one.
            let same_tick = kept
                .and_then(|k| k.last)
                .filter(|(sys, _)| *sys == system)
                .map(|(_, p)| p);
            let pct = same_tick.or_else(|| {
                kept.map(|k| k.base)
                    .filter(|p| system > p.system && now - p.at_ms >= CPU_MIN_INTERVAL_MS)
                    .and_then(|p| cpu_percent(total, p.cpu, system, p.system, online))
            });
            let mut entry = kept.unwrap_or(Kept {
                base: cur,
                last: None,
            });
            if let Some(p) = pct {
                entry.last = Some((system, p));
            }
            if kept
                .is_some_and(|k| system > k.base.system && now - k.base.at_ms >= REPLACE_AFTER_MS)
            {
                entry.base = cur;
            }
            map.insert(id.to_string(), entry);
            pct
        };
        let mem = s.memory_stats.as_ref();
        let usage = mem_usage(
            mem.and_then(|m| m.usage).unwrap_or(0),
            mem.and_then(|m| m.stats.as_ref()),
        );
        let limit = mem.and_then(|m| m.limit).unwrap_or(0);
        let (rx, tx) = s
            .networks
            .as_ref()
            .map(|n| {
                n.values().fold((0, 0), |(r, t), i| {
                    (r + i.rx_bytes.unwrap_or(0), t + i.tx_bytes.unwrap_or(0))
                })
            })
            .unwrap_or((0, 0));
        StatsSample {
            id: id.to_string(),
            name: name.to_string(),
            cpu_percent,
            cpu_total_ns: Some(total),
            mem_usage: usage,
            mem_limit: limit,
            mem_percent: if limit > 0 {
                usage as f64 / limit as f64 * 100.0
            } else {
                0.0
            },
            net_rx: rx,
            net_tx: tx,
            block_read: sum_blkio(s, "read"),
            block_write: sum_blkio(s, "write"),
            pids: s.pids_stats.as_ref().and_then(|p| p.current).unwrap_or(0),
            at_ms: now,
        }
    }

    /// Whether a recent previous sample exists for `id`.
    fn has_recent(&self, id: &str) -> bool {
        let map = lock(&self.prev);
        map.get(id)
            .is_some_and(|k| now_unix_ms() - k.base.at_ms <= MAX_PREV_AGE_MS)
    }

    /// Forget containers that are gone.
    pub fn retain(&self, ids: &[String]) {
        let mut map = lock(&self.prev);
        map.retain(|k, _| ids.contains(k));
    }

    /// One-shot sample of one container.
    pub async fn sample(
        &self,
        engine: &Engine,
        id: &str,
        name: &str,
    ) -> Result<StatsSample, DockerError> {
        let docker = engine.docker().await?;
        let mut s = docker.stats(
            id,
            Some(StatsOptions {
                stream: false,
                one_shot: true,
            }),
        );
        match s.next().await {
            Some(Ok(r)) => Ok(self.compute(id, name, &r)),
            Some(Err(e)) => {
                let err = classify(&e);
                engine.failed(&err);
                Err(err)
            }
            None => Err(DockerError::new(
                ErrorCode::DockerError,
                "the engine returned no stats",
            )),
        }
    }

    /// Sample many containers concurrently; containers that vanish mid-sweep are skipped.
    pub async fn sweep(
        &self,
        engine: &Engine,
        targets: &[(String, String)],
    ) -> Result<Vec<StatsSample>, DockerError> {
        let results: Vec<Result<StatsSample, DockerError>> =
            futures_util::stream::iter(targets.to_vec())
                .map(|(id, name)| async move { self.sample(engine, &id, &name).await })
                .buffer_unordered(SWEEP_CONCURRENCY)
                .collect()
                .await;
        let mut out = Vec::with_capacity(results.len());
        for r in results {
            match r {
                Ok(s) => out.push(s),
                Err(e) if e.code == ErrorCode::NoSuchContainer => {}
                Err(e) => return Err(e),
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }
}

/// Running, visible containers as (id, name).
pub async fn running(engine: &Engine) -> Result<Vec<(String, String)>, DockerError> {
    let opts = ListContainersOptions {
        all: false,
        ..Default::default()
    };
    let list = engine
        .call(|d| async move { d.list_containers(Some(opts)).await })
        .await?;
    Ok(list
        .into_iter()
        .filter(|c| engine.visible(c.labels.as_ref()))
        .map(|c| {
            let name = c
                .names
                .as_ref()
                .and_then(|n| n.first())
                .map(|n| n.trim_start_matches('/').to_string())
                .unwrap_or_default();
            (c.id.unwrap_or_default(), name)
        })
        .collect())
}

/// `stats`: `{container?, stream}`. Streaming sends a `stats` reply with every
/// container's sample about every second until cancelled; otherwise one
/// `result` (samples taken twice 500 ms apart when no recent sample exists).
pub async fn serve_stats(
    engine: &Engine,
    sampler: &Sampler,
    id: Option<u64>,
    p: &StatsRequest,
    out: &mpsc::Sender<Reply>,
) -> Result<(), DockerError> {
    let stream = p.stream;
    let one = match p.container.as_deref() {
        Some(c) if !c.is_empty() => Some(resolve(engine, c).await?),
        _ => None,
    };
    let targets = || async {
        match &one {
            Some(t) => Ok(vec![(t.id.clone(), t.name.clone())]),
            None => running(engine).await,
        }
    };
    if !stream {
        let t = targets().await?;
        if t.iter().any(|(id, _)| !sampler.has_recent(id)) {
            sampler.sweep(engine, &t).await?;
            tokio::time::sleep(FIRST_SAMPLE_WAIT).await;
        }
        let samples = sampler.sweep(engine, &t).await?;
        let _ = out.send(Reply::result(id, json!(samples))).await;
        return Ok(());
    }
    let mut tick = tokio::time::interval(STATS_STREAM_INTERVAL);
    loop {
        tick.tick().await;
        let t = targets().await?;
        let samples = sampler.sweep(engine, &t).await?;
        if out
            .send(Reply::new(id, ReplyType::Stats, json!(samples)))
            .await
            .is_err()
        {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::{ContainerCpuStats, ContainerCpuUsage};

    fn reading(cpu: u64, system: u64) -> ContainerStatsResponse {
        ContainerStatsResponse {
            cpu_stats: Some(ContainerCpuStats {
                cpu_usage: Some(ContainerCpuUsage {
                    total_usage: Some(cpu),
                    ..Default::default()
                }),
                system_cpu_usage: Some(system),
                online_cpus: Some(2),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn age(s: &Sampler, ms: i64) {
        let mut m = s.prev.lock().unwrap();
        for k in m.values_mut() {
            k.base.at_ms -= ms;
        }
    }

    #[test]
    fn same_engine_reading_gets_the_same_figure() {
        let s = Sampler::default();
        assert_eq!(
            s.compute("c", "c", &reading(1_000, 10_000)).cpu_percent,
            None
        );
        age(&s, 1000);
        // One core busy for the interval on a 2-CPU host: 100 %.
        let a = s
            .compute("c", "c", &reading(6_000, 20_000))
            .cpu_percent
            .unwrap();
        assert!((a - 100.0).abs() < 1e-9, "{a}");
        // A concurrent sweep got the very same reading: same figure, not none.
        let b = s.compute("c", "c", &reading(6_000, 20_000)).cpu_percent;
        assert_eq!(b, Some(a));
    }
}
