#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Flow control and cancellation of agent streams (docs/channel.md), through
//! the `diag_stream` action: a client that stops reading stalls only its own
//! stream (the hub's memory stays bounded, the agent waits for credit, other
//! requests to the same agent keep flowing), the stream resumes when the
//! client reads again, `cancel` ends it with `cancelled`, a small stream
//! arrives whole, a stream sunk at the hub (`sink: "hub"`) is counted and not
//! relayed, and a client vanishing mid-stream does not hurt the agent.

use std::time::{Duration, Instant};

use nextdeploy_shared::limits::{CLIENT_SEND_QUEUE, STREAM_WINDOW};
use nextdeploy_tests::*;
use serde_json::Value;

const MIB: u64 = 1024 * 1024;
const GIB: u64 = 1024 * MIB;
/// One `log` reply of the big streams.
const CHUNK: u64 = 65536;
/// Replies queued by the agent's handler ahead of its writer
/// (`HANDLER_QUEUE` in agent/src/limits.rs).
const AGENT_HANDLER_QUEUE: u64 = 16;
/// Hub RSS allowed while a 1 GiB stream is stalled. The stalled stream may
/// hold: its window at the hub (2 MiB, plus one frame in flight), the
/// client's send queue (256 replies of 64 KiB = 16 MiB as JSON, about twice
/// that counting the decoded copies), the WebSocket writer's buffer (one
/// message) — some 40 MiB on top of an idle debug-build hub of ~20-30 MiB.
/// Socket buffers are kernel memory, not RSS. 150 MiB leaves room for
/// allocator slack while still catching any buffering proportional to the
/// stream (1 GiB).
const RSS_BOUND: u64 = 150 * MIB;

async fn setup(name: &str) -> (Hub, Agent) {
    let hub = start_hub().unwrap();
    let agent = enroll_agent(&hub, name, "env=test").unwrap();
    wait_online(&hub, &[name], Duration::from_secs(15)).unwrap();
    (hub, agent)
}

fn diag(id: u64, server: &str, bytes: u64, chunk: u64) -> Value {
    json!({"id": id, "action": "diag_stream", "server": server,
           "payload": {"bytes": bytes, "chunk": chunk}})
}

/// One ping on `ws` answered with a `result` within `within`; its latency.
async fn ping_within(ws: &mut Ws, id: u64, server: &str, within: Duration) -> Duration {
    let t = Instant::now();
    let r = ws
        .request(
            &json!({"id": id, "action": "ping", "server": server}),
            within,
        )
        .await
        .unwrap_or_else(|e| panic!("ping #{id} not answered within {within:?}: {e:#}"));
    assert_eq!(r["type"], json!("result"), "ping #{id}: {r}");
    assert!(r["data"]["agent_time_ms"].is_u64(), "ping #{id}: {r}");
    t.elapsed()
}

/// Length of the `chunk` of a `log` reply, checking it is all `x`.
fn chunk_len(r: &Value) -> u64 {
    let c = r["data"]["chunk"]
        .as_str()
        .unwrap_or_else(|| panic!("log reply without a chunk string: {r}"));
    assert!(c.bytes().all(|b| b == b'x'), "chunk is not all x");
    c.len() as u64
}

