#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The typed contract seen from a WebSocket client: every payload is read by
//! its action's type, so a misspelt field, a wrong type or a target the
//! action has no use for is a `bad_request` naming what is wrong, while the
//! documented requests keep working; answers match the committed JSON Schema's
//! field names.

use std::time::Duration;

use nextdeploy_tests::*;
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(10);

async fn error_of(ws: &mut Ws, req: Value) -> (String, String) {
    let r = ws.request(&req, T).await.unwrap();
    assert_eq!(r["type"], json!("error"), "{req} -> {r}");
    (
        r["data"]["code"].as_str().unwrap_or("").to_string(),
        r["data"]["message"].as_str().unwrap_or("").to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payloads_are_checked_by_their_action_and_errors_name_the_field() {
    let hub = start_hub().unwrap();
    let mut ws = ws_connect(&hub, Some(&hub.admin_token), None)
        .await
        .unwrap();

    // An unknown field: refused, named.
    let (code, msg) = error_of(
        &mut ws,
        json!({"id": 1, "action": "create_token", "payload": {"role": "viewer", "nmae": "x"}}),
    )
    .await;
    assert_eq!(code, "bad_request", "{msg}");
    assert!(
        msg.contains("nmae"),
        "the message does not name the field: {msg}"
    );

    // A wrong type: refused, with the field's path.
    let (code, msg) = error_of(
        &mut ws,
        json!({"id": 2, "action": "create_token", "payload": {"role": "viewer", "ttl_s": "1h"}}),
    )
    .await;
    assert_eq!(code, "bad_request", "{msg}");
    assert!(
        msg.contains("ttl_s"),
        "the message does not name the field: {msg}"
    );

    // A value outside the type (a role that does not exist).
    let (code, msg) = error_of(
        &mut ws,
        json!({"id": 3, "action": "create_token", "payload": {"role": "root"}}),
    )
    .await;
    assert_eq!(code, "bad_request", "{msg}");
    assert!(msg.contains("role"), "{msg}");

    // A hub action given a server: refused instead of ignored.
    let (code, msg) = error_of(
        &mut ws,
        json!({"id": 4, "action": "list_agents", "server": "prod-1"}),
    )
    .await;
    assert_eq!(code, "bad_request", "{msg}");
    assert!(msg.contains("list_agents"), "{msg}");

    // A one-server action given a selector.
    let (code, _) = error_of(
        &mut ws,
        json!({"id": 5, "action": "history", "selector": "env=prod", "payload": {"container": "web"}}),
    )
    .await;
    assert_eq!(code, "bad_request");

    // An action only the hub sends to agents is unknown to clients.
    let (code, _) = error_of(
        &mut ws,
        json!({"id": 6, "action": "rotate_key_commit", "payload": {"public_key": "x"}}),
    )
    .await;
    assert_eq!(code, "unknown_action");

    // The documented requests still work: a missing payload is {}, and the
    // answers carry the fields the schema names.
    let r = ws
        .request(&json!({"id": 7, "action": "whoami"}), T)
        .await
        .unwrap();
    assert_eq!(r["type"], json!("result"), "{r}");
    for field in ["id", "name", "role", "hub_fingerprint"] {
        assert!(r["data"].get(field).is_some(), "whoami lacks {field}: {r}");
    }
    let r = ws
        .request(
            &json!({"id": 8, "action": "create_join_token",
                    "payload": {"name": "typed-1", "labels": {"env": "prod"}, "ttl_s": 600}}),
            T,
        )
        .await
        .unwrap();
    assert_eq!(r["type"], json!("result"), "{r}");
    assert_eq!(r["data"]["labels"]["env"], json!("prod"), "{r}");
    assert!(
        r["data"]["token"].as_str().unwrap().starts_with("ndj_"),
        "{r}"
    );
    // Labels as k=v text are the same labels.
    let r = ws
        .request(
            &json!({"id": 9, "action": "create_join_token",
                    "payload": {"name": "typed-2", "labels": "env=prod,role=web"}}),
            T,
        )
        .await
        .unwrap();
    assert_eq!(
        r["data"]["labels"],
        json!({"env": "prod", "role": "web"}),
        "{r}"
    );

    // The schema the hub was built with names every action it answers.
    let schema =
        std::fs::read_to_string(workspace_root().join("docs/protocol.schema.json")).unwrap();
    for action in [
        "whoami",
        "create_join_token",
        "list_agents",
        "logs",
        "deploy",
    ] {
        assert!(schema.contains(&format!("\"{action}\"")), "{action}");
    }
    ws.close().await;
}
