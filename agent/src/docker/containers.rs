//! Containers: resolution of a name or id prefix (as the docker CLI does),
//! `ps`, `inspect`, and start/stop/restart/kill.

use std::collections::HashMap;

use bollard::models::{ContainerSummary, PortSummary};
use bollard::query_parameters::{
    InspectContainerOptions, KillContainerOptions, ListContainersOptions, RestartContainerOptions,
    StartContainerOptions, StopContainerOptions,
};
use nextdeploy_shared::docker::ContainerRow;
use nextdeploy_shared::protocol::containers::{LifecycleDone, PsRequest};
use nextdeploy_shared::protocol::ErrorCode;
use nextdeploy_shared::time::rfc3339;
use serde_json::Value;

use super::{DockerError, Engine};
use crate::limits::{MAX_STOP_GRACE_S, NAME_SUGGESTIONS};

/// A resolved container.
#[derive(Debug, Clone)]
pub struct Target {
    /// Full id.
    pub id: String,
    /// Name without `/`.
    pub name: String,
}

fn name_of(c: &ContainerSummary) -> String {
    c.names
        .as_ref()
        .and_then(|n| n.first())
        .map(|n| n.trim_start_matches('/').to_string())
        .unwrap_or_default()
}

/// Every visible container (running or not).
pub async fn list_all(
    engine: &Engine,
    filters: Option<HashMap<String, Vec<String>>>,
) -> Result<Vec<ContainerSummary>, DockerError> {
    let opts = ListContainersOptions {
        all: true,
        filters,
        ..Default::default()
    };
    let list = engine
        .call(|d| async move { d.list_containers(Some(opts)).await })
        .await?;
    Ok(list
        .into_iter()
        .filter(|c| engine.visible(c.labels.as_ref()))
        .collect())
}

fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Resolve `wanted` as the docker CLI does: exact name, then exact id, then a
/// unique id prefix. Hidden containers do not exist.
pub async fn resolve(engine: &Engine, wanted: &str) -> Result<Target, DockerError> {
    let wanted = wanted.trim_start_matches('/');
    if wanted.is_empty() {
        return Err(DockerError::new(
            ErrorCode::BadRequest,
            "payload.container is required",
        ));
    }
    let all = list_all(engine, None).await?;
    let target = |c: &ContainerSummary| Target {
        id: c.id.clone().unwrap_or_default(),
        name: name_of(c),
    };
    if let Some(c) = all.iter().find(|c| name_of(c) == wanted) {
        return Ok(target(c));
    }
    let by_prefix: Vec<&ContainerSummary> = all
        .iter()
        .filter(|c| c.id.as_deref().is_some_and(|id| id.starts_with(wanted)))
        .collect();
    match by_prefix.as_slice() {
        [one] => Ok(target(one)),
        [] => {
            // Deploys' own containers (parked, kept, starting) are never
            // offered: a user should not act on them by a guessed name.
            let mut names: Vec<(usize, String)> = all
                .iter()
                .map(name_of)
                .filter(|n| !is_internal_name(n))
                .map(|n| (distance(wanted, &n), n))
                .collect();
            names.sort();
            let close: Vec<String> = names
                .into_iter()
                .take(NAME_SUGGESTIONS)
                .map(|(_, n)| n)
                .collect();
            let hint = if close.is_empty() {
                "there are no containers".to_string()
            } else {
                format!("closest: {}", close.join(", "))
            };
            Err(DockerError::new(
                ErrorCode::NoSuchContainer,
                format!("no such container: {wanted} ({hint})"),
            ))
        }
        many => {
            Err(DockerError::new(
                ErrorCode::AmbiguousContainer,
                format!(
                "id prefix {wanted} matches {} containers ({}); give more characters or the name",
                many.len(),
                many.iter().map(|c| name_of(c)).collect::<Vec<_>>().join(", ")
            ),
            ))
        }
    }
}

/// Health from a status text such as `Up 5 minutes (healthy)`.
pub fn health_of_status(status: &str) -> Option<String> {
    ["(healthy)", "(unhealthy)", "(health: starting)"]
        .iter()
        .find(|h| status.contains(**h))
        .map(|h| match *h {
            "(healthy)" => "healthy".to_string(),
            "(unhealthy)" => "unhealthy".to_string(),
            _ => "starting".to_string(),
        })
}

/// A summary as a row.
pub fn to_row(c: &ContainerSummary) -> ContainerRow {
    let status = c.status.clone().unwrap_or_default();
    ContainerRow {
        id: c.id.clone().unwrap_or_default(),
        name: name_of(c),
        image: c.image.clone().unwrap_or_default(),
        state: c.state.map(|s| s.to_string()).unwrap_or_default(),
        health: health_of_status(&status),
        status,
        created: rfc3339(c.created.unwrap_or(0)),
        labels: c.labels.clone().unwrap_or_default().into_iter().collect(),
        command: c.command.clone().unwrap_or_default(),
        ports: c.ports.iter().flatten().map(port_text).collect(),
    }
}

/// One port as `docker ps` prints it.
fn port_text(p: &PortSummary) -> String {
    let proto = p.typ.map(|t| t.to_string()).unwrap_or_else(|| "tcp".into());
    let proto = if proto.is_empty() {
        "tcp".to_string()
    } else {
        proto
    };
    match (p.ip.as_deref(), p.public_port) {
        (Some(ip), Some(public)) if ip.contains(':') => {
            format!("[{ip}]:{public}->{}/{proto}", p.private_port)
        }
        (Some(ip), Some(public)) => format!("{ip}:{public}->{}/{proto}", p.private_port),
        (None, Some(public)) => format!("{public}->{}/{proto}", p.private_port),
        (_, None) => format!("{}/{proto}", p.private_port),
    }
}