/// The largest number of replies the stalled stream can have produced
/// before the agent had to wait for credit: everything that may sit between
/// the agent's handler and the test's socket reader.
fn max_buffered_replies(chunk: u64) -> u64 {
    let sys_max = |p: &str| -> u64 {
        std::fs::read_to_string(p)
            .ok()
            .and_then(|s| s.split_whitespace().nth(2).and_then(|v| v.parse().ok()))
            .unwrap_or(64 * MIB)
    };
    // hub -> client TCP: the hub's send buffer plus the test's receive buffer
    let sockets = sys_max("/proc/sys/net/ipv4/tcp_wmem") + sys_max("/proc/sys/net/ipv4/tcp_rmem");
    CLIENT_SEND_QUEUE as u64
        + u64::from(STREAM_WINDOW) / chunk
        + 2
        + AGENT_HANDLER_QUEUE
        + 2
        + sockets / chunk
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_reader_stalls_only_its_own_stream_then_resumes_and_cancels() {
    let (hub, mut agent) = setup("flow-a").await;
    let hub_pid = hub.pid().unwrap();
    let agent_pid = agent.pid().unwrap();
    let idle_rss = rss_bytes(hub_pid).unwrap();

    let mut stalled = ws_connect(&hub, Some(&hub.admin_token), None)
        .await
        .unwrap();
    let mut pinger = ws_connect(&hub, Some(&hub.admin_token), None)
        .await
        .unwrap();
    stalled
        .send_json(&diag(1, "flow-a", GIB, CHUNK))
        .await
        .unwrap();

    // ~10 s without reading `stalled`: 20 pings on the other client, each
    // answered within 1 s, while the hub's memory stays bounded.
    let stall_start = Instant::now();
    let mut peak_rss = idle_rss;
    let mut worst_ping = Duration::ZERO;
    let mut agent_cpu_mid = None;
    for i in 0..20u64 {
        let took = ping_within(&mut pinger, 100 + i, "flow-a", Duration::from_secs(1)).await;
        worst_ping = worst_ping.max(took);
        let rss = rss_bytes(hub_pid).unwrap();
        peak_rss = peak_rss.max(rss);
        assert!(
            rss < RSS_BOUND,
            "hub RSS {} MiB while a stream is stalled (bound {} MiB, idle {} MiB)\n{}",
            rss / MIB,
            RSS_BOUND / MIB,
            idle_rss / MIB,
            hub.log_tail()
        );
        if i == 10 {
            agent_cpu_mid = Some((Instant::now(), cpu_time(agent_pid).unwrap()));
        }
        // pacing: spread the pings over the stall (this is the stall itself)
        tokio::time::sleep(Duration::from_millis(450)).await;
    }
    let stalled_for = stall_start.elapsed();
    // The agent waits for credit instead of producing: over the second half
    // of the stall it used (almost) no CPU.
    let (t_mid, cpu_mid) = agent_cpu_mid.unwrap();
    let agent_cpu = cpu_time(agent_pid).unwrap().saturating_sub(cpu_mid);
    let wall = t_mid.elapsed();
    eprintln!(
        "stalled {stalled_for:?}: hub RSS idle {} MiB, peak {} MiB; worst ping {worst_ping:?}; \
         agent CPU {agent_cpu:?} over the last {wall:?}",
        idle_rss / MIB,
        peak_rss / MIB
    );
    assert!(
        agent_cpu < wall / 5,
        "the agent kept working ({agent_cpu:?} CPU in {wall:?}) while its reader was stalled"
    );

    // The client reads again: the stream resumes, well past anything that
    // could have been buffered while it was stalled.
    let must_read = max_buffered_replies(CHUNK) + 200;
    let resume_start = Instant::now();
    let mut logs = 0u64;
    let mut bytes = 0u64;
    while logs < must_read {
        let r = stalled
            .recv_json(Duration::from_secs(10))
            .await
            .unwrap_or_else(|e| panic!("stream did not resume after {logs} replies: {e:#}"));
        assert_eq!(r["id"], json!(1), "{r}");
        assert_eq!(r["type"], json!("log"), "after {logs} log replies: {r}");
        assert_eq!(r["server"], json!("flow-a"), "{r}");
        bytes += chunk_len(&r);
        logs += 1;
    }
    eprintln!(
        "resumed: {logs} replies ({} MiB) in {:?} (at most {} could have been buffered)",
        bytes / MIB,
        resume_start.elapsed(),
        max_buffered_replies(CHUNK)
    );
    assert!(
        bytes < GIB,
        "the whole stream arrived before it was cancelled"
    );

    // Cancel it: `{cancelled: 1}` for the cancel, then the stream ends with
    // `error` code `cancelled` (log replies already queued may come first).
    stalled
        .send_json(&json!({"id": 2, "action": "cancel", "payload": {"id": 1}}))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let (mut cancel_ack, mut stream_end) = (None, None);
    let mut after_cancel = 0u64;
    while cancel_ack.is_none() || stream_end.is_none() {
        let left = deadline.saturating_duration_since(Instant::now());
        let r = stalled.recv_json(left).await.unwrap_or_else(|e| {
            panic!(
                "cancel: ack {cancel_ack:?}, end {stream_end:?} after {after_cancel} logs: {e:#}"
            )
        });
        match (r["id"].as_u64(), r["type"].as_str()) {
            (Some(1), Some("log")) => {
                assert!(stream_end.is_none(), "log after the stream ended: {r}");
                after_cancel += 1;
            }
            (Some(1), _) => {
                assert!(stream_end.is_none(), "second terminal reply: {r}");
                stream_end = Some(r);
            }
            (Some(2), _) => cancel_ack = Some(r),
            _ => panic!("unexpected reply {r}"),
        }
    }
    let ack = cancel_ack.unwrap();
    assert_eq!(ack["type"], json!("result"), "{ack}");
    assert_eq!(ack["data"]["cancelled"], json!(1), "{ack}");
    let end = stream_end.unwrap();
    assert_eq!(end["type"], json!("error"), "{end}");
    assert_eq!(end["data"]["code"], json!("cancelled"), "{end}");
    eprintln!("cancelled; {after_cancel} queued log replies arrived after the cancel");

    // Nothing more for the cancelled stream, and the connection still works.
    stalled
        .send_json(&json!({"id": 3, "action": "ping", "server": "flow-a"}))
        .await
        .unwrap();
    let r = loop {
        let r = stalled.recv_json(Duration::from_secs(5)).await.unwrap();
        assert_ne!(
            r["id"],
            json!(1),
            "reply for the cancelled stream after its end: {r}"
        );
        if r["id"] == json!(3) {
            break r;
        }
    };
    assert_eq!(r["type"], json!("result"), "{r}");
    ping_within(&mut pinger, 200, "flow-a", Duration::from_secs(1)).await;
    // and the agent stopped producing
    wait_agent_idle(agent_pid);
    assert!(agent.exit_status().is_none(), "{}", agent.log_tail());
    stalled.close().await;
    pinger.close().await;
}

/// Wait (bounded) until the agent uses under 20% of a CPU over a 1 s window:
/// its stream handler is gone.
fn wait_agent_idle(pid: u32) {
    wait_until(
        "the agent to stop producing",
        Duration::from_secs(15),
        Duration::from_millis(10),
        || {
            let (t, c) = (Instant::now(), cpu_time(pid)?);
            std::thread::sleep(Duration::from_secs(1));
            let used = cpu_time(pid)?.saturating_sub(c);
            Ok((used < t.elapsed() / 5).then_some(()))
        },
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_stream_arrives_whole_and_ends() {
    let (hub, _agent) = setup("flow-b").await;
    let mut ws = ws_connect(&hub, Some(&hub.admin_token), None)
        .await
        .unwrap();
    let total = 5 * MIB;
    let chunk = 100_000u64;
    let start = Instant::now();
    ws.send_json(&diag(7, "flow-b", total, chunk))
        .await
        .unwrap();
    let (mut bytes, mut logs) = (0u64, 0u64);
    let end = loop {
        let r = ws
            .recv_json(Duration::from_secs(20))
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "after {logs} replies, {bytes} bytes: {e:#}\n{}",
                    hub.log_tail()
                )
            });
        assert_eq!(r["id"], json!(7), "{r}");
        if r["type"] != json!("log") {
            break r;
        }
        let n = chunk_len(&r);
        assert!(n <= chunk, "chunk of {n} bytes > {chunk}");
        bytes += n;
        logs += 1;
    };
    assert_eq!(end["type"], json!("end"), "{end}");
    assert_eq!(bytes, total, "sum of chunk lengths");
    assert_eq!(logs, total.div_ceil(chunk), "number of log replies");
    eprintln!("5 MiB in {logs} replies in {:?}", start.elapsed());
    // nothing after the end
    ping_within(&mut ws, 8, "flow-b", Duration::from_secs(5)).await;
    ws.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_sunk_at_the_hub_is_counted_not_relayed() {
    let (hub, _agent) = setup("flow-s").await;
    let mut ws = ws_connect(&hub, Some(&hub.admin_token), None)
        .await
        .unwrap();
    let (total, chunk) = (8 * MIB, 65536u64);
    let mut req = diag(9, "flow-s", total, chunk);
    req["payload"]["sink"] = json!("hub");
    ws.send_json(&req).await.unwrap();
    // The first reply is the result: no log reply reaches the client.
    let r = ws.recv_json(Duration::from_secs(30)).await.unwrap();
    assert_eq!(r["id"], json!(9), "{r}");
    assert_eq!(r["type"], json!("result"), "{r}");
    assert_eq!(r["server"], json!("flow-s"), "{r}");
    let d = &r["data"];
    assert_eq!(d["replies"], json!(total / chunk), "{r}");
    // Each reply's data is {"chunk":"x..."}: the chunk plus 12 bytes of JSON.
    assert_eq!(d["data_bytes"], json!(total + 12 * (total / chunk)), "{r}");
    assert!(d["mb_s"].as_f64().is_some_and(|v| v > 0.0), "{r}");
    // The connection carries on.
    ping_within(&mut ws, 10, "flow-s", Duration::from_secs(5)).await;
    ws.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_the_websocket_mid_stream_does_not_hurt_the_agent() {
    let (hub, mut agent) = setup("flow-c").await;
    let agent_pid = agent.pid().unwrap();

    // A polite close mid-stream, then an abrupt one (socket dropped).
    for polite in [true, false] {
        let mut ws = ws_connect(&hub, Some(&hub.admin_token), None)
            .await
            .unwrap();
        ws.send_json(&diag(1, "flow-c", GIB, CHUNK)).await.unwrap();
        for i in 0..20 {
            let r = ws.recv_json(Duration::from_secs(10)).await.unwrap();
            assert_eq!(r["type"], json!("log"), "reply #{i}: {r}");
        }
        if polite {
            ws.close().await;
        } else {
            drop(ws);
        }
        // The stream's work stops on the agent (the hub closed its channel).
        wait_agent_idle(agent_pid);

        let mut ws = ws_connect(&hub, Some(&hub.admin_token), None)
            .await
            .unwrap();
        for i in 0..5 {
            ping_within(&mut ws, 10 + i, "flow-c", Duration::from_secs(1)).await;
        }
        ws.close().await;
        let (status, body) = hub.http_get("/health").unwrap();
        assert_eq!(status, 200, "{body}");
        let h: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(h["agents_online"], json!(1), "{h}");
        let e = hub.agent_entry("flow-c").unwrap().unwrap();
        assert_eq!(e["online"], json!(true), "{e}");
        assert!(agent.exit_status().is_none(), "{}", agent.log_tail());
    }

    // And a whole stream still works afterwards.
    let mut ws = ws_connect(&hub, Some(&hub.admin_token), None)
        .await
        .unwrap();
    ws.send_json(&diag(2, "flow-c", MIB, CHUNK)).await.unwrap();
    let mut bytes = 0;
    loop {
        let r = ws.recv_json(Duration::from_secs(10)).await.unwrap();
        match r["type"].as_str() {
            Some("log") => bytes += chunk_len(&r),
            Some("end") => break,
            _ => panic!("{r}"),
        }
    }
    assert_eq!(bytes, MIB);
    ws.close().await;
}
