#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Stop dockerd under a running agent: the agent stays connected and reports
//! Docker unavailable (info, status, a docker_unavailable error for ps); start
//! dockerd again: the same agent process recovers by itself.
//!
//! By default the engine stopped is a private dockerd of this test (its own
//! socket and directories; the agent reaches it through `DOCKER_HOST`, which
//! this also tests), so the machine's engine and everyone's containers are
//! left alone. With `NEXTDEPLOY_TEST_SYSTEM_DOCKERD=1` it stops the machine's
//! dockerd instead (every container on it stops; a guard starts dockerd and
//! the containers that were running again however the test ends). Either
//! way it is one test in its own binary, under the Docker suites' lock.

use std::time::{Duration, Instant};

use nextdeploy_tests::docker::*;
use nextdeploy_tests::{json, send_signal};
use serde_json::Value;

/// On drop: starts dockerd again if no engine answers, then starts again the
/// containers that were running before the test stopped the engine (other
/// people's too: stopping dockerd stopped them all).
struct DockerdGuard {
    running_before: Vec<String>,
}

impl DockerdGuard {
    fn new() -> DockerdGuard {
        let running_before = docker(&["ps", "-q", "--no-trunc"])
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect();
        DockerdGuard { running_before }
    }
}

impl Drop for DockerdGuard {
    fn drop(&mut self) {
        if !docker_answers() {
            eprintln!("(restarting dockerd after the test)");
            if let Err(e) = start_dockerd(Duration::from_secs(90)) {
                eprintln!("COULD NOT RESTART DOCKERD: {e:#}");
                return;
            }
        }
        let running: Vec<String> = docker(&["ps", "-q", "--no-trunc"])
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect();
        let again: Vec<&str> = self
            .running_before
            .iter()
            .filter(|id| !running.contains(id))
            .map(String::as_str)
            .collect();
        if !again.is_empty() {
            let mut args = vec!["start"];
            args.extend(&again);
            if let Err(e) = docker(&args) {
                eprintln!("could not start again the containers stopped with dockerd: {e:#}");
            }
        }
    }
}

/// The engine this test stops and starts.
enum Engine {
    /// A dockerd of the test's own.
    Private(PrivateDockerd),
    /// The machine's dockerd (and the guard that restores it).
    System { _guard: DockerdGuard },
}

impl Engine {
    fn new() -> Engine {
        if std::env::var_os("NEXTDEPLOY_TEST_SYSTEM_DOCKERD").is_some_and(|v| v == "1") {
            require_docker().unwrap();
            Engine::System {
                _guard: DockerdGuard::new(),
            }
        } else {
            let d = PrivateDockerd::start_new().unwrap();
            // The agent, the docker CLI and the fixture build all use it.
            // (One test in this binary: nothing else reads the environment.)
            std::env::set_var("DOCKER_HOST", &d.host);
            Engine::Private(d)
        }
    }

    fn stop(&mut self) {
        match self {
            Engine::Private(d) => d.stop(Duration::from_secs(60)).unwrap(),
            Engine::System { .. } => {
                let pid = dockerd_pid().unwrap();
                send_signal(pid, "TERM").unwrap();
                wait_until_ok(
                    "dockerd to exit",
                    Duration::from_secs(60),
                    Duration::from_millis(100),
                    || Ok(!std::path::Path::new(&format!("/proc/{pid}")).exists()),
                )
                .unwrap();
            }
        }
    }

    fn start(&mut self) {
        match self {
            Engine::Private(d) => d.start().unwrap(),
            Engine::System { .. } => start_dockerd(Duration::from_secs(60)).unwrap(),
        }
    }

    fn logs(&self) -> String {
        match self {
            Engine::Private(d) => d.log_tail(),
            Engine::System { .. } => format!(
                "--- /tmp/dockerd.log ---\n{}",
                nextdeploy_tests::tail(std::path::Path::new("/tmp/dockerd.log"), 30)
            ),
        }
    }
}

fn info(env: &DockerEnv) -> Value {
    env.agent_json("info", &[]).unwrap()
}

fn status(env: &DockerEnv) -> Value {
    env.agent_json("status", &[]).unwrap()[0].clone()
}

/// The machine engine's bridge, if there is one (a private engine must
/// leave it alone).
fn host_bridge() -> Option<String> {
    std::fs::read_to_string("/sys/class/net/docker0/ifindex")
        .ok()
        .map(|s| s.trim().to_string())
}

