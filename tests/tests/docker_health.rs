#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Health monitoring with `health_interval_s = 1`: `agent status` answers
//! from the hub's latest snapshot (state, health, CPU of every container);
//! `agent history` answers from the hub's store, and still does after the
//! hub is killed and restarted on the same data dir.

use std::collections::BTreeMap;
use std::time::Duration;

use nextdeploy_tests::docker::*;
use serde_json::Value;

fn status_of(env: &DockerEnv) -> Value {
    let v = env.agent_json("status", &[]).unwrap();
    let a = v
        .as_array()
        .unwrap_or_else(|| panic!("status is not an array: {v}"));
    assert_eq!(a.len(), 1, "status --server gave {} agents: {v}", a.len());
    a[0].clone()
}

fn container<'a>(entry: &'a Value, name: &str) -> Option<&'a Value> {
    entry["containers"]
        .as_array()?
        .iter()
        .find(|c| c["name"] == name)
}

fn history(env: &DockerEnv, name: &str, resolution: &str) -> Value {
    env.agent_json(
        "history",
        &[
            "--container",
            name,
            "--since",
            "1h",
            "--resolution",
            resolution,
        ],
    )
    .unwrap()
}

fn points(h: &Value) -> Vec<Value> {
    h["points"]
        .as_array()
        .unwrap_or_else(|| panic!("history without points: {h}"))
        .clone()
}