/// Marks of the containers a deploy makes for itself (`<name>-nd-old-<id>`,
/// `<name>-nd-new-<id>`, `<name>-nd-previous`, `<name>-nd-rolledback`).
const INTERNAL_NAME_MARK: &str = "-nd-";

/// Whether `name` is one of a deploy's own containers.
pub fn is_internal_name(name: &str) -> bool {
    name.contains(INTERNAL_NAME_MARK)
}

/// `ps`: `{all, filters}` with docker's filter syntax (e.g. `{"label": ["k=v"]}`).
pub async fn list_containers(
    engine: &Engine,
    p: &PsRequest,
) -> Result<Vec<ContainerRow>, DockerError> {
    let filters: Option<HashMap<String, Vec<String>>> =
        p.filters.as_ref().map(|f| f.clone().into_iter().collect());
    let opts = ListContainersOptions {
        all: p.all,
        filters,
        ..Default::default()
    };
    let list = engine
        .call(|d| async move { d.list_containers(Some(opts)).await })
        .await?;
    Ok(list
        .iter()
        .filter(|c| engine.visible(c.labels.as_ref()))
        .map(to_row)
        .collect())
}

/// `inspect`: the engine's document, as is.
pub async fn inspect(engine: &Engine, wanted: &str) -> Result<Value, DockerError> {
    let t = resolve(engine, wanted).await?;
    let doc = engine
        .call(|d| async move {
            d.inspect_container(&t.id, None::<InspectContainerOptions>)
                .await
        })
        .await?;
    serde_json::to_value(doc).map_err(|e| DockerError::new(ErrorCode::AgentError, e.to_string()))
}

/// 304 "not modified" (already started/stopped) is success, as for the docker CLI.
fn not_modified_ok(r: Result<(), DockerError>) -> Result<(), DockerError> {
    match r {
        Err(e) if e.http_status == 304 => Ok(()),
        other => other,
    }
}

/// A lifecycle operation with its arguments.
#[derive(Debug, Clone)]
pub enum Lifecycle {
    /// Start.
    Start,
    /// Stop with an optional grace period (seconds).
    Stop(Option<i64>),
    /// Restart with an optional grace period (seconds).
    Restart(Option<i64>),
    /// Send a signal (default SIGKILL).
    Kill(Option<String>),
}

impl Lifecycle {
    fn name(&self) -> &'static str {
        match self {
            Lifecycle::Start => "start",
            Lifecycle::Stop(_) => "stop",
            Lifecycle::Restart(_) => "restart",
            Lifecycle::Kill(_) => "kill",
        }
    }
}

/// start / stop / restart / kill.
pub async fn apply_lifecycle(
    engine: &Engine,
    wanted: &str,
    op: Lifecycle,
) -> Result<LifecycleDone, DockerError> {
    let t = resolve(engine, wanted).await?;
    let action = op.name();
    let grace = |t: Option<i64>| t.map(|t| t.clamp(0, MAX_STOP_GRACE_S) as i32);
    let id = t.id.clone();
    let r =
        match op {
            Lifecycle::Start => engine
                .call(
                    |d| async move { d.start_container(&id, None::<StartContainerOptions>).await },
                )
                .await,
            Lifecycle::Stop(timeout) => {
                let timeout = grace(timeout);
                engine
                    .call(|d| async move {
                        d.stop_container(
                            &id,
                            Some(StopContainerOptions {
                                t: timeout,
                                signal: None,
                            }),
                        )
                        .await
                    })
                    .await
            }
            Lifecycle::Restart(timeout) => {
                let timeout = grace(timeout);
                engine
                    .call(|d| async move {
                        d.restart_container(
                            &id,
                            Some(RestartContainerOptions {
                                t: timeout,
                                signal: None,
                            }),
                        )
                        .await
                    })
                    .await
            }
            Lifecycle::Kill(signal) => {
                let signal = signal.unwrap_or_else(|| "SIGKILL".into());
                engine
                    .call(|d| async move {
                        d.kill_container(&id, Some(KillContainerOptions { signal }))
                            .await
                    })
                    .await
            }
        };
    not_modified_ok(r)?;
    Ok(LifecycleDone {
        id: t.id,
        name: t.name,
        action: action.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deploys_own_containers_are_internal() {
        for n in [
            "web-nd-old-1a2b3c4d",
            "web-nd-new-9f",
            "web-nd-previous",
            "web-nd-rolledback",
        ] {
            assert!(is_internal_name(n), "{n}");
        }
        for n in ["web", "nd-web", "web-ndx"] {
            assert!(!is_internal_name(n), "{n}");
        }
    }

    #[test]
    fn edit_distance() {
        assert_eq!(distance("web", "web"), 0);
        assert_eq!(distance("wbe", "web"), 2);
        assert_eq!(distance("frontend", "frontnd"), 1);
    }

    #[test]
    fn health_from_status() {
        assert_eq!(
            health_of_status("Up 5 minutes (healthy)").as_deref(),
            Some("healthy")
        );
        assert_eq!(
            health_of_status("Up 1 second (health: starting)").as_deref(),
            Some("starting")
        );
        assert_eq!(health_of_status("Up 2 hours"), None);
    }
}