#[test]
fn the_agent_survives_dockerd_going_away_and_coming_back() {
    let bridge_before = host_bridge();
    let mut engine = Engine::new();
    let mut env = DockerEnv::start("down", &[("health_interval_s", "1")]).unwrap();
    // Dropped before the engine (stopped or restored last).
    let c = env.run("idle", &[], &["idle"]).unwrap();
    let agent_pid = env.agent.pid().unwrap();
    assert_eq!(info(&env)["docker"]["available"], true);
    let ps = env.ps_mine().unwrap();
    assert_eq!(ps.len(), 1, "{ps:?}");

    // Stop dockerd.
    let t = Instant::now();
    engine.stop();
    assert!(!docker_answers(), "docker info still answers");
    eprintln!("dockerd stopped in {:?}", t.elapsed());

    // The agent stays connected and says Docker is unavailable.
    let mut last = Value::Null;
    wait_until_ok(
        "agent info to report docker unavailable",
        Duration::from_secs(15),
        Duration::from_millis(250),
        || {
            last = info(&env);
            Ok(last["docker"]["available"] == false)
        },
    )
    .unwrap_or_else(|e| panic!("{e:#}\nlast info: {last}\n{}", env.logs()));
    assert!(
        last["docker"]["error"]
            .as_str()
            .is_some_and(|s| !s.is_empty()),
        "no docker.error in {last}"
    );
    wait_until_ok(
        "status to report docker unavailable",
        Duration::from_secs(15),
        Duration::from_millis(250),
        || {
            last = status(&env);
            Ok(last["docker_available"] == false)
        },
    )
    .unwrap_or_else(|e| panic!("{e:#}\nlast status: {last}\n{}", env.logs()));
    assert_eq!(last["online"], true, "{last}");
    assert!(
        last["docker_error"].as_str().is_some_and(|s| !s.is_empty()),
        "no docker_error in {last}"
    );

    // ps fails with docker_unavailable, clearly.
    let out = env.agent_cli("ps", &["--all"]).unwrap().failed().unwrap();
    let msg = out.stderr.to_lowercase();
    assert!(
        msg.contains("docker") && (msg.contains("unavailable") || msg.contains("unreachable")),
        "ps while dockerd is down: {}",
        out.describe()
    );
    let (code, msg) = env.ws_error("ps", json!({"all": true})).unwrap();
    assert_eq!(code, "docker_unavailable", "{msg}");
    // Each payload as its action types it (an unknown field is a bad_request).
    for (action, payload) in [
        ("inspect", json!({"container": c.name})),
        ("logs", json!({"container": c.name})),
        ("stats", json!({"container": c.name, "stream": false})),
    ] {
        let (code, msg) = env.ws_error(action, payload).unwrap();
        assert_eq!(code, "docker_unavailable", "{action}: {msg}");
    }
    let list = env.hub.agent_entry(env.server()).unwrap().unwrap();
    assert_eq!(list["online"], true, "{list}");
    assert!(
        env.agent.exit_status().is_none(),
        "{}",
        env.agent.log_tail()
    );

    // Start dockerd again: the same agent process recovers by itself.
    let t = Instant::now();
    engine.start();
    eprintln!("dockerd back in {:?}", t.elapsed());
    let t = Instant::now();
    let mut last_err = String::new();
    let r = wait_until_ok(
        "agent ps to work again",
        Duration::from_secs(30),
        Duration::from_millis(250),
        || {
            let o = env.agent_cli("ps", &["--all", "--output", "json"])?;
            last_err = o.describe();
            Ok(o.success())
        },
    );
    if let Err(e) = r {
        panic!("{e:#}\nlast: {last_err}\n{}\n{}", env.logs(), engine.logs());
    }
    eprintln!(
        "agent ps works again {:?} after dockerd answered",
        t.elapsed()
    );
    let ps = env.ps_mine().unwrap();
    assert_eq!(ps.len(), 1, "{ps:?}");
    assert_eq!(ps[0]["id"], json!(c.id));
    wait_until_ok(
        "agent info to report docker available",
        Duration::from_secs(15),
        Duration::from_millis(250),
        || Ok(info(&env)["docker"]["available"] == true),
    )
    .unwrap();
    wait_until_ok(
        "status to report docker available",
        Duration::from_secs(15),
        Duration::from_millis(250),
        || Ok(status(&env)["docker_available"] == true),
    )
    .unwrap();
    // Events work again too (the subscription was renewed).
    let mut ev = env.agent_stream("events", &["--output", "json"]).unwrap();
    let mut tries = 0;
    loop {
        tries += 1;
        let p = env.create("probe", &[], &["idle"]).unwrap();
        let id = p.id.clone();
        drop(p);
        if ev
            .wait_json("an event after the recovery", Duration::from_secs(2), |v| {
                v["action"] == "create" && v["container_id"] == id.as_str()
            })
            .is_ok()
        {
            break;
        }
        assert!(
            tries < 10,
            "no events after the recovery\n{}\n{}",
            ev.describe(),
            env.logs()
        );
    }

    if matches!(engine, Engine::Private(_)) {
        assert_eq!(
            host_bridge(),
            bridge_before,
            "the private dockerd touched the machine's docker0"
        );
    }

    // The same process all along, and it never left the hub.
    assert_eq!(env.agent.pid(), Some(agent_pid));
    assert!(
        env.agent.exit_status().is_none(),
        "{}",
        env.agent.log_tail()
    );
    let log = env.agent.log_text();
    assert_eq!(log.matches("=== start #").count(), 1, "{log}");
    let hub_log = env.hub.log_text();
    assert!(
        !hub_log.contains("agent offline"),
        "the agent's connection dropped while dockerd was down\n{}",
        env.hub.log_tail()
    );
}
