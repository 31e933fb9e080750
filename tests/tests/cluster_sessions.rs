#![allow(clippy::unwrap_used, clippy::expect_used)]
//! A dashboard session opened on one hub of a cluster holds on every hub
//! (behind a load balancer a browser's next request lands anywhere): its
//! cookie signs in on another hub and opens a WebSocket there; a sign-out
//! on that hub ends it on the first, whose WebSocket opened with it closes
//! within a second.

use std::time::{Duration, Instant};

use hyper::Method;
use nextdeploy_tests::cluster::Shared;
use nextdeploy_tests::*;
use serde_json::json;

fn call(hub: &Hub, method: Method, path: &str, headers: &[(&str, &str)], body: &str) -> HttpReply {
    let pin = hub.tls_pin.clone().unwrap();
    https_request(hub.http_port, &pin, method, path, headers, body.as_bytes()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dashboard_session_holds_on_every_hub_until_signed_out_on_any() {
    let shared = Shared::new();
    let a = shared.first();
    let b = shared.join(&a);
    let body = json!({ "token": a.admin_token }).to_string();
    let (oa, ob) = (a.url(), b.url());
    let json_from = |o: &str| {
        [
            ("Origin", o.to_string()),
            ("Content-Type", "application/json".to_string()),
        ]
    };
    let h = json_from(&oa);
    let hv: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = call(&a, Method::POST, "/api/session", &hv, &body);
    assert_eq!(r.status, 204, "sign-in on A: {}", r.text());
    let cookie = r
        .header("set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .trim()
        .to_string();

    // B knows the session: /api/session and a WebSocket with B's own Origin.
    let r = call(&b, Method::GET, "/api/session", &[("Cookie", &cookie)], "");
    assert_eq!(r.status, 200, "the session on B: {}", r.text());
    let mut on_b = ws_connect_with(&b, &[("Cookie", &cookie), ("Origin", &ob)])
        .await
        .unwrap();
    let who = on_b
        .request(
            &json!({"id": 1, "action": "whoami"}),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    assert_eq!(who["type"], "result", "{who}");
    let mut on_a = ws_connect_with(&a, &[("Cookie", &cookie), ("Origin", &oa)])
        .await
        .unwrap();

    // Signed out on B: A ends it too, and closes its WebSocket.
    let h = json_from(&ob);
    let hv: Vec<(&str, &str)> = h
        .iter()
        .map(|(k, v)| (*k, v.as_str()))
        .chain([("Cookie", cookie.as_str())])
        .collect();
    let r = call(&b, Method::DELETE, "/api/session", &hv, "");
    assert_eq!(r.status, 204, "sign-out on B: {}", r.text());
    let out = Instant::now();
    let end = loop {
        match on_a.next_event(Duration::from_secs(2)).await {
            WsEvent::Text(_) | WsEvent::Binary(_) => continue,
            other => break other,
        }
    };
    assert!(
        !matches!(end, WsEvent::Timeout),
        "A kept the signed-out session's socket open\n{}",
        a.log_tail()
    );
    eprintln!(
        "A closed the WebSocket {:?} after the sign-out on B",
        out.elapsed()
    );
    assert!(
        out.elapsed() < Duration::from_millis(1500),
        "{:?}",
        out.elapsed()
    );
    let r = call(&a, Method::GET, "/api/session", &[("Cookie", &cookie)], "");
    assert_eq!(
        r.status,
        401,
        "the session on A after the sign-out: {}",
        r.text()
    );
}
