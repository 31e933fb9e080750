#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The event conditions the issue lists beside a death, end to end (real
//! hub, agent and Docker, a webhook receiver on loopback): a container
//! OOM-killed under a 16 MiB limit fires `oom` once and resolves once when
//! it runs again; a container whose healthcheck fails fires `unhealthy`
//! once after `--for` and resolves once when it passes again; an agent
//! stopped with SIGSTOP (alive but silent: the hub's heartbeat timeout,
//! not a closed connection, takes it offline) fires `agent_offline` once
//! and resolves once after SIGCONT.

use std::time::Duration;

use nextdeploy_tests::docker::*;
use nextdeploy_tests::receiver::Receiver;
use nextdeploy_tests::*;
use serde_json::Value;

/// Quiet after a fire or a resolve, to see that nothing more comes.
const SETTLE: Duration = Duration::from_secs(3);

/// Channel `ops` to `rx` and rule `r` on `on` for this test's agent.
fn rule(env: &DockerEnv, rx: &Receiver, on: &str, extra: &[&str]) {
    env.hub
        .cli_json(&["alert", "channel", "add", "ops", "--webhook", &rx.url()])
        .unwrap();
    let sel = format!("test={}", env.server().trim_start_matches("dk-"));
    let mut args = vec!["alert", "rule", "add", "r", "--on", on, "--selector", &sel];
    args.extend(extra);
    args.extend(["--severity", "critical", "--channel", "ops"]);
    env.hub.cli_json(&args).unwrap();
    // The evaluator takes new rules at its next tick (1 s).
    std::thread::sleep(Duration::from_millis(1500));
}

/// Delivered notifications of rule `r` with this status.
fn count(rx: &Receiver, status: &str) -> usize {
    rx.delivered()
        .iter()
        .filter(|r| r.json()["status"] == status && r.json()["rule"] == "r")
        .count()
}

/// Wait for the first `status` notification, then check nothing else came.
fn once(rx: &Receiver, status: &str) -> Value {
    let v = rx.wait_for(status, 1, |v| v["status"] == status && v["rule"] == "r");
    std::thread::sleep(SETTLE);
    assert_eq!(count(rx, status), 1, "{:?}", rx.delivered());
    v[0].clone()
}

#[test]
fn an_oom_killed_container_fires_once_and_resolves_once_when_it_runs_again() {
    let env = DockerEnv::start("alerts-oom", &[]).unwrap();
    let rx = Receiver::start();
    rule(&env, &rx, "oom", &[]);
    // A string that doubles until the 16 MiB limit (no swap) kills it.
    let hog = env
        .run(
            "hog",
            &[
                "--memory",
                "16m",
                "--memory-swap",
                "16m",
                "--entrypoint",
                "/bin/sh",
            ],
            &["-c", "x=a; while :; do x=$x$x; done"],
        )
        .unwrap();
    let f = once(&rx, "firing");
    assert_eq!(f["condition"], "oom", "{f}");
    assert_eq!(f["container"], hog.name.as_str(), "{f}");
    assert_eq!(f["server"], env.server(), "{f}");
    docker(&["update", "--memory", "64m", "--memory-swap", "64m", &hog.id]).unwrap();
    docker(&["start", &hog.id]).unwrap();
    let r = once(&rx, "resolved");
    assert_eq!(r["alert_id"], f["alert_id"], "{r}");
    assert_eq!(count(&rx, "firing"), 1, "{:?}", rx.delivered());
}

#[test]
fn a_failing_healthcheck_fires_once_after_for_and_resolves_once_when_healthy() {
    let env = DockerEnv::start("alerts-unhealthy", &[]).unwrap();
    let rx = Receiver::start();
    rule(&env, &rx, "unhealthy", &["--for", "2s"]);
    let c = env
        .run(
            "sick",
            &[
                "--health-cmd",
                "test ! -e /tmp/sick",
                "--health-interval",
                "1s",
                "--health-retries",
                "1",
            ],
            &["idle"],
        )
        .unwrap();
    wait_until(
        "healthy",
        Duration::from_secs(30),
        Duration::from_millis(200),
        || {
            let s = docker(&["inspect", "-f", "{{.State.Health.Status}}", &c.id])?;
            Ok((s.trim() == "healthy").then_some(()))
        },
    )
    .unwrap();
    docker(&["exec", &c.id, "touch", "/tmp/sick"]).unwrap();
    let f = once(&rx, "firing");
    assert_eq!(f["condition"], "unhealthy", "{f}");
    assert_eq!(f["container"], c.name.as_str(), "{f}");
    docker(&["exec", &c.id, "rm", "/tmp/sick"]).unwrap();
    let r = once(&rx, "resolved");
    assert_eq!(r["alert_id"], f["alert_id"], "{r}");
    assert_eq!(count(&rx, "firing"), 1, "{:?}", rx.delivered());
}

#[test]
fn an_agent_stopped_with_sigstop_fires_offline_once_and_resolves_once_after_sigcont() {
    let hub = HubOpts::args(["--heartbeat-timeout", "5s"]);
    let env = DockerEnv::start_with("alerts-sigstop", hub, &[]).unwrap();
    let rx = Receiver::start();
    rule(&env, &rx, "agent-offline", &["--for", "2s"]);
    let pid = env.agent.pid().unwrap();
    env.agent.signal("STOP").unwrap();
    let cont = ContOnDrop(pid);
    let f = once(&rx, "firing");
    assert_eq!(f["condition"], "agent_offline", "{f}");
    assert_eq!(f["server"], env.server(), "{f}");
    drop(cont);
    wait_online(&env.hub, &[env.server()], Duration::from_secs(70)).unwrap();
    let r = once(&rx, "resolved");
    assert_eq!(r["alert_id"], f["alert_id"], "{r}");
    assert_eq!(count(&rx, "firing"), 1, "{:?}", rx.delivered());
}
