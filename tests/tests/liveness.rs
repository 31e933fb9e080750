#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Liveness of agent connections: a silent (stopped) agent is marked offline
//! within the heartbeat timeout and comes back when it resumes; a second
//! connection with the same key replaces the first; hub and agent shut down
//! gracefully on SIGTERM; a second SIGINT exits at once.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use nextdeploy_tests::*;
use serde_json::Value;

/// Backoff ceiling of the agent (60 s) plus margin.
const BACKOFF_BOUND: Duration = Duration::from_secs(70);

fn entry(hub: &Hub, name: &str) -> Value {
    hub.agent_entry(name)
        .unwrap()
        .unwrap_or_else(|| panic!("{name} not in agent list"))
}

#[test]
fn stopped_agent_goes_offline_within_heartbeat_timeout_and_comes_back() {
    let hub = Hub::start(HubOpts::args(["--heartbeat-timeout", "5s"])).unwrap();
    let mut agent = enroll_agent(&hub, "live-stop", "env=test").unwrap();
    wait_online(&hub, &["live-stop"], Duration::from_secs(15)).unwrap();
    let first = entry(&hub, "live-stop");

    // A healthy agent stays online, on the same connection, across five
    // heartbeat timeouts (and two of its own 10 s heartbeat intervals).
    let watch = Instant::now();
    while watch.elapsed() < Duration::from_secs(25) {
        let e = entry(&hub, "live-stop");
        assert!(
            e["online"] == json!(true) && e["address"] == first["address"],
            "a healthy agent flapped under --heartbeat-timeout 5s after {:?}: was {first}, now {e}\n{}\n{}",
            watch.elapsed(),
            hub.log_tail(),
            agent.log_tail()
        );
        std::thread::sleep(Duration::from_millis(250));
    }

    let pid = agent.pid().unwrap();
    agent.signal("STOP").unwrap();
    let _cont = ContOnDrop(pid);
    let stopped = Instant::now();
    let list = wait_offline(&hub, &["live-stop"], Duration::from_secs(5 + 3)).unwrap();
    let took = stopped.elapsed();
    let e = list.iter().find(|a| a["name"] == "live-stop").unwrap();
    eprintln!("stopped agent offline after {took:?}: {e}");
    assert_eq!(e["online"], json!(false), "{e}");
    let last_seen = e["last_seen"].as_str().unwrap_or_default();
    assert!(
        last_seen.len() >= 20 && last_seen.starts_with("20"),
        "last_seen not an RFC 3339 time: {e}"
    );

    agent.signal("CONT").unwrap();
    let resumed = Instant::now();
    wait_online(&hub, &["live-stop"], BACKOFF_BOUND).unwrap();
    eprintln!("resumed agent online again after {:?}", resumed.elapsed());
    hub.cli(&["agent", "ping", "--server=live-stop", "-c", "1"])
        .unwrap()
        .ok()
        .unwrap();
    assert!(agent.exit_status().is_none(), "{}", agent.log_tail());
}

/// The agent's live connection to the hub's SSH port: its local address
/// (what the hub lists as the agent's address).
fn conn_to_hub(hub: &Hub, agent: &Agent) -> Option<String> {
    let pid = agent.pid()?;
    let hub_ssh: SocketAddr = hub.ssh_addr().parse().unwrap();
    tcp_connections_of(pid)
        .ok()?
        .into_iter()
        .find(|(_, remote)| *remote == hub_ssh)
        .map(|(local, _)| local.to_string())
}

/// Poll until the one listed entry of `name` is online with the connection
/// of `agent`; every poll must show exactly one entry, online.
fn wait_listed_with_conn_of(hub: &Hub, name: &str, agent: &Agent, timeout: Duration) -> Value {
    let mut last = Value::Null;
    wait_until(
        &format!(
            "{name} listed online with the address of {}",
            agent.config.display()
        ),
        timeout,
        Duration::from_millis(100),
        || {
            let list = hub.agent_list()?;
            let mine: Vec<&Value> = list.iter().filter(|a| a["name"] == name).collect();
            assert_eq!(mine.len(), 1, "entries for {name}: {list:?}");
            last = mine[0].clone();
            let conn = conn_to_hub(hub, agent);
            Ok((mine[0]["online"] == json!(true)
                && conn.is_some()
                && mine[0]["address"].as_str() == conn.as_deref())
            .then(|| mine[0].clone()))
        },
    )
    .unwrap_or_else(|e| {
        panic!(
            "{e:#}\nlast entry: {last}\nconnection of that process: {:?}\n{}\n{}",
            conn_to_hub(hub, agent),
            hub.log_tail(),
            agent.log_tail()
        )
    })
}

