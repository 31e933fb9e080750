#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Budgets one role cannot exhaust for another: viewers following logs on
//! every agent through 8 connections hold at most their share of each
//! agent's stream slots (the rest answer `busy`, saying so), and an
//! operator's `stop` still succeeds at once on every agent; a connection
//! holds at most 64 requests, whatever the action; a token holds at most 32
//! WebSocket connections (the 33rd gets 429) while another token still
//! connects, and a closed connection gives its place back.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use nextdeploy_tests::docker::{
    docker_lock, fixture_image, require_docker, Container, DockerLock, Names,
};
use nextdeploy_tests::*;
use serde_json::Value;

/// Stream slots the hub keeps per agent (`MAX_STREAMS_PER_AGENT`).
const AGENT_SLOTS: usize = 256;
/// The viewers' share of them (`VIEWER_STREAMS_PER_AGENT`).
const VIEWER_SHARE: usize = 192;
/// Requests in flight per connection (`MAX_REQUESTS_PER_CLIENT`).
const PER_CONNECTION: u64 = 64;
/// WebSocket connections per token (`--max-connections-per-token` default).
const PER_TOKEN: usize = 32;
/// Viewer connections following logs.
const VIEWER_CONNS: usize = 8;
/// How fast an operator's `stop` must answer while viewers hold their share.
const STOP_WITHIN: Duration = Duration::from_secs(5);
/// Bound on every wait for a batch of replies.
const REPLIES_WITHIN: Duration = Duration::from_secs(60);

/// Two agents on this engine, each scoped to its own container (running the
/// fixture's `logs` mode). Fields drop containers, agents, hub, lock.
struct Fleet {
    containers: Vec<Container>,
    agents: Vec<Agent>,
    hub: Hub,
    names: Names,
    _lock: DockerLock,
}

impl Fleet {
    fn start() -> Fleet {
        let lock = docker_lock().unwrap();
        require_docker().unwrap();
        let image = fixture_image().unwrap();
        let hub = start_hub().unwrap();
        let names = Names::new("budgets");
        let (mut agents, mut containers) = (Vec::new(), Vec::new());
        for name in ["bg-a1", "bg-a2"] {
            let scope = format!("nextdeploy.agent={}-{name}", names.prefix);
            let labels = format!("test={}", names.prefix);
            let jt = hub.join_token(name, &labels, "1h").unwrap();
            let mut agent = Agent::enroll(&hub, name, &jt.token).unwrap();
            set_config_key(&agent.config, "scope_label", &format!("{scope:?}")).unwrap();
            agent.start().unwrap();
            wait_online(&hub, &[name], Duration::from_secs(20)).unwrap();
            let c = Container::run(&names, &image, name, &["--label", &scope], &["logs"]);
            containers.push(c.unwrap());
            agents.push(agent);
        }
        Fleet {
            containers,
            agents,
            hub,
            names,
            _lock: lock,
        }
    }

    fn logs(&self) -> String {
        let mut s = self.hub.log_tail();
        for a in &self.agents {
            s.push('\n');
            s.push_str(&a.log_tail());
        }
        s
    }
}

fn token(hub: &Hub, role: &str, name: &str) -> String {
    let v = hub
        .cli_json(&["token", "create", "--role", role, "--name", name])
        .unwrap();
    v["token"].as_str().unwrap().to_string()
}

fn logs_follow(id: u64, server: &str, container: &str) -> Value {
    json!({"id": id, "action": "logs", "server": server,
           "payload": {"container": container, "follow": true, "tail": 1}})
}

/// How one request fared: its stream opened (a `log` arrived), or an error.
#[derive(Debug)]
enum Outcome {
    Open,
    Error(String, String),
}

