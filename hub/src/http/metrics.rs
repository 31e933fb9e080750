//! `GET /metrics`: the fleet and the hub in the Prometheus text format
//! (0.0.4), for a scraper with a bearer token (any role), or anyone with
//! `--metrics-public`. Containers carry the names cAdvisor uses, so existing
//! Grafana dashboards work, labelled `server`, `name`, `image`; the figures
//! are each agent's latest health snapshot (the agents push one every
//! `health_interval_s`), so a scrape asks no agent anything.
//!
//! Written straight into one string rather than through a client library's
//! registry: the series are the fleet's snapshots at the moment of the scrape
//! (about 1.8 million for 10,000 agents x 20 containers), and registering
//! each as an object only to print it would cost more than the printing.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use nextdeploy_shared::docker::ContainerHealth;
use nextdeploy_shared::protocol::alerts::AlertInfo;

use crate::agents::AgentConn;
use crate::api::auth;
use crate::store::{self, AgentRecord};
use crate::Services;

/// The text format's content type.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `GET /metrics`.
pub async fn metrics(State(svc): State<Arc<Services>>, headers: HeaderMap) -> Response {
    if !svc.config.metrics_public {
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        if let Err(e) = auth::authenticate(&svc, bearer).await {
            let head = [(header::WWW_AUTHENTICATE, "Bearer")];
            return (StatusCode::UNAUTHORIZED, head, format!("{e}\n")).into_response();
        }
    }
    let read = store::blocking(&svc.store, |s| {
        Ok((s.list_agents()?, s.deploy_counts()?, s.firing_alerts()?))
    })
    .await;
    let (agents, deploys, firing) = match read {
        Ok(r) => r,
        Err(e) => return (StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")).into_response(),
    };
    let mut body = render(&svc, &agents, &deploys);
    write_alerts(&mut body, &firing);
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], body).into_response()
}

/// The whole exposition.
fn render(svc: &Services, records: &[AgentRecord], deploys: &[(String, u64)]) -> String {
    let agents: Vec<(&AgentRecord, Option<Arc<AgentConn>>)> = records
        .iter()
        .filter(|r| r.revoked_at.is_none())
        .map(|r| (r, svc.registry.get(&r.name)))
        .collect();
    let mut out = String::with_capacity(4096 + agents.len() * 2048);
    write_agents(&mut out, &agents);
    write_containers(&mut out, &agents);
    family(
        &mut out,
        "nextdeploy_deploys",
        "gauge",
        "Deploys the store holds, by status.",
    );
    for (status, n) in deploys {
        let _ = writeln!(out, "nextdeploy_deploys{{status=\"{}\"}} {n}", esc(status));
    }
    write_hub(&mut out, svc);
    out
}

fn write_agents(out: &mut String, agents: &[(&AgentRecord, Option<Arc<AgentConn>>)]) {
    family(
        out,
        "nextdeploy_agent_up",
        "gauge",
        "1 when the agent is connected to this hub.",
    );
    for (r, c) in agents {
        let _ = writeln!(
            out,
            "nextdeploy_agent_up{{server=\"{}\"}} {}",
            esc(&r.name),
            u8::from(c.is_some())
        );
    }
    let name = "nextdeploy_agent_last_seen_timestamp_seconds";
    family(
        out,
        name,
        "gauge",
        "When the hub last heard from the agent, Unix seconds.",
    );
    for (r, c) in agents {
        let seen = c
            .as_ref()
            .map(|c| c.last_seen.load(std::sync::atomic::Ordering::Relaxed))
            .or(r.last_seen);
        if let Some(t) = seen {
            let _ = writeln!(out, "{name}{{server=\"{}\"}} {t}", esc(&r.name));
        }
    }
    family(
        out,
        "nextdeploy_agent_info",
        "gauge",
        "The connected agent's version and host.",
    );
    for (r, c) in agents {
        if let Some(c) = c {
            let (v, h) = (esc(&c.hello.version), esc(&c.hello.hostname));
            let _ = writeln!(
                out,
                "nextdeploy_agent_info{{server=\"{}\",version=\"{v}\",hostname=\"{h}\"}} 1",
                esc(&r.name)
            );
        }
    }
    family(
        out,
        "nextdeploy_agent_docker_up",
        "gauge",
        "1 when the agent's engine answered at its latest snapshot.",
    );
    for (r, c) in agents {
        if let Some(s) = c.as_ref().and_then(|c| c.latest_health()) {
            let _ = writeln!(
                out,
                "nextdeploy_agent_docker_up{{server=\"{}\"}} {}",
                esc(&r.name),
                u8::from(s.docker_available)
            );
        }
    }
}

/// One figure of a container, or none.
type Figure = fn(&ContainerHealth) -> Option<f64>;

