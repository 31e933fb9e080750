//! One Docker events subscription per agent process, whatever the number of
//! watchers: container events are pushed to the hub on the control channel,
//! and the hub fans them out to its subscribers. The subscription is renewed
//! (with backoff) when the engine goes away and comes back.

use std::collections::HashMap;
use std::sync::Arc;

use bollard::query_parameters::EventsOptions;
use futures_util::StreamExt;
use nextdeploy_shared::docker::Event;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use super::{classify, Engine};
use crate::limits::{EVENTS_RETRY_MAX, EVENTS_RETRY_MIN};

/// The container actions worth telling people about.
const ACTIONS: &[&str] = &[
    "create",
    "start",
    "die",
    "oom",
    "kill",
    "restart",
    "health_status",
    "stop",
    "destroy",
    "pause",
    "unpause",
];

/// Turn an engine event into ours; `None` for actions we do not forward.
pub fn convert(
    action: &str,
    id: Option<String>,
    attrs: &HashMap<String, String>,
    time_nano: Option<i64>,
) -> Option<Event> {
    let (action, health) = match action.split_once(": ") {
        Some(("health_status", h)) => ("health_status", Some(h.trim().to_string())),
        _ => (action, None),
    };
    if !ACTIONS.contains(&action) {
        return None;
    }
    Some(Event {
        kind: "container".into(),
        action: action.into(),
        time_ms: time_nano
            .map(|n| n / 1_000_000)
            .unwrap_or_else(nextdeploy_shared::time::now_unix_ms),
        container_id: id,
        container: attrs.get("name").cloned(),
        image: attrs.get("image").cloned(),
        exit_code: attrs.get("exitCode").and_then(|c| c.parse().ok()),
        health,
        signal: attrs.get("signal").cloned(),
        ..Default::default()
    })
}

/// Watch events until `shutdown`, pushing each visible one as an `event` reply.
pub async fn watch(
    engine: Arc<Engine>,
    recorder: Arc<crate::buffer::Recorder>,
    shutdown: CancellationToken,
) {
    let mut delay = EVENTS_RETRY_MIN;
    loop {
        let docker = match engine.docker().await {
            Ok(d) => d,
            Err(e) => {
                debug!(error = %e, "events: engine unavailable");
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = shutdown.cancelled() => return,
                }
                delay = (delay * 2).min(EVENTS_RETRY_MAX);
                continue;
            }
        };
        delay = EVENTS_RETRY_MIN;
        let mut filters = HashMap::new();
        filters.insert("type".to_string(), vec!["container".to_string()]);
        let mut stream = docker.events(Some(EventsOptions {
            since: None,
            until: None,
            filters: Some(filters),
        }));
        info!("watching Docker events");
        loop {
            let next = tokio::select! {
                n = stream.next() => n,
                _ = shutdown.cancelled() => return,
            };
            match next {
                Some(Ok(m)) => {
                    let attrs = m
                        .actor
                        .as_ref()
                        .and_then(|a| a.attributes.clone())
                        .unwrap_or_default();
                    if !engine.visible(Some(&attrs)) {
                        continue;
                    }
                    let id = m.actor.as_ref().and_then(|a| a.id.clone());
                    if let Some(ev) =
                        convert(m.action.as_deref().unwrap_or(""), id, &attrs, m.time_nano)
                    {
                        let data = serde_json::to_value(&ev).unwrap_or_default();
                        // Kept until the hub has it, connected or not.
                        recorder.record(crate::buffer::Kind::Event, data);
                    }
                }
                Some(Err(e)) => {
                    let err = classify(&e);
                    engine.failed(&err);
                    debug!(error = %err, "events stream failed");
                    break;
                }
                None => {
                    engine.failed(&super::DockerError::new(
                        nextdeploy_shared::protocol::ErrorCode::DockerUnavailable,
                        "events stream ended",
                    ));
                    break;
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_die_and_health() {
        let mut a = HashMap::new();
        a.insert("name".to_string(), "web".to_string());
        a.insert("exitCode".to_string(), "3".to_string());
        let e = convert("die", Some("abc".into()), &a, Some(1_000_000_000)).unwrap();
        assert_eq!(e.exit_code, Some(3));
        assert_eq!(e.container.as_deref(), Some("web"));
        assert_eq!(e.time_ms, 1000);
        let h = convert("health_status: unhealthy", None, &a, None).unwrap();
        assert_eq!(h.action, "health_status");
        assert_eq!(h.health.as_deref(), Some("unhealthy"));
        assert!(convert("exec_start: sh", None, &a, None).is_none());
    }
}
