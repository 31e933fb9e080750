//! `nextdeploy agent list|ping|info`.

use std::time::{Duration, Instant};

use anyhow::bail;
use nextdeploy_shared::protocol::agents::{Pong, RevokeAgent, RotateKey};
use nextdeploy_shared::protocol::{Action, AgentInfo, AgentPolicy, AgentSummary, Empty, ReplyType};
use serde_json::{json, Value};

use super::client::{error_of, Client};
use super::output::{self, Output};
use super::tokens::labels_cell;

pub async fn list(c: &mut Client, out: Output) -> anyhow::Result<()> {
    let v = c.call(Action::ListAgents(Empty {}), None).await?;
    if out == Output::Json {
        return output::json(&v);
    }
    let agents: Vec<AgentSummary> = serde_json::from_value(v)?;
    let now = nextdeploy_shared::time::now_unix();
    let rows: Vec<Vec<String>> = agents
        .iter()
        .map(|a| {
            vec![
                a.name.clone(),
                labels_cell(&json!(a.labels)),
                match (a.online, a.conflict.is_some()) {
                    (true, false) => "online".into(),
                    (true, true) => "online, key conflict".into(),
                    (false, false) => "offline".into(),
                    (false, true) => "offline, key conflict".into(),
                },
                a.last_seen
                    .clone()
                    .map(|t| if a.online { "now".into() } else { t })
                    .unwrap_or_else(|| "never".into()),
                a.version.clone().unwrap_or_else(|| "-".into()),
                a.address.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    let _ = now;
    output::table(
        &[
            "NAME",
            "LABELS",
            "STATUS",
            "LAST SEEN",
            "VERSION",
            "ADDRESS",
        ],
        &rows,
    );
    Ok(())
}

fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n == 0 {
        0.0
    } else if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

pub async fn ping(
    c: &mut Client,
    server: &str,
    count: u32,
    interval_ms: u64,
    out: Output,
) -> anyhow::Result<()> {
    if count == 0 {
        bail!("--count must be at least 1");
    }
    let mut rtts = Vec::new();
    let mut hub_rtts = Vec::new();
    for seq in 1..=count {
        let start = Instant::now();
        let v = c.call(Action::Ping(Empty {}), Some(server)).await?;
        let ms = start.elapsed().as_secs_f64() * 1000.0;
        let pong: Pong = serde_json::from_value(v)?;
        let hub_ms = pong.hub_agent_rtt_ms.unwrap_or(0.0);
        if out == Output::Table {
            println!("{server}: seq={seq} time={ms:.3} ms (hub<->agent {hub_ms:.3} ms)");
        }
        rtts.push(ms);
        hub_rtts.push(hub_ms);
        if seq < count {
            tokio::time::sleep(Duration::from_millis(interval_ms)).await;
        }
    }
    let mut sorted = rtts.clone();
    sorted.sort_by(|a, b| a.total_cmp(b));
    let (min, med, max) = (sorted[0], median(&sorted), sorted[sorted.len() - 1]);
    match out {
        Output::Json => output::json(&json!({
            "server": server, "count": count, "rtt_ms": rtts,
            "min_ms": min, "median_ms": med, "max_ms": max, "hub_agent_rtt_ms": hub_rtts,
        })),
        Output::Table => {
            println!(
                "--- {server}: {count} round trips, min/median/max = {min:.3}/{med:.3}/{max:.3} ms"
            );
            Ok(())
        }
    }
}

/// `ping --selector`: every matching agent each round (one fan-out request),
/// its hub <-> agent round trip per round, then a summary per agent. Fails when
/// an agent never answered.
pub async fn ping_selector(
    c: &mut Client,
    selector: &str,
    count: u32,
    interval_ms: u64,
    out: Output,
) -> anyhow::Result<()> {
    if count == 0 {
        bail!("--count must be at least 1");
    }
    let mut per: std::collections::BTreeMap<String, Vec<f64>> = Default::default();
    let mut failures: std::collections::BTreeMap<String, String> = Default::default();
    for seq in 1..=count {
        let start = Instant::now();
        let mut round: Vec<(String, Result<f64, String>)> = Vec::new();
        c.stream(Action::Ping(Empty {}), None, Some(selector), |r| {
            let server = r.server.clone().unwrap_or_default();
            match r.kind {
                ReplyType::Result => {
                    let pong: Pong = serde_json::from_value(r.data.clone())?;
                    round.push((server, Ok(pong.hub_agent_rtt_ms.unwrap_or(0.0))));
                }
                ReplyType::Error => round.push((server, Err(error_of(r).to_string()))),
                _ => {}
            }
            Ok(())
        })
        .await?;
        let ms = start.elapsed().as_secs_f64() * 1000.0;
        for (server, r) in round {
            match r {
                Ok(hub_ms) => {
                    if out == Output::Table {
                        println!("{server}: seq={seq} hub<->agent {hub_ms:.3} ms");
                    }
                    per.entry(server).or_default().push(hub_ms);
                }
                Err(e) => {
                    if out == Output::Table {
                        println!("{server}: seq={seq} {}", output::printable(&e.to_string()));
                    }
                    failures.insert(server, e);
                }
            }
        }
        if out == Output::Table {
            println!("(round {seq}: {ms:.3} ms for every answer)");
        }
        if seq < count {
            tokio::time::sleep(Duration::from_millis(interval_ms)).await;
        }
    }
    print_ping_summary(&per, &failures, out)?;
    let silent: Vec<&String> = failures.keys().filter(|s| !per.contains_key(*s)).collect();
    if !silent.is_empty() {
        bail!(
            "no answer from {}",
            silent
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(())
}

/// The per-agent summary of `ping --selector`.
fn print_ping_summary(
    per: &std::collections::BTreeMap<String, Vec<f64>>,
    failures: &std::collections::BTreeMap<String, String>,
    out: Output,
) -> anyhow::Result<()> {
    let mut docs = Vec::new();
    for (server, rtts) in per {
        let mut sorted = rtts.clone();
        sorted.sort_by(|a, b| a.total_cmp(b));
        let (min, med, max) = (sorted[0], median(&sorted), sorted[sorted.len() - 1]);
        if out == Output::Table {
            println!("--- {server}: {} answers, hub<->agent min/median/max = {min:.3}/{med:.3}/{max:.3} ms", rtts.len());
        }
        docs.push(json!({"server": server, "hub_agent_rtt_ms": rtts, "min_ms": min, "median_ms": med, "max_ms": max}));
    }
    for (server, e) in failures.iter().filter(|(s, _)| !per.contains_key(*s)) {
        docs.push(json!({"server": server, "error": e}));
    }
    if out == Output::Json {
        output::json(&Value::Array(docs))?;
    }
    Ok(())
}

pub async fn info(
    c: &mut Client,
    server: Option<&str>,
    selector: Option<&str>,
    out: Output,
) -> anyhow::Result<()> {
    let id = c.send(Action::Info(Empty {}), server, selector).await?;
    let (results, failures) = collect_info(c, id, selector.is_some()).await?;
    match out {
        Output::Json => print_info_json(&results, selector.is_some())?,
        Output::Table => {
            for (name, v) in &results {
                let i: AgentInfo = serde_json::from_value(v.clone())?;
                if selector.is_some() {
                    println!("== {name}");
                }
                print_info_table(&i);
            }
        }
    }
    for f in &failures {
        eprintln!("error: {}", output::printable(&f.to_string()));
    }
    if !failures.is_empty() {
        bail!("{} agent(s) did not answer", failures.len());
    }
    Ok(())
}

/// Answers to info request `id`: (server, document) pairs and, for a fleet
/// request, one "server: error" line per agent that failed.
async fn collect_info(
    c: &mut Client,
    id: u64,
    fleet: bool,
) -> anyhow::Result<(Vec<(String, Value)>, Vec<String>)> {
    let mut results: Vec<(String, Value)> = Vec::new();
    let mut failures = Vec::new();
    loop {
        let r = c.next().await?;
        if r.id != Some(id) {
            continue;
        }
        let name = r.server.clone().unwrap_or_default();
        match r.kind {
            ReplyType::Result => {
                results.push((name, r.data));
                if !fleet {
                    break;
                }
            }
            ReplyType::Error if fleet && r.server.is_some() => {
                failures.push(format!("{name}: {}", error_of(&r)));
            }
            ReplyType::Error => return Err(error_of(&r)),
            ReplyType::End => break,
            _ => {}
        }
    }
    Ok((results, failures))
}

/// One agent's document as is, or for a fleet an array with `server` added to each.
fn print_info_json(results: &[(String, Value)], fleet: bool) -> anyhow::Result<()> {
    if !fleet {
        if let Some((_, v)) = results.first() {
            output::json(v)?;
        }
        return Ok(());
    }
    let all: Vec<Value> = results
        .iter()
        .map(|(n, v)| {
            let mut v = v.clone();
            v["server"] = json!(n);
            v
        })
        .collect();
    output::json(&all)
}

/// One agent's info as aligned key/value pairs.
fn print_info_table(i: &AgentInfo) {
    let docker = if i.docker.available {
        format!(
            "available (engine {}, API {})",
            i.docker.version.clone().unwrap_or_default(),
            i.docker.api_version.clone().unwrap_or_default()
        )
    } else {
        format!(
            "unavailable: {}",
            i.docker.error.clone().unwrap_or_default()
        )
    };
    output::pairs(&[
        ("hostname", i.hostname.clone()),
        ("os", i.os.clone()),
        ("kernel", i.kernel.clone()),
        ("arch", i.arch.clone()),
        ("cpus", i.cpus.to_string()),
        (
            "memory",
            format!(
                "{:.1} GiB total, {:.1} GiB available",
                gib(i.memory_total_bytes),
                gib(i.memory_available_bytes)
            ),
        ),
        ("agent version", i.agent_version.clone()),
        (
            "agent uptime",
            nextdeploy_shared::time::human_age(i.agent_uptime_s as i64),
        ),
        (
            "host uptime",
            nextdeploy_shared::time::human_age(i.host_uptime_s as i64),
        ),
        ("docker", docker),
        ("policy", policy_cell(i.policy.as_ref())),
        ("buffer", buffer_cell(i.buffer.as_ref())),
    ]);
}

/// The agent's buffer in one cell: held for the hub, and what it dropped.
fn buffer_cell(b: Option<&nextdeploy_shared::protocol::BufferStats>) -> String {
    let Some(b) = b else {
        return "-".into();
    };
    let mib = |n: u64| n as f64 / (1024.0 * 1024.0);
    format!(
        "{} records, {:.1} of {:.0} MiB; dropped {} snapshots, {} events",
        b.records,
        mib(b.bytes),
        mib(b.max_bytes),
        b.dropped_snapshots,
        b.dropped_events
    )
}

/// An agent's policy in one cell: what it refuses.
fn policy_cell(p: Option<&AgentPolicy>) -> String {
    match p.map(AgentPolicy::summary) {
        None => "not reported (agent too old)".into(),
        Some(s) if s.is_empty() => "everything allowed".into(),
        Some(s) => s,
    }
}

fn gib(b: u64) -> f64 {
    b as f64 / (1024.0 * 1024.0 * 1024.0)
}

/// `agent rotate-key`: replace the agent's key, print old and new fingerprints.
pub async fn rotate_key(c: &mut Client, server: &str, out: Output) -> anyhow::Result<()> {
    let v = c
        .call(Action::RotateKey(RotateKey::default()), Some(server))
        .await?;
    match out {
        Output::Json => output::json(&v),
        Output::Table => {
            println!(
                "rotated the key of {server}: {} -> {}",
                v["old_fingerprint"].as_str().unwrap_or("?"),
                v["new_fingerprint"].as_str().unwrap_or("?")
            );
            Ok(())
        }
    }
}

/// `agent revoke`: revoke the agent's key; say whether a live connection was cut.
pub async fn revoke(c: &mut Client, name: &str, out: Output) -> anyhow::Result<()> {
    let v = c
        .call(
            Action::RevokeAgent(RevokeAgent {
                name: name.to_string(),
            }),
            None,
        )
        .await?;
    match out {
        Output::Json => output::json(&v),
        Output::Table => {
            println!(
                "revoked {name}{}",
                if v["was_online"].as_bool() == Some(true) {
                    "; its connection was cut"
                } else {
                    ""
                }
            );
            Ok(())
        }
    }
}
