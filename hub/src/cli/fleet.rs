//! `nextdeploy agent events|status|history`: the views the hub answers
//! from what it keeps (the event bus, the latest snapshots, the store).

use nextdeploy_shared::docker::Event;
use nextdeploy_shared::protocol::streams::{EventsRequest, HistoryRequest, Since, StatusRequest};
use nextdeploy_shared::protocol::{Action, ReplyType};
use nextdeploy_shared::time::{human_age, now_unix, parse_rfc3339, rfc3339};
use serde_json::{json, Value};

use super::client::{error_of, Client};
use super::containers::{ndjson, size};
use super::output::{self, Output};

/// `events`: the kept ones since `payload.since` if given, then live, until
/// interrupted.
pub async fn events(
    c: &mut Client,
    server: Option<&str>,
    selector: Option<&str>,
    payload: EventsRequest,
    out: Output,
) -> anyhow::Result<()> {
    say_if_waiting(c, server, selector).await?;
    let id = c.send(Action::Events(payload), server, selector).await?;
    loop {
        let r = c.next().await?;
        if r.id != Some(id) {
            continue;
        }
        match r.kind {
            ReplyType::Event => {
                if out == Output::Json {
                    let mut v = r.data.clone();
                    v["server"] = json!(r.server);
                    ndjson(&v)?;
                    continue;
                }
                let e: Event = serde_json::from_value(r.data.clone()).unwrap_or_default();
                let mut detail = Vec::new();
                if let Some(code) = e.exit_code {
                    detail.push(format!("exitCode={code}"));
                }
                if let Some(h) = &e.health {
                    detail.push(format!("health={h}"));
                }
                if let Some(s) = &e.signal {
                    detail.push(format!("signal={s}"));
                }
                if e.late {
                    // Happened while the agent's link was down.
                    detail.push("late".into());
                }
                println!(
                    "{} {} {} {} {} {}",
                    rfc3339(e.time_ms / 1000),
                    r.server.as_deref().unwrap_or("-"),
                    e.kind,
                    e.action,
                    e.container.as_deref().unwrap_or("-"),
                    detail.join(" ")
                );
            }
            ReplyType::Error => return Err(error_of(&r)),
            ReplyType::End => return Ok(()),
            _ => {}
        }
    }
}

/// Before `events` streams: when no agent it watches is online, say on
/// stderr that it waits for them (their events stream once they connect).
/// An unknown `server` fails here, as `status` does.
async fn say_if_waiting(
    c: &mut Client,
    server: Option<&str>,
    selector: Option<&str>,
) -> anyhow::Result<()> {
    let v = c
        .call_to(Action::Status(StatusRequest::default()), server, selector)
        .await?;
    let rows = v.as_array().map(Vec::as_slice).unwrap_or_default();
    if rows.iter().any(|a| a["online"].as_bool() == Some(true)) {
        return Ok(());
    }
    match (server, selector) {
        (Some(s), _) => eprintln!("agent {s} is offline; waiting for it to come online"),
        (None, Some(sel)) if rows.is_empty() => {
            eprintln!("no agent matches {sel:?}; waiting for matching agents to come online")
        }
        (None, Some(sel)) => eprintln!(
            "no agent matching {sel:?} is online; waiting for matching agents to come online"
        ),
        (None, None) => eprintln!("no agent is online; waiting for agents to come online"),
    }
    Ok(())
}

/// `status`: the fleet at a glance.
pub async fn status(
    c: &mut Client,
    server: Option<&str>,
    selector: Option<&str>,
    out: Output,
) -> anyhow::Result<()> {
    let v = c
        .call_to(Action::Status(StatusRequest::default()), server, selector)
        .await?;
    if out == Output::Json {
        return output::json(&v);
    }
    output::table(&STATUS_HEADER, &status_rows(&v, now_unix()));
    Ok(())
}

/// `status`'s table: one row per container, or one per agent without any
/// saying why (offline, Docker unavailable, no snapshot yet, no containers);
/// the host's CPU and memory on each of its agent's rows.
fn status_rows(v: &Value, now: i64) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    for a in v.as_array().into_iter().flatten() {
        let name = a["server"].as_str().unwrap_or("?").to_string();
        let online = a["online"].as_bool() == Some(true);
        let (host_cpu, host_mem) = (percent(&a["host"]["cpu_percent"]), host_mem(&a["host"]));
        let cs = a["containers"].as_array().cloned().unwrap_or_default();
        if !online || cs.is_empty() {
            let what = if !online {
                "offline".to_string()
            } else if a["docker_available"].as_bool() == Some(false) {
                format!(
                    "docker unavailable: {}",
                    a["docker_error"].as_str().unwrap_or("")
                )
            } else if a["snapshot_at"].is_null() {
                "waiting for the first snapshot".to_string()
            } else {
                "no containers".to_string()
            };
            let mut row = vec![name, what, host_cpu, host_mem];
            row.resize(STATUS_HEADER.len(), "-".into());
            rows.push(row);
            continue;
        }
        for c in cs {
            rows.push(vec![
                name.clone(),
                "online".into(),
                host_cpu.clone(),
                host_mem.clone(),
                c["name"].as_str().unwrap_or("?").into(),
                c["image"].as_str().unwrap_or("?").into(),
                c["state"].as_str().unwrap_or("?").into(),
                c["health"].as_str().unwrap_or("-").into(),
                percent(&c["cpu_percent"]),
                c["mem_usage"]
                    .as_u64()
                    .map(size)
                    .unwrap_or_else(|| "-".into()),
                c["restarts"].as_i64().unwrap_or(0).to_string(),
                uptime(&c["started_at"], now),
            ]);
        }
    }
    rows
}

