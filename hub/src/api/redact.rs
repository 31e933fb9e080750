//! What a viewer may not read in an agent's answer. Roles are known here, at
//! the hub, so the agents send whole documents and the hub takes the secrets
//! out, in one place, for every path an `inspect` answer travels (one server
//! on a stream or the control channel, a selector fan-out).
//!
//! Redacted for viewers: the value of every `Config.Env` entry (names kept:
//! `DB_PASSWORD=<redacted>`), where images and deploys put passwords and API
//! keys; and the values of `HostConfig.LogConfig.Config` (a log driver's
//! options: `splunk-token`, `awslogs` credentials). Not redacted: the command
//! line (`Path`, `Args`, `Config.Cmd`, `Config.Entrypoint`), which a viewer
//! sees in `ps` anyway and every user of the host sees in `/proc`; labels,
//! mounts and binds (paths, not contents), networks and the image.

use std::sync::Arc;

use nextdeploy_shared::protocol::{Action, Reply, Request};
use serde_json::Value;
use tokio::sync::mpsc;

use super::{route, ReplySink};
use crate::limits::CLIENT_SEND_QUEUE;
use crate::Services;

/// What replaces a secret value.
pub const REDACTED: &str = "<redacted>";

/// Route `inspect` for a viewer: the same answers as for anyone else, each
/// with its secrets replaced on the way to the client.
pub async fn routed_for_viewer(
    svc: &Arc<Services>,
    caller: &super::Caller,
    req: &Request,
    action: &Action,
    out: &ReplySink,
) {
    // As deep as the client's own queue: the relay waits on it as it would
    // on the client.
    let (tx, mut rx) = mpsc::channel::<Reply>(CLIENT_SEND_QUEUE);
    let relay = async move {
        route::routed(svc, caller, req, action, &tx).await;
    };
    let forward = async {
        while let Some(mut reply) = rx.recv().await {
            reply_for_viewer(&mut reply);
            if out.send(reply).await.is_err() {
                break;
            }
        }
    };
    tokio::join!(relay, forward);
}

/// Redact one reply carrying an inspect document (other replies, errors and
/// `end`, carry none and pass as they are).
pub fn reply_for_viewer(reply: &mut Reply) {
    if let Some(raw) = reply.raw_data.take() {
        reply.data = serde_json::from_str(raw.text()).unwrap_or_default();
    }
    inspect_document(&mut reply.data);
}

/// Replace the secret values of an inspect document (see the module doc).
pub fn inspect_document(doc: &mut Value) {
    if let Some(env) = doc.pointer_mut("/Config/Env").and_then(Value::as_array_mut) {
        for entry in env {
            if let Value::String(s) = entry {
                if let Some((name, _)) = s.split_once('=') {
                    *s = format!("{name}={REDACTED}");
                }
            }
        }
    }
    let log_options = doc
        .pointer_mut("/HostConfig/LogConfig/Config")
        .and_then(Value::as_object_mut);
    if let Some(options) = log_options {
        for value in options.values_mut() {
            *value = Value::String(REDACTED.into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn env_values_and_log_options_go_names_and_the_rest_stay() {
        let mut doc = json!({
            "Path": "run", "Args": ["--x"],
            "Config": {"Env": ["DB_PASSWORD=hunter2", "EMPTY=", "A=b=c", "BARE"], "Cmd": ["run"]},
            "HostConfig": {"LogConfig": {"Type": "splunk", "Config": {"splunk-token": "s3"}},
                           "Binds": ["/a:/b"]}
        });
        inspect_document(&mut doc);
        assert_eq!(
            doc["Config"]["Env"],
            json!([
                "DB_PASSWORD=<redacted>",
                "EMPTY=<redacted>",
                "A=<redacted>",
                "BARE"
            ])
        );
        assert_eq!(
            doc["HostConfig"]["LogConfig"]["Config"]["splunk-token"],
            REDACTED
        );
        assert_eq!(doc["HostConfig"]["LogConfig"]["Type"], "splunk");
        assert_eq!(doc["Config"]["Cmd"], json!(["run"]));
        assert_eq!(doc["HostConfig"]["Binds"], json!(["/a:/b"]));
        assert!(!doc.to_string().contains("hunter2"));
    }

    #[test]
    fn documents_without_the_fields_are_left_alone() {
        let mut doc = json!({"error": "no such container", "Config": {"Env": null}});
        let before = doc.clone();
        inspect_document(&mut doc);
        assert_eq!(doc, before);
    }
}