/// The container families: name, type, help, figure.
const CONTAINER_FAMILIES: [(&str, &str, &str, Figure); 6] = [
    (
        "container_cpu_usage_seconds_total",
        "counter",
        "CPU time the container used, seconds.",
        |c| c.cpu_total_ns.map(|n| n as f64 / 1e9),
    ),
    (
        "container_memory_working_set_bytes",
        "gauge",
        "Memory in use minus inactive file cache, bytes.",
        |c| running(c).then_some(c.mem_usage as f64),
    ),
    (
        "container_spec_memory_limit_bytes",
        "gauge",
        "The container's memory limit, bytes.",
        |c| running(c).then_some(c.mem_limit as f64),
    ),
    (
        "container_network_receive_bytes_total",
        "counter",
        "Bytes the container received.",
        |c| running(c).then_some(c.net_rx as f64),
    ),
    (
        "container_network_transmit_bytes_total",
        "counter",
        "Bytes the container sent.",
        |c| running(c).then_some(c.net_tx as f64),
    ),
    (
        "nextdeploy_container_restarts_total",
        "counter",
        "Docker's restart count of the container.",
        |c| Some(c.restarts.max(0) as f64),
    ),
];

fn running(c: &ContainerHealth) -> bool {
    c.state == "running" && c.stats_from.is_some()
}

fn write_containers(out: &mut String, agents: &[(&AgentRecord, Option<Arc<AgentConn>>)]) {
    let snaps: Vec<(&str, Arc<nextdeploy_shared::docker::HealthSnapshot>)> = agents
        .iter()
        .filter_map(|(r, c)| Some((r.name.as_str(), c.as_ref()?.latest_health()?)))
        .collect();
    for (name, kind, help, figure) in CONTAINER_FAMILIES {
        family(out, name, kind, help);
        for (server, s) in &snaps {
            for c in &s.containers {
                if let Some(v) = figure(c) {
                    let labels = format!(
                        "server=\"{}\",name=\"{}\",image=\"{}\"",
                        esc(server),
                        esc(&c.name),
                        esc(&c.image)
                    );
                    let _ = writeln!(out, "{name}{{{labels}}} {v}");
                }
            }
        }
    }
    family(
        out,
        "nextdeploy_container_state",
        "gauge",
        "1 for the container's state (running, exited, ...).",
    );
    for (server, s) in &snaps {
        for c in &s.containers {
            let _ = writeln!(
                out,
                "nextdeploy_container_state{{server=\"{}\",name=\"{}\",state=\"{}\"}} 1",
                esc(server),
                esc(&c.name),
                esc(&c.state)
            );
        }
    }
    family(
        out,
        "nextdeploy_container_health",
        "gauge",
        "1 for the container's healthcheck status, where it has one.",
    );
    for (server, s) in &snaps {
        for c in &s.containers {
            if let Some(h) = &c.health {
                let _ = writeln!(
                    out,
                    "nextdeploy_container_health{{server=\"{}\",name=\"{}\",health=\"{}\"}} 1",
                    esc(server),
                    esc(&c.name),
                    esc(h)
                );
            }
        }
    }
}

/// `nextdeploy_alerts_firing{rule, severity}`: how many alerts of each rule
/// fire now (rules with none are absent: the series come and go with them).
fn write_alerts(out: &mut String, firing: &[AlertInfo]) {
    let name = "nextdeploy_alerts_firing";
    family(
        out,
        name,
        "gauge",
        "Alerts firing now, by rule and severity.",
    );
    let mut by_rule: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    for a in firing {
        *by_rule.entry((&a.rule, a.severity.as_str())).or_default() += 1;
    }
    for ((rule, severity), n) in by_rule {
        let _ = writeln!(
            out,
            "{name}{{rule=\"{}\",severity=\"{severity}\"}} {n}",
            esc(rule)
        );
    }
}

fn write_hub(out: &mut String, svc: &Services) {
    use std::sync::atomic::Ordering::Relaxed;
    let m = &svc.metrics;
    family(
        out,
        "nextdeploy_hub_agents_connected",
        "gauge",
        "Agents connected to this hub.",
    );
    let _ = writeln!(
        out,
        "nextdeploy_hub_agents_connected {}",
        svc.registry.len()
    );
    family(
        out,
        "nextdeploy_hub_websocket_clients",
        "gauge",
        "WebSocket clients connected now.",
    );
    let _ = writeln!(
        out,
        "nextdeploy_hub_websocket_clients {}",
        m.ws_clients.load(Relaxed)
    );
    let name = "nextdeploy_hub_handshakes_refused_total";
    family(
        out,
        name,
        "counter",
        "SSH connections closed at accept (per-source caps and penalties).",
    );
    let _ = writeln!(out, "{name} {}", m.handshakes_refused.load(Relaxed));
    m.write_latency(out);
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// A label value escaped as the text format wants: `\`, `"` and newlines.
fn esc(v: &str) -> std::borrow::Cow<'_, str> {
    if !v.contains(['\\', '"', '\n']) {
        return v.into();
    }
    v.replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', r"\n")
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(esc("web"), "web");
        assert_eq!(esc("a\"b\\c\nd"), r#"a\"b\\c\nd"#);
    }
}