#[test]
fn status_and_history_from_the_hub_survive_a_hub_restart() {
    let mut env = DockerEnv::start("health", &[("health_interval_s", "1")]).unwrap();
    let burn = env.run("burn", &[], &["burn"]).unwrap();
    let hc = env
        .run(
            "hc",
            &[
                "--health-cmd",
                "true",
                "--health-interval",
                "1s",
                "--health-timeout",
                "1s",
            ],
            &["idle"],
        )
        .unwrap();
    let gone = env.run("gone", &[], &["exit", "3", "0"]).unwrap();

    // status: the snapshot shows every container with state, health, CPU
    // (the burner's well above idle; exact figures are docker_stats' job).
    let mut last = Value::Null;
    let r = wait_until_ok(
        "status to show the containers",
        Duration::from_secs(20),
        Duration::from_millis(250),
        || {
            let e = status_of(&env);
            last = e.clone();
            let ok = container(&e, &burn.name).is_some_and(|c| {
                c["state"] == "running" && c["cpu_percent"].as_f64().is_some_and(|p| p > 10.0)
            }) && container(&e, &hc.name).is_some_and(|c| c["health"] == "healthy")
                && container(&e, &gone.name).is_some_and(|c| c["state"] == "exited");
            Ok(ok)
        },
    );
    if let Err(e) = r {
        panic!("{e:#}\nlast status: {last:#}\n{}", env.logs());
    }
    let e = status_of(&env);
    assert_eq!(e["server"], env.server(), "{e}");
    assert_eq!(e["online"], true, "{e}");
    assert_eq!(e["docker_available"], true, "{e}");
    assert_eq!(e["labels"]["test"], "health", "{e}");
    let b = container(&e, &burn.name).unwrap();
    assert_eq!(b["id"], burn.id.as_str(), "{b}");
    assert!(
        b["image"]
            .as_str()
            .unwrap()
            .starts_with("nextdeploy-fixture"),
        "{b}"
    );
    for k in ["restarts", "mem_usage", "mem_limit", "net_rx", "net_tx"] {
        assert!(b[k].is_number(), "{k} in {b}");
    }
    assert!(b["mem_limit"].as_u64().unwrap() > 0, "{b}");
    let g = container(&e, &gone.name).unwrap();
    assert!(
        g["cpu_percent"].is_null(),
        "an exited container has no CPU: {g}"
    );

    // A new snapshot about every second.
    let at0 = e["snapshot_at"].clone();
    assert!(!at0.is_null(), "{e}");
    wait_until_ok(
        "a newer snapshot",
        Duration::from_secs(5),
        Duration::from_millis(200),
        || Ok(status_of(&env)["snapshot_at"] != at0),
    )
    .unwrap();

    // history: points at 5 s resolution, from the store.
    let mut hist = Value::Null;
    wait_until_ok(
        "two history points",
        Duration::from_secs(20),
        Duration::from_millis(500),
        || {
            hist = history(&env, &burn.name, "5s");
            Ok(points(&hist).len() >= 2)
        },
    )
    .unwrap_or_else(|e| panic!("{e:#}\nlast history: {hist:#}"));
    assert_eq!(hist["server"], env.server(), "{hist}");
    assert_eq!(hist["container"], burn.name.as_str(), "{hist}");
    assert_eq!(hist["resolution_s"], 5, "{hist}");
    for p in points(&hist) {
        for k in [
            "t_s",
            "samples",
            "mem_avg",
            "mem_max",
            "mem_limit",
            "net_rx",
            "net_tx",
            "restarts",
        ] {
            assert!(p[k].is_number(), "{k} in {p}");
        }
        assert_eq!(p["state"], "running", "{p}");
        assert!(p["t_s"].as_i64().unwrap() % 5 == 0, "{p}");
        assert!(p["samples"].as_i64().unwrap() >= 1, "{p}");
    }
    let hc_hist = history(&env, &hc.name, "5s");
    assert!(
        points(&hc_hist).iter().any(|p| p["health"] == "healthy"),
        "{hc_hist:#}"
    );
    let coarse = history(&env, &burn.name, "1m");
    assert_eq!(coarse["resolution_s"], 60, "{coarse}");
    assert!(!points(&coarse).is_empty(), "{coarse}");

    // Kill the hub (no clean shutdown) and restart it on the same data dir:
    // the points seen before are still there.
    std::thread::sleep(Duration::from_millis(1500));
    let before: BTreeMap<i64, i64> = points(&history(&env, &burn.name, "5s"))
        .iter()
        .map(|p| (p["t_s"].as_i64().unwrap(), p["samples"].as_i64().unwrap()))
        .collect();
    // Let whatever the hub had queued at that moment reach the store.
    std::thread::sleep(Duration::from_millis(1500));
    env.hub.kill9();
    env.hub.restart().unwrap();
    let after: BTreeMap<i64, i64> = points(&history(&env, &burn.name, "5s"))
        .iter()
        .map(|p| (p["t_s"].as_i64().unwrap(), p["samples"].as_i64().unwrap()))
        .collect();
    for (t, n) in &before {
        let got = after.get(t).copied();
        assert!(
            got.is_some_and(|m| m >= *n),
            "point t={t} ({n} samples) before the restart, {got:?} after\nbefore {before:?}\nafter {after:?}"
        );
    }
    eprintln!(
        "history: {} points before the hub restart, {} after",
        before.len(),
        after.len()
    );
}

/// The engine's own figures for `c` (one-shot stats through the API):
/// (memory as `docker stats` shows it, received bytes, sent bytes).
fn engine_figures(c: &Container) -> (f64, f64, f64) {
    let mem = docker(&["stats", "--no-stream", "--format", "{{.MemUsage}}", &c.id]).unwrap();
    let net = docker(&["stats", "--no-stream", "--format", "{{.NetIO}}", &c.id]).unwrap();
    let first = |s: &str| parse_docker_size(s.split('/').next().unwrap()).unwrap();
    let second = |s: &str| parse_docker_size(s.split('/').nth(1).unwrap()).unwrap();
    (first(&mem), first(&net), second(&net))
}

/// Send `bytes` of UDP datagrams from the host to the container's address.
fn udp_to(c: &Container, bytes: usize) {
    let ip = c
        .inspect("{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}")
        .unwrap();
    let ip = ip.split_whitespace().next().unwrap_or_default().to_string();
    let sock = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
    let chunk = [7u8; 1000];
    for _ in 0..bytes / chunk.len() {
        // Nothing listens on port 9 in the container: its kernel counts the
        // datagram and answers port-unreachable (bytes sent).
        let _ = sock.send_to(&chunk, (ip.trim(), 9));
    }
}