#[test]
fn second_connection_with_the_same_key_replaces_the_first() {
    let hub = start_hub().unwrap();
    let mut first = enroll_agent(&hub, "live-dup", "env=test").unwrap();
    wait_online(&hub, &["live-dup"], Duration::from_secs(15)).unwrap();
    let e1 = wait_listed_with_conn_of(&hub, "live-dup", &first, Duration::from_secs(10));
    eprintln!("first connection: {}", e1["address"]);

    let mut second = first.copy_identity("copy").unwrap();
    second.start().unwrap();
    let start = Instant::now();
    let e2 = wait_listed_with_conn_of(&hub, "live-dup", &second, Duration::from_secs(20));
    eprintln!(
        "second connection {} replaced {} after {:?}",
        e2["address"],
        e1["address"],
        start.elapsed()
    );
    assert_ne!(e2["address"], e1["address"]);
    assert_eq!(e2["fingerprint"], e1["fingerprint"]);
    let list = hub.agent_list().unwrap();
    assert_eq!(list.len(), 1, "{list:?}");

    second.kill();
    let killed = Instant::now();
    let e3 = wait_listed_with_conn_of(&hub, "live-dup", &first, BACKOFF_BOUND);
    eprintln!(
        "first agent back online ({}) {:?} after the second was killed",
        e3["address"],
        killed.elapsed()
    );
    hub.cli(&["agent", "ping", "--server=live-dup", "-c", "1"])
        .unwrap()
        .ok()
        .unwrap();
    assert!(first.exit_status().is_none(), "{}", first.log_tail());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_agent_and_hub_gracefully() {
    let mut hub = start_hub().unwrap();
    let mut a1 = enroll_agent(&hub, "live-term-1", "env=test").unwrap();
    let mut a2 = enroll_agent(&hub, "live-term-2", "env=test").unwrap();
    wait_online(
        &hub,
        &["live-term-1", "live-term-2"],
        Duration::from_secs(15),
    )
    .unwrap();

    // The agent: exits 0 within 10 s, and the hub marks it offline at once
    // (default heartbeat timeout: 30 s).
    let t = Instant::now();
    a1.signal("TERM").unwrap();
    let st = a1.wait_exit(Duration::from_secs(10)).unwrap();
    eprintln!("agent exited {st} after {:?}", t.elapsed());
    assert!(st.success(), "agent exit status {st}\n{}", a1.log_tail());
    wait_offline(&hub, &["live-term-1"], Duration::from_secs(3)).unwrap();
    eprintln!("agent offline {:?} after SIGTERM", t.elapsed());
    let e = entry(&hub, "live-term-2");
    assert_eq!(e["online"], json!(true), "{e}");

    // The hub: exits 0 within 10 s with an agent connected and a client
    // that stopped reading in the middle of a stream.
    let mut stalled = ws_connect(&hub, Some(&hub.admin_token), None)
        .await
        .unwrap();
    let big = json!({"id": 1, "action": "diag_stream", "server": "live-term-2",
                     "payload": {"bytes": 1u64 << 30, "chunk": 65536}});
    stalled.send_json(&big).await.unwrap();
    let first = stalled.recv_json(Duration::from_secs(10)).await.unwrap();
    assert_eq!(first["type"], json!("log"), "{first}");
    let t = Instant::now();
    hub.signal("TERM").unwrap();
    let st = hub.wait_exit(Duration::from_secs(10)).unwrap();
    eprintln!("hub exited {st} after {:?}", t.elapsed());
    assert!(st.success(), "hub exit status {st}\n{}", hub.log_tail());
    drop(stalled);
    // the remaining agent is still running (it will reconnect when the hub is back)
    assert!(a2.exit_status().is_none(), "{}", a2.log_tail());
}

/// SIGKILLs on drop every process whose command line holds the needle
/// (a local agent a hub may leave behind when it exits at once).
struct KillMatching(String);

impl Drop for KillMatching {
    fn drop(&mut self) {
        for pid in pids_matching(&self.0) {
            let _ = send_signal(pid, "KILL");
        }
    }
}

#[test]
fn second_sigint_exits_at_once() {
    // With --local-agent, and that agent stopped, a graceful shutdown waits
    // 5 s for it; exiting within 2 s is then the second signal's doing.
    let mut hub = Hub::start(HubOpts::args(["--local-agent"])).unwrap();
    let local_run = format!(
        "run --config {}",
        hub.data_dir
            .join("local-agent")
            .join("agent.toml")
            .display()
    );
    let _cleanup = KillMatching(local_run.clone());
    let _agents: Vec<Agent> = ["live-int-1", "live-int-2"]
        .iter()
        .map(|n| enroll_agent(&hub, n, "env=test").unwrap())
        .collect();
    wait_until(
        "three agents online (two enrolled, one local)",
        Duration::from_secs(30),
        Duration::from_millis(100),
        || {
            let list = hub.agent_list()?;
            Ok((list.iter().filter(|a| a["online"] == json!(true)).count() == 3).then_some(()))
        },
    )
    .unwrap_or_else(|e| panic!("{e:#}\n{}", hub.log_tail()));
    let local = pids_matching(&local_run);
    assert_eq!(local.len(), 1, "local agent processes: {local:?}");
    send_signal(local[0], "STOP").unwrap();

    // The second SIGINT goes as soon as the hub has taken the first (its
    // log says so): two signals sent within the same instant may reach it as
    // one (POSIX does not queue standard signals, and tokio coalesces
    // deliveries its listener has not consumed yet), and one SIGINT is a
    // graceful shutdown.
    let t = Instant::now();
    hub.signal("INT").unwrap();
    wait_until(
        "the hub to take the first SIGINT",
        Duration::from_secs(2),
        Duration::from_millis(5),
        || {
            Ok(hub
                .log_text()
                .contains("send the signal again")
                .then_some(()))
        },
    )
    .unwrap_or_else(|e| panic!("{e:#}\n{}", hub.log_tail()));
    let between = t.elapsed();
    hub.signal("INT").unwrap();
    let st = hub.wait_exit(Duration::from_secs(2)).unwrap();
    eprintln!(
        "hub exited {st} {:?} after two SIGINTs ({between:?} apart)",
        t.elapsed()
    );
    let left = pids_matching(&local_run);
    if !left.is_empty() {
        eprintln!("note: the hub left its local agent running: {left:?}");
    }
    let _ = send_signal(local[0], "CONT");
}