/// Read `ws` until each of `ids` has a first `log` or an `error`.
async fn outcomes(ws: &mut Ws, ids: &HashMap<u64, String>) -> HashMap<u64, Outcome> {
    let deadline = Instant::now() + REPLIES_WITHIN;
    let mut got = HashMap::new();
    while got.len() < ids.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        let v = match ws.recv_json(left).await {
            Ok(v) => v,
            Err(e) => panic!("{} of {} requests resolved: {e}", got.len(), ids.len()),
        };
        let Some(id) = v["id"].as_u64().filter(|id| ids.contains_key(id)) else {
            continue;
        };
        match v["type"].as_str() {
            Some("log") => {
                got.entry(id).or_insert(Outcome::Open);
            }
            Some("error") => {
                let code = v["data"]["code"].as_str().unwrap_or("").to_string();
                let message = v["data"]["message"].as_str().unwrap_or("").to_string();
                got.insert(id, Outcome::Error(code, message));
            }
            _ => {}
        }
    }
    got
}

#[test]
fn viewers_following_logs_everywhere_cannot_make_an_operators_stop_busy() {
    let fleet = Fleet::start();
    let hub = &fleet.hub;
    let viewer = token(hub, "viewer", "follower");
    let viewer2 = token(hub, "viewer", "bystander");
    let operator = token(hub, "operator", "ops");
    let servers: Vec<(&str, &str)> = fleet
        .agents
        .iter()
        .zip(&fleet.containers)
        .map(|(a, c)| (a.name.as_str(), c.name.as_str()))
        .collect();
    for c in &fleet.containers {
        c.wait_log("stderr last", Duration::from_secs(20)).unwrap();
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        // 8 viewer connections, 64 follows each, half on each agent: 256 per
        // agent, more than the viewers' share of 192.
        let t0 = Instant::now();
        let mut conns = Vec::new();
        for _ in 0..VIEWER_CONNS {
            let mut ws = ws_connect(hub, Some(&viewer), None).await.unwrap();
            let mut ids = HashMap::new();
            for id in 1..=PER_CONNECTION {
                let (server, container) = servers[id as usize % servers.len()];
                ws.send_json(&logs_follow(id, server, container))
                    .await
                    .unwrap();
                ids.insert(id, server.to_string());
            }
            conns.push((ws, ids));
        }
        let mut open: HashMap<String, usize> = HashMap::new();
        let mut refused: HashMap<String, usize> = HashMap::new();
        for (ws, ids) in &mut conns {
            for (id, outcome) in outcomes(ws, ids).await {
                let server = ids[&id].clone();
                match outcome {
                    Outcome::Open => *open.entry(server).or_default() += 1,
                    Outcome::Error(code, message) => {
                        assert_eq!(code, "busy", "{message}");
                        assert!(message.contains("viewer share"), "{message}");
                        assert!(message.contains(&server), "{message}");
                        *refused.entry(server).or_default() += 1;
                    }
                }
            }
        }
        eprintln!("viewer follows: {open:?} open, {refused:?} refused in {:?}", t0.elapsed());
        for (server, _) in &servers {
            assert_eq!(
                open.get(*server),
                Some(&VIEWER_SHARE),
                "viewer streams open on {server}: {open:?}, refused {refused:?}\n{}",
                fleet.logs()
            );
            assert_eq!(refused.get(*server), Some(&(AGENT_SLOTS - VIEWER_SHARE)));
        }

        // Another viewer token shares the same budget; over a selector each
        // agent's part is refused the same way.
        let mut other = ws_connect(hub, Some(&viewer2), None).await.unwrap();
        let sel = json!({"id": 1, "action": "logs", "selector": format!("test={}", fleet.names.prefix),
                         "payload": {"container": servers[0].1, "follow": true}});
        other.send_json(&sel).await.unwrap();
        let mut parts = HashMap::new();
        loop {
            let v = other.recv_json(REPLIES_WITHIN).await.unwrap();
            if v["type"] == "end" && v.get("server").is_none_or(Value::is_null) {
                break;
            }
            assert_eq!(v["type"], "error", "{v}");
            assert_eq!(v["data"]["code"], "busy", "{v}");
            assert!(v["data"]["message"].as_str().unwrap().contains("viewer share"));
            parts.insert(v["server"].as_str().unwrap().to_string(), v);
        }
        assert_eq!(parts.len(), servers.len(), "{parts:?}");

        // An operator still opens a stream on a full agent...
        let mut ops = ws_connect(hub, Some(&operator), None).await.unwrap();
        let (server, container) = servers[0];
        let first = ops
            .request(&logs_follow(1, server, container), REPLIES_WITHIN)
            .await
            .unwrap();
        assert_eq!(first["type"], "log", "{first}\n{}", fleet.logs());

        // ...and every agent stops its container at once.
        for (server, container) in &servers {
            let started = Instant::now();
            let out = hub
                .cli_as(
                    &operator,
                    &["agent", "stop", "--server", server, container, "-o", "json"],
                )
                .unwrap();
            let took = started.elapsed();
            eprintln!("operator stop on {server}: {took:?} (CLI process included)");
            assert!(out.success(), "{}\n{}", out.describe(), fleet.logs());
            assert!(
                took < STOP_WITHIN,
                "stop on {server} took {took:?}\n{}",
                out.describe()
            );
        }
        for c in &fleet.containers {
            assert_eq!(c.state().unwrap(), "exited");
        }
        // The viewer's connections stay open (and counted) until the end.
        connections_per_token(hub, &viewer, &operator, conns.len()).await;
        drop(conns);
    });
}

