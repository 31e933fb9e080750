//! The health monitor: every interval, a snapshot of every visible container
//! (state, health, restarts, CPU, memory, network) pushed to the hub on the
//! control channel. Stats come from one concurrent sweep; restart counts from
//! inspect, refreshed only when a container's status text changed.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bollard::query_parameters::InspectContainerOptions;
use nextdeploy_shared::docker::{ContainerHealth, HealthSnapshot};
use nextdeploy_shared::protocol::{Reply, ReplyType};
use nextdeploy_shared::time::now_unix;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::containers::{list_all, row};
use super::stats::Sampler;
use super::{DockerError, Engine};

/// One sweep.
pub async fn snapshot(
    engine: &Engine,
    sampler: &Sampler,
    restarts: &mut HashMap<String, (String, i64)>,
) -> Result<HealthSnapshot, DockerError> {
    let started = Instant::now();
    let list = list_all(engine, None).await?;
    let rows: Vec<_> = list.iter().map(row).collect();
    let running: Vec<(String, String)> = rows
        .iter()
        .filter(|r| r.state == "running")
        .map(|r| (r.id.clone(), r.name.clone()))
        .collect();
    let samples = sampler.sweep(engine, &running).await?;
    let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
    sampler.retain(&ids);
    restarts.retain(|k, _| ids.contains(k));
    let mut containers = Vec::with_capacity(rows.len());
    for r in rows {
        let count = match restarts.get(&r.id) {
            Some((status, n)) if *status == r.status => *n,
            _ => {
                let id = r.id.clone();
                let n = engine
                    .call(|d| async move {
                        d.inspect_container(&id, None::<InspectContainerOptions>)
                            .await
                    })
                    .await
                    .ok()
                    .and_then(|i| i.restart_count)
                    .unwrap_or(0);
                restarts.insert(r.id.clone(), (r.status.clone(), n));
                n
            }
        };
        let s = samples.iter().find(|s| s.id == r.id);
        containers.push(ContainerHealth {
            id: r.id.clone(),
            name: r.name.clone(),
            image: r.image.clone(),
            state: r.state.clone(),
            health: r.health.clone(),
            restarts: count,
            cpu_percent: s.and_then(|s| s.cpu_percent),
            mem_usage: s.map(|s| s.mem_usage).unwrap_or(0),
            mem_limit: s.map(|s| s.mem_limit).unwrap_or(0),
            net_rx: s.map(|s| s.net_rx).unwrap_or(0),
            net_tx: s.map(|s| s.net_tx).unwrap_or(0),
        });
    }
    Ok(HealthSnapshot {
        at: now_unix(),
        docker_available: true,
        docker_error: None,
        sweep_ms: started.elapsed().as_millis() as u64,
        containers,
    })
}

/// Push a snapshot every `interval` until `shutdown`.
pub async fn run(
    engine: Arc<Engine>,
    sampler: Arc<Sampler>,
    push: broadcast::Sender<Reply>,
    interval: Duration,
    shutdown: CancellationToken,
) {
    let mut restarts = HashMap::new();
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.cancelled() => return,
        }
        let snap = match snapshot(&engine, &sampler, &mut restarts).await {
            Ok(s) => s,
            Err(e) => HealthSnapshot {
                at: now_unix(),
                docker_available: false,
                docker_error: Some(e.message),
                ..Default::default()
            },
        };
        let data = serde_json::to_value(&snap).unwrap_or_default();
        let _ = push.send(Reply::new(Some(0), ReplyType::Health, data));
    }
}