/// A CPU figure as `12.5%`, or `-` without one.
fn percent(v: &Value) -> String {
    v.as_f64()
        .map(|p| format!("{p:.1}%"))
        .unwrap_or_else(|| "-".into())
}

/// The host's memory as `3.1GiB/7.8GiB` (in use / total), or `-` without
/// a host sample (no snapshot yet, or an agent older than the field).
fn host_mem(host: &Value) -> String {
    match (
        host["mem_used_bytes"].as_u64(),
        host["mem_total_bytes"].as_u64(),
    ) {
        (Some(used), Some(total)) => format!("{}/{}", size(used), size(total)),
        _ => "-".into(),
    }
}

/// How long a container has run, from its `started_at`: `5m`, or `-` when
/// it is not running (or its agent predates the field).
fn uptime(started_at: &Value, now: i64) -> String {
    started_at
        .as_str()
        .and_then(parse_rfc3339)
        .map(|t| human_age(now - t))
        .unwrap_or_else(|| "-".into())
}

/// `status`'s columns: one row per container, or one per agent without any.
const STATUS_HEADER: [&str; 12] = [
    "SERVER",
    "AGENT",
    "HOST CPU",
    "HOST MEM",
    "CONTAINER",
    "IMAGE",
    "STATE",
    "HEALTH",
    "CPU %",
    "MEM",
    "RESTARTS",
    "UPTIME",
];

/// `history`.
pub async fn history(
    c: &mut Client,
    server: &str,
    container: &str,
    since: &str,
    resolution: Option<&str>,
    out: Output,
) -> anyhow::Result<()> {
    let payload = HistoryRequest {
        container: container.to_string(),
        since: Some(Since::Text(since.to_string())),
        since_s: None,
        resolution: resolution.map(str::to_string),
    };
    let v = c.call(Action::History(payload), Some(server)).await?;
    if out == Output::Json {
        return output::json(&v);
    }
    let rows: Vec<Vec<String>> = v["points"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            vec![
                rfc3339(p["t_s"].as_i64().unwrap_or(0)),
                percent(&p["cpu_avg"]),
                percent(&p["cpu_max"]),
                size(p["mem_avg"].as_u64().unwrap_or(0)),
                size(p["mem_max"].as_u64().unwrap_or(0)),
                p["state"].as_str().unwrap_or("?").into(),
                p["health"].as_str().unwrap_or("-").into(),
                p["restarts"].to_string(),
            ]
        })
        .collect();
    output::table(
        &[
            "TIME", "CPU AVG", "CPU MAX", "MEM AVG", "MEM MAX", "STATE", "HEALTH", "RESTARTS",
        ],
        &rows,
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_rows_say_why_an_agent_has_no_containers_and_how_long_each_ran() {
        let v = json!([
            {"server": "a", "online": true, "snapshot_at": null, "containers": []},
            {"server": "b", "online": false, "containers": []},
            {"server": "c", "online": true, "snapshot_at": "2026-11-25T09:46:40Z",
             "host": {"cpu_percent": 37.3, "cpus": 2, "mem_used_bytes": 3_328_599_654_u64,
                      "mem_total_bytes": 8_375_186_227_u64},
             "containers": [
                {"name": "web", "image": "app:1", "state": "running", "restarts": 2,
                 "started_at": "2026-11-25T09:41:40Z"},
                {"name": "old", "image": "app:0", "state": "exited", "restarts": 0}
             ]}
        ]);
        let rows = status_rows(&v, 1_795_600_000);
        assert_eq!(rows[0][1], "waiting for the first snapshot");
        assert_eq!(rows[1][1], "offline");
        assert!(rows.iter().all(|r| r.len() == STATUS_HEADER.len()));
        assert_eq!(rows[2][10..], ["2".to_string(), "5m".to_string()]);
        assert_eq!(rows[3][11], "-");
        // The host on each of its agent's rows; `-` before a snapshot.
        for r in &rows[2..] {
            assert_eq!(r[2..4], ["37.3%".to_string(), "3.1GiB/7.8GiB".to_string()]);
        }
        assert_eq!(rows[0][2..4], ["-".to_string(), "-".to_string()]);
    }
}