/// The viewer token already holds `held` connections: fill it to
/// its cap, see the next refused with 429 while another token connects, then
/// free a place.
async fn connections_per_token(hub: &Hub, viewer: &str, operator: &str, held: usize) {
    let mut more = Vec::new();
    for _ in held..PER_TOKEN {
        more.push(ws_connect(hub, Some(viewer), None).await.unwrap());
    }
    let err = ws_connect(hub, Some(viewer), None).await.err().unwrap();
    assert_eq!(ws_refusal_status(&err), Some(429), "{err}");
    if let tokio_tungstenite::tungstenite::Error::Http(resp) = &err {
        let body = String::from_utf8_lossy(resp.body().as_deref().unwrap_or_default());
        assert!(body.contains("--max-connections-per-token"), "{body}");
    }
    // The refused upgrade broke nothing: the connections answer.
    let mut first = more.pop().unwrap();
    let who = json!({"id": 9000, "action": "whoami", "payload": {}});
    let r = first.request(&who, Duration::from_secs(10)).await.unwrap();
    assert_eq!(r["type"], "result", "{r}");

    // A connection of another token is not affected, and holds at most 64
    // requests whatever the action (events: a hub-side stream).
    let mut ops = ws_connect(hub, Some(operator), None).await.unwrap();
    for id in 1..=PER_CONNECTION {
        let ev = json!({"id": id, "action": "events", "payload": {}});
        ops.send_json(&ev).await.unwrap();
    }
    let over = json!({"id": PER_CONNECTION + 1, "action": "events", "payload": {}});
    let r = ops.request(&over, Duration::from_secs(10)).await.unwrap();
    assert_eq!(r["type"], "error", "{r}");
    assert_eq!(r["data"]["code"], "busy", "{r}");
    assert!(
        r["data"]["message"]
            .as_str()
            .unwrap()
            .contains("per connection"),
        "{r}"
    );

    // A closed connection gives its place back.
    first.close().await;
    let ok = wait_for_connection(hub, viewer).await;
    assert!(
        ok.is_some(),
        "no place freed after a close\n{}",
        hub.log_tail()
    );
}

/// A new connection with `token`, retried for up to 5 s.
async fn wait_for_connection(hub: &Hub, token: &str) -> Option<Ws> {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        match ws_connect(hub, Some(token), None).await {
            Ok(ws) => return Some(ws),
            Err(e) if ws_refusal_status(&e) == Some(429) => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(e) => panic!("{e}"),
        }
    }
    None
}