#[test]
fn snapshot_figures_come_from_the_kernel_and_agree_with_the_engine() {
    let env = DockerEnv::start("health-kernel", &[("health_interval_s", "1")]).unwrap();
    let mem = env
        .run("mem", &["--tmpfs", "/t:size=100m"], &["mem", "40"])
        .unwrap();
    let burn = env.run("burn", &[], &["burn"]).unwrap();
    udp_to(&mem, 2_000_000);
    std::thread::sleep(Duration::from_secs(1));
    let (dock_mem, dock_rx, dock_tx) = engine_figures(&mem);
    assert!(
        dock_rx >= 1_800_000.0,
        "the engine saw {dock_rx} bytes received"
    );

    // A snapshot taken after the traffic, read from the kernel, agreeing with
    // the engine within 5 % (memory, received and sent bytes).
    let mut last = Value::Null;
    let r = wait_until_ok(
        "kernel figures that agree with the engine",
        Duration::from_secs(20),
        Duration::from_millis(250),
        || {
            let e = status_of(&env);
            last = e.clone();
            let Some(c) = container(&e, &mem.name) else {
                return Ok(false);
            };
            let near = |k: &str, want: f64| {
                c[k].as_f64()
                    .is_some_and(|v| (v - want).abs() <= 0.05 * want.max(1000.0))
            };
            Ok(c["stats_from"] == "kernel"
                && near("mem_usage", dock_mem)
                && near("net_rx", dock_rx)
                && near("net_tx", dock_tx))
        },
    );
    if let Err(e) = r {
        panic!(
            "{e:#}\nengine: mem {dock_mem} rx {dock_rx} tx {dock_tx}\nlast status: {last:#}\n{}",
            env.logs()
        );
    }
    let e = status_of(&env);
    let b = container(&e, &burn.name).unwrap();
    assert_eq!(b["stats_from"], "kernel", "{b}");
    let host_mem = std::fs::read_to_string("/proc/meminfo")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap()
        * 1024;
    assert_eq!(
        b["mem_limit"].as_u64(),
        Some(host_mem),
        "unlimited: the host's memory: {b}"
    );

    // Restarted (a new pid): the snapshot still comes from the kernel, and the
    // burner's CPU reads about one core again. Only snapshots taken after the
    // restart count: the second new one after `docker restart` returned.
    docker(&["restart", "-t", "1", &burn.id]).unwrap();
    let mut seen = vec![status_of(&env)["snapshot_at"].clone()];
    let r = wait_until_ok(
        "the restarted burner read from the kernel",
        Duration::from_secs(20),
        Duration::from_millis(250),
        || {
            let e = status_of(&env);
            last = e.clone();
            if !seen.contains(&e["snapshot_at"]) {
                seen.push(e["snapshot_at"].clone());
            }
            Ok(seen.len() >= 3
                && container(&e, &burn.name).is_some_and(|c| {
                    c["stats_from"] == "kernel"
                        && c["state"] == "running"
                        && c["cpu_percent"].as_f64().is_some_and(|p| p > 50.0)
                }))
        },
    );
    if let Err(e) = r {
        panic!("{e:#}\nlast status: {last:#}\n{}", env.logs());
    }

    // Restarted by its policy (exits after a second): the restart count follows
    // the engine's though the process changes under the monitor.
    let crash = env
        .run("crash", &["--restart", "always"], &["exit", "3", "1"])
        .unwrap();
    let r = wait_until_ok(
        "the restart count to follow the engine's",
        Duration::from_secs(30),
        Duration::from_millis(250),
        || {
            let e = status_of(&env);
            last = e.clone();
            let ours = container(&e, &crash.name).and_then(|c| c["restarts"].as_i64());
            let engine: i64 = crash.inspect("{{.RestartCount}}")?.trim().parse()?;
            Ok(ours.is_some_and(|n| n >= 2 && n <= engine))
        },
    );
    if let Err(e) = r {
        panic!("{e:#}\nlast status: {last:#}\n{}", env.logs());
    }
}
