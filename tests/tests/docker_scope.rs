#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `scope_label = "nextdeploy.managed=true"`: an unlabelled container does
//! not exist for any action or stream (ps, inspect, logs, stats, lifecycle,
//! events, status, history), while a labelled one works everywhere.

use std::time::Duration;

use nextdeploy_tests::docker::*;
use nextdeploy_tests::json;
use serde_json::Value;

const MANAGED: &str = "nextdeploy.managed=true";

fn names_in(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|r| r["name"].as_str().unwrap_or("?").to_string())
        .collect()
}

#[test]
fn the_scope_label_hides_containers_from_every_action_and_stream() {
    let env = DockerEnv::start(
        "scope",
        &[
            ("scope_label", &format!("{MANAGED:?}")),
            ("health_interval_s", "1"),
        ],
    )
    .unwrap();
    let mut ev = env.agent_stream("events", &["--output", "json"]).unwrap();
    // Barrier with a visible probe.
    let mut tries = 0;
    loop {
        tries += 1;
        let p = env
            .create("probe", &["--label", MANAGED], &["idle"])
            .unwrap();
        let id = p.id.clone();
        drop(p);
        if ev
            .wait_json("the probe's create", Duration::from_secs(1), |v| {
                v["action"] == "create" && v["container_id"] == id.as_str()
            })
            .is_ok()
        {
            break;
        }
        assert!(tries < 15, "no probe event\n{}", ev.describe());
    }

    let inside = env.run("inside", &["--label", MANAGED], &["logs"]).unwrap();
    let outside = env.run("outside", &[], &["logs"]).unwrap();
    inside
        .wait_log("stdout last", Duration::from_secs(20))
        .unwrap();
    outside
        .wait_log("stdout last", Duration::from_secs(20))
        .unwrap();
    let hidden_started = outside.inspect("{{.State.StartedAt}}").unwrap();

    // ps (with and without --all, with and without filters).
    for args in [
        &["--all"][..],
        &[][..],
        &[
            "--all",
            "--filter",
            &format!("label={TEST_LABEL}={}", env.names.prefix),
        ][..],
        &["--all", "--filter", &format!("name={}", outside.name)][..],
    ] {
        let v = env.agent_json("ps", args).unwrap();
        let names = names_in(&v);
        assert!(
            !names.contains(&outside.name),
            "ps {args:?} shows the hidden container: {names:?}"
        );
        if !args.iter().any(|a| a.starts_with("name=")) {
            assert!(
                names.contains(&inside.name),
                "ps {args:?} lacks the managed one: {names:?}"
            );
        }
    }

    // inspect, logs, stats, lifecycle: no_such_container, by name and by id prefix.
    for key in [
        outside.name.clone(),
        outside.id[..12].to_string(),
        outside.id.clone(),
    ] {
        for (action, extra) in [
            ("inspect", json!({})),
            ("logs", json!({"tail": "all"})),
            ("stats", json!({"stream": false})),
            ("restart", json!({"timeout": 1})),
            ("stop", json!({"timeout": 1})),
            ("kill", json!({"signal": "SIGKILL"})),
            ("start", json!({})),
        ] {
            let mut payload = extra.clone();
            payload["container"] = json!(key);
            let (code, msg) = env.ws_error(action, payload).unwrap();
            assert_eq!(code, "no_such_container", "{action} {key}: {msg}");
            let rest = msg.replacen(&key, "", 1);
            assert!(
                !rest.contains(&outside.name) && !rest.contains(&outside.id[..12]),
                "{action} {key}: the message reveals the hidden container: {msg}"
            );
        }
        for sub in ["inspect", "logs", "restart", "stats"] {
            let mut args = vec!["--container", key.as_str()];
            if sub == "stats" {
                args.push("--no-stream");
            }
            let out = env.agent_cli(sub, &args).unwrap().failed().unwrap();
            assert!(
                out.stdout.trim().is_empty(),
                "{sub} {key} printed something: {}",
                out.describe()
            );
        }
    }
    assert_eq!(
        outside.inspect("{{.State.StartedAt}}").unwrap(),
        hidden_started,
        "a lifecycle action reached the hidden container"
    );
    assert_eq!(outside.state().unwrap(), "running");

    // The managed one works everywhere.
    let doc = env
        .agent_json("inspect", &["--container", &inside.name])
        .unwrap();
    assert_eq!(doc["Id"], json!(inside.id));
    let logs = env
        .agent_raw("logs", &["--container", &inside.name])
        .unwrap()
        .ok()
        .unwrap();
    let want = docker_raw(&["logs", &inside.id]).unwrap();
    assert_bytes_eq("managed logs stdout", &logs.stdout, &want.stdout).unwrap();
    assert_bytes_eq("managed logs stderr", &logs.stderr, &want.stderr).unwrap();
    let st = env.agent_json("stats", &["--no-stream"]).unwrap();
    let names = names_in(&st);
    assert!(names.contains(&inside.name), "{names:?}");
    assert!(
        !names.contains(&outside.name),
        "stats shows the hidden container: {names:?}"
    );
    env.agent_json("restart", &["--container", &inside.name, "--timeout", "5"])
        .unwrap();

    // events: the managed one's restart shows; nothing of the hidden one.
    ev.wait_json("the managed one's restart", Duration::from_secs(15), |v| {
        v["action"] == "restart" && v["container_id"] == inside.id.as_str()
    })
    .unwrap();
    docker(&["restart", "-t", "1", &outside.id]).unwrap();
    docker(&["kill", "-s", "SIGKILL", &outside.id]).unwrap();
    docker(&["restart", "-t", "1", &inside.id]).unwrap();
    // Events come in order from one engine subscription: once the managed
    // one's second restart is here, the hidden one's would have been too.
    let mut restarts = 0;
    ev.wait_json(
        "the managed one's second restart",
        Duration::from_secs(15),
        |v| {
            if v["action"] == "restart" && v["container_id"] == inside.id.as_str() {
                restarts += 1;
            }
            restarts >= 2
        },
    )
    .unwrap();
    ev.collect_for(Duration::from_millis(300));
    for v in ev.json_lines() {
        assert!(
            v["container_id"] != outside.id.as_str() && v["container"] != outside.name.as_str(),
            "events show the hidden container: {v}"
        );
    }

    // status: the managed one, never the hidden one (several snapshots).
    wait_until_ok(
        "status to show the managed container",
        Duration::from_secs(15),
        Duration::from_millis(250),
        || {
            let v = env.agent_json("status", &[]).unwrap();
            Ok(names_in(&v[0]["containers"]).contains(&inside.name))
        },
    )
    .unwrap();
    for _ in 0..3 {
        let v = env.agent_json("status", &[]).unwrap();
        let names = names_in(&v[0]["containers"]);
        assert!(
            !names.contains(&outside.name),
            "status shows the hidden container: {names:?}"
        );
        std::thread::sleep(Duration::from_millis(1100));
    }
    // history: the managed one has points; the hidden one none.
    wait_until_ok(
        "history of the managed container",
        Duration::from_secs(15),
        Duration::from_millis(500),
        || {
            let h = env
                .agent_json("history", &["--container", &inside.name])
                .unwrap();
            Ok(h["points"].as_array().is_some_and(|p| !p.is_empty()))
        },
    )
    .unwrap();
    let h = env
        .agent_cli(
            "history",
            &["--container", &outside.name, "--output", "json"],
        )
        .unwrap();
    if h.success() {
        let v = h.json().unwrap();
        assert!(
            v["points"].as_array().is_none_or(|p| p.is_empty()),
            "history of the hidden container has points: {v}"
        );
    }
}
