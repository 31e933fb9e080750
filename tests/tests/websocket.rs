#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The WebSocket API: authentication, Origin check, malformed and unknown
//! messages, size cap, clients leaving without a close frame; and /health.

use std::time::Duration;

use nextdeploy_tests::*;

const T: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_and_bad_tokens_get_401() {
    let hub = start_hub().unwrap();
    let err = ws_connect(&hub, None, None)
        .await
        .err()
        .expect("no token accepted");
    assert_eq!(ws_refusal_status(&err), Some(401), "{err}");
    let err = ws_connect(&hub, Some("nda_000000000000_0000"), None)
        .await
        .err()
        .expect("bad token accepted");
    assert_eq!(ws_refusal_status(&err), Some(401), "{err}");
    // a well-formed token with the right id but a wrong secret
    let mut parts: Vec<String> = hub.admin_token.split('_').map(str::to_string).collect();
    let c = parts[2].chars().next().unwrap();
    parts[2].replace_range(0..1, if c == '0' { "1" } else { "0" });
    let err = ws_connect(&hub, Some(&parts.join("_")), None)
        .await
        .err()
        .expect("wrong secret accepted");
    assert_eq!(ws_refusal_status(&err), Some(401), "{err}");
    // a revoked token
    let v = hub
        .cli_json(&["token", "create", "--role", "viewer", "--name", "gone"])
        .unwrap();
    let tok = v["token"].as_str().unwrap().to_string();
    let id = v["id"].as_str().unwrap().to_string();
    ws_connect(&hub, Some(&tok), None)
        .await
        .unwrap()
        .close()
        .await;
    hub.cli(&["token", "revoke", &id]).unwrap().ok().unwrap();
    let err = ws_connect(&hub, Some(&tok), None)
        .await
        .err()
        .expect("revoked token accepted");
    assert_eq!(ws_refusal_status(&err), Some(401), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_origin_gets_403_same_origin_works() {
    let hub = start_hub().unwrap();
    let err = ws_connect(&hub, Some(&hub.admin_token), Some("http://evil.example"))
        .await
        .err()
        .expect("foreign origin accepted");
    assert_eq!(ws_refusal_status(&err), Some(403), "{err}");
    let origin = format!("http://127.0.0.1:{}", hub.http_port);
    let mut ws = ws_connect(&hub, Some(&hub.admin_token), Some(&origin))
        .await
        .unwrap();
    let r = ws
        .request(&json!({"id": 1, "action": "list_agents"}), T)
        .await
        .unwrap();
    assert_eq!(r["type"], json!("result"), "{r}");
    assert!(r["data"].is_array(), "{r}");
    ws.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_unknown_messages_get_errors_and_connection_survives() {
    let hub = start_hub().unwrap();
    let mut ws = ws_connect(&hub, Some(&hub.admin_token), None)
        .await
        .unwrap();

    ws.send_text("{not json").await.unwrap();
    let r = ws.recv_json(T).await.unwrap();
    assert_eq!(r["id"], serde_json::Value::Null, "{r}");
    assert_eq!(r["type"], json!("error"), "{r}");
    assert_eq!(r["data"]["code"], json!("bad_request"), "{r}");

    let r = ws
        .request(&json!({"id": 2, "action": "list_agents"}), T)
        .await
        .unwrap();
    assert_eq!(r["type"], json!("result"), "{r}");
    assert!(r["data"].is_array(), "{r}");

    let r = ws
        .request(&json!({"id": 3, "action": "frobnicate"}), T)
        .await
        .unwrap();
    assert_eq!(r["type"], json!("error"), "{r}");
    assert_eq!(r["data"]["code"], json!("unknown_action"), "{r}");

    // valid JSON, wrong shape, with an id: the error carries the id
    ws.send_json(&json!({"id": 4, "action": 17})).await.unwrap();
    let r = ws.recv_json(T).await.unwrap();
    assert_eq!(r["type"], json!("error"), "{r}");
    assert!(r["id"] == json!(4) || r["id"].is_null(), "{r}");

    // a request to an unknown agent: a clear error on its id
    let r = ws
        .request(&json!({"id": 5, "action": "ping", "server": "nope"}), T)
        .await
        .unwrap();
    assert_eq!(r["type"], json!("error"), "{r}");
    assert_eq!(r["data"]["code"], json!("unknown_agent"), "{r}");
    assert!(r["data"].to_string().contains("nope"), "{r}");

    let r = ws
        .request(&json!({"id": 6, "action": "list_agents"}), T)
        .await
        .unwrap();
    assert_eq!(r["type"], json!("result"), "{r}");
    ws.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_message_is_refused_and_hub_keeps_serving() {
    let hub = start_hub().unwrap();
    let mut ws = ws_connect(&hub, Some(&hub.admin_token), None)
        .await
        .unwrap();
    let big = format!(
        "{{\"id\":1,\"action\":\"list_agents\",\"payload\":\"{}\"}}",
        "x".repeat(2 * 1024 * 1024)
    );
    // the send itself may fail if the hub closes mid-message
    let _ = ws.send_text(big).await;
    match ws.next_event(T).await {
        WsEvent::Close | WsEvent::End | WsEvent::Error(_) => {}
        other => panic!("oversized message was not refused: {other:?}"),
    }
    let mut ws2 = ws_connect(&hub, Some(&hub.admin_token), None)
        .await
        .unwrap();
    let r = ws2
        .request(&json!({"id": 1, "action": "list_agents"}), T)
        .await
        .unwrap();
    assert_eq!(r["type"], json!("result"), "{r}");
    ws2.close().await;
}

/// A client that drops its TCP connection without a close frame is routine:
/// nothing about it in the hub's log at the default level (info), and the
/// hub keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_leaving_without_a_close_frame_is_not_logged_at_info() {
    let hub = start_hub().unwrap();
    for i in 0..3 {
        let mut ws = ws_connect(&hub, Some(&hub.admin_token), None)
            .await
            .unwrap();
        let r = ws
            .request(&json!({"id": i, "action": "list_agents"}), T)
            .await
            .unwrap();
        assert_eq!(r["type"], json!("result"), "{r}");
        drop(ws);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let log = hub.log_text();
    assert!(
        !log.contains("client connection error") && !log.contains("went away"),
        "{}",
        hub.log_tail()
    );
    let mut ws = ws_connect(&hub, Some(&hub.admin_token), None)
        .await
        .unwrap();
    let r = ws
        .request(&json!({"id": 9, "action": "list_agents"}), T)
        .await
        .unwrap();
    assert_eq!(r["type"], json!("result"), "{r}");
    ws.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_reports_status_version_and_counts() {
    let hub = start_hub().unwrap();
    let (status, body) = hub.http_get("/health").unwrap();
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"], json!("ok"), "{v}");
    assert!(v["version"].as_str().is_some_and(|s| !s.is_empty()), "{v}");
    assert_eq!(v["agents_online"], json!(0), "{v}");
    assert_eq!(v["agents_total"], json!(0), "{v}");

    let _a = enroll_agent(&hub, "h-1", "env=dev").unwrap();
    wait_online(&hub, &["h-1"], Duration::from_secs(15)).unwrap();
    let (_, body) = hub.http_get("/health").unwrap();
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["agents_online"], json!(1), "{v}");
    assert_eq!(v["agents_total"], json!(1), "{v}");
}
