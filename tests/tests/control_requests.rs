#![allow(clippy::unwrap_used, clippy::expect_used)]
//! One-shot requests on the agents' control channels (docs/channel.md): many
//! requests in flight on one agent each get exactly their own answer, with the
//! client's id; a selector fan-out answers every online agent and reports the
//! offline ones; a request waiting on an agent that goes silent fails as soon
//! as the hub drops the connection (not after the request timeout); and a
//! stream on the same agent keeps its own channel beside them.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use nextdeploy_tests::*;
use serde_json::Value;

/// Replies on `ws` until `want` of them matched `keep`, within `within`.
async fn collect(
    ws: &mut Ws,
    want: usize,
    within: Duration,
    mut keep: impl FnMut(&Value) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + within;
    let mut got = Vec::new();
    while got.len() < want {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "only {} of {want} replies within {within:?}: {got:?}",
            got.len()
        );
        let v = ws.recv_json(left).await.unwrap();
        if keep(&v) {
            got.push(v);
        }
    }
    got
}

#[tokio::test]
async fn concurrent_one_shots_get_their_own_answers() {
    let hub = start_hub().unwrap();
    let _agent = enroll_agent(&hub, "ctl-many", "env=test").unwrap();
    wait_online(&hub, &["ctl-many"], Duration::from_secs(15)).unwrap();
    let mut ws = ws_connect(&hub, Some(&hub.admin_token), None)
        .await
        .unwrap();

    // A stream on the same agent, so channels and control requests mix.
    ws.send_json(
        &json!({"id": 9000, "action": "diag_stream", "server": "ctl-many",
                          "payload": {"bytes": 4 << 20, "chunk": 65536}}),
    )
    .await
    .unwrap();
    // 60 requests in flight at once (the hub allows 64 per client): pings and
    // infos interleaved, ids deliberately not in order.
    let ids: Vec<u64> = (0..60u64).map(|i| 100 + (i * 37) % 60).collect();
    for &id in &ids {
        let action = if id % 2 == 0 { "ping" } else { "info" };
        ws.send_json(&json!({"id": id, "action": action, "server": "ctl-many"}))
            .await
            .unwrap();
    }
    let mut stream_bytes = 0u64;
    let mut stream_ended = false;
    let answers = collect(&mut ws, ids.len(), Duration::from_secs(20), |v| {
        if v["id"] == json!(9000) {
            if v["type"] == "log" {
                stream_bytes += v["data"]["chunk"].as_str().map_or(0, |c| c.len() as u64);
            }
            stream_ended |= v["type"] == "end";
            return false;
        }
        true
    })
    .await;
    let mut seen = HashSet::new();
    for a in &answers {
        let id = a["id"]
            .as_u64()
            .unwrap_or_else(|| panic!("answer without id: {a}"));
        assert!(seen.insert(id), "id {id} answered twice: {answers:?}");
        assert_eq!(a["type"], "result", "{a}");
        assert_eq!(a["server"], "ctl-many", "{a}");
        if id % 2 == 0 {
            assert!(a["data"]["agent_time_ms"].is_u64(), "ping answer: {a}");
            assert!(a["data"]["hub_agent_rtt_ms"].is_f64(), "ping answer: {a}");
        } else {
            assert!(a["data"]["hostname"].is_string(), "info answer: {a}");
        }
    }
    assert_eq!(seen, ids.iter().copied().collect::<HashSet<_>>());
    // No one-shot answer is followed by a stray `end` for its id, and the
    // stream completes whole beside them.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !stream_ended {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "the stream did not end: {stream_bytes} bytes"
        );
        let v = ws.recv_json(left).await.unwrap();
        assert_eq!(
            v["id"],
            json!(9000),
            "unexpected reply after the answers: {v}"
        );
        if v["type"] == "log" {
            stream_bytes += v["data"]["chunk"].as_str().map_or(0, |c| c.len() as u64);
        }
        stream_ended = v["type"] == "end";
    }
    assert_eq!(stream_bytes, 4 << 20);
    ws.close().await;
}

