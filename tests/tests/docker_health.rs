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
            "t",
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
        assert!(p["t"].as_i64().unwrap() % 5 == 0, "{p}");
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
        .map(|p| (p["t"].as_i64().unwrap(), p["samples"].as_i64().unwrap()))
        .collect();
    // Let whatever the hub had queued at that moment reach the store.
    std::thread::sleep(Duration::from_millis(1500));
    env.hub.kill9();
    env.hub.restart().unwrap();
    let after: BTreeMap<i64, i64> = points(&history(&env, &burn.name, "5s"))
        .iter()
        .map(|p| (p["t"].as_i64().unwrap(), p["samples"].as_i64().unwrap()))
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