#[tokio::test]
async fn fanout_answers_online_agents_and_reports_offline_ones() {
    let hub = start_hub().unwrap();
    let _a = enroll_agent(&hub, "ctl-fan-a", "role=fan").unwrap();
    let _b = enroll_agent(&hub, "ctl-fan-b", "role=fan").unwrap();
    let mut c = enroll_agent(&hub, "ctl-fan-c", "role=fan").unwrap();
    let _other = enroll_agent(&hub, "ctl-other", "role=else").unwrap();
    wait_online(
        &hub,
        &["ctl-fan-a", "ctl-fan-b", "ctl-fan-c", "ctl-other"],
        Duration::from_secs(20),
    )
    .unwrap();
    c.kill();
    wait_offline(&hub, &["ctl-fan-c"], Duration::from_secs(15)).unwrap();

    let mut ws = ws_connect(&hub, Some(&hub.admin_token), None)
        .await
        .unwrap();
    ws.send_json(&json!({"id": 5, "action": "ping", "selector": "role=fan"}))
        .await
        .unwrap();
    let mut results = HashSet::new();
    let mut offline = HashSet::new();
    loop {
        let v = ws.recv_json(Duration::from_secs(15)).await.unwrap();
        assert_eq!(v["id"], json!(5), "{v}");
        let server = v["server"].as_str().map(str::to_string);
        match v["type"].as_str() {
            Some("result") => assert!(results.insert(server.unwrap()), "twice: {v}"),
            Some("error") => {
                assert_eq!(v["data"]["code"], "agent_offline", "{v}");
                assert!(
                    v["data"]["message"].as_str().unwrap().contains("last seen"),
                    "{v}"
                );
                offline.insert(server.unwrap());
            }
            Some("end") => break,
            _ => panic!("unexpected reply in a fan-out: {v}"),
        }
    }
    assert_eq!(
        results,
        HashSet::from(["ctl-fan-a".to_string(), "ctl-fan-b".to_string()])
    );
    assert_eq!(offline, HashSet::from(["ctl-fan-c".to_string()]));
    ws.close().await;
}

#[tokio::test]
async fn waiting_request_fails_when_the_agent_goes_silent() {
    let hub = Hub::start(HubOpts::args(["--heartbeat-timeout", "5s"])).unwrap();
    let agent = enroll_agent(&hub, "ctl-silent", "env=test").unwrap();
    wait_online(&hub, &["ctl-silent"], Duration::from_secs(15)).unwrap();
    let mut ws = ws_connect(&hub, Some(&hub.admin_token), None)
        .await
        .unwrap();
    let first = ws
        .request(
            &json!({"id": 1, "action": "ping", "server": "ctl-silent"}),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    assert_eq!(first["type"], "result", "{first}");

    let pid = agent.pid().unwrap();
    agent.signal("STOP").unwrap();
    let _cont = ContOnDrop(pid);
    let sent = Instant::now();
    let r = ws
        .request(
            &json!({"id": 2, "action": "ping", "server": "ctl-silent"}),
            Duration::from_secs(25),
        )
        .await
        .unwrap();
    let took = sent.elapsed();
    assert_eq!(r["type"], "error", "{r}");
    assert_eq!(r["data"]["code"], "agent_offline", "{r}");
    // The hub gives the connection up after 5 s of silence; the request's own
    // timeout (30 s) must not be what ends it.
    assert!(
        took < Duration::from_secs(12),
        "answered after {took:?}: {r}"
    );
    // The next request fails fast with the last-seen time.
    let t = Instant::now();
    let r = ws
        .request(
            &json!({"id": 3, "action": "info", "server": "ctl-silent"}),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert_eq!(r["data"]["code"], "agent_offline", "{r}");
    assert!(
        r["data"]["message"].as_str().unwrap().contains("last seen"),
        "{r}"
    );
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "offline answer took {:?}",
        t.elapsed()
    );
    ws.close().await;
}

#[tokio::test]
async fn a_silent_agent_fails_only_its_own_part_of_a_fanout() {
    let hub = Hub::start(HubOpts::args(["--heartbeat-timeout", "5s"])).unwrap();
    let _live = enroll_agent(&hub, "ctl-part-live", "role=part").unwrap();
    let silent = enroll_agent(&hub, "ctl-part-silent", "role=part").unwrap();
    wait_online(
        &hub,
        &["ctl-part-live", "ctl-part-silent"],
        Duration::from_secs(20),
    )
    .unwrap();
    let pid = silent.pid().unwrap();
    silent.signal("STOP").unwrap();
    let _cont = ContOnDrop(pid);
    let mut ws = ws_connect(&hub, Some(&hub.admin_token), None)
        .await
        .unwrap();
    let sent = Instant::now();
    ws.send_json(&json!({"id": 9, "action": "ping", "selector": "role=part"}))
        .await
        .unwrap();
    let mut parts = Vec::new();
    let ended = loop {
        let v = ws.recv_json(Duration::from_secs(25)).await.unwrap();
        assert_eq!(v["id"], json!(9), "{v}");
        if v["type"] == "end" {
            break sent.elapsed();
        }
        parts.push(v);
    };
    assert_eq!(parts.len(), 2, "{parts:?}");
    let by = |name: &str| parts.iter().find(|v| v["server"] == name).cloned();
    let live = by("ctl-part-live").expect("the live agent's part");
    assert_eq!(live["type"], "result", "{live}");
    assert!(live["data"]["hub_agent_rtt_ms"].is_number(), "{live}");
    let gone = by("ctl-part-silent").expect("the silent agent's part");
    assert_eq!(gone["type"], "error", "{gone}");
    assert_eq!(gone["data"]["code"], "agent_offline", "{gone}");
    // Ended by the hub giving the connection up after 5 s of silence, not by
    // the request's own timeout (30 s).
    assert!(ended < Duration::from_secs(12), "ended after {ended:?}");
    ws.close().await;
}
