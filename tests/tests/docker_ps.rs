#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `agent ps` and `agent inspect` through hub and agent against the real
//! engine: the same ids, names, images and states as `docker ps -a`; label
//! filters; id prefixes; ambiguous prefixes and unknown names as distinct
//! errors.

use std::collections::BTreeMap;
use std::time::Duration;

use nextdeploy_tests::docker::*;
use nextdeploy_tests::json;
use serde_json::Value;

fn docker_ps_rows(prefix: &str, all: bool) -> Vec<Value> {
    let f = format!("label={TEST_LABEL}={prefix}");
    let mut args = vec!["ps", "--no-trunc", "--filter", &f, "--format", "{{json .}}"];
    if all {
        args.insert(1, "-a");
    }
    docker(&args)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn ps_lists_what_docker_ps_lists() {
    let env = DockerEnv::start("ps", &[]).unwrap();
    let web = env
        .run("web", &["--label", "nd.role=frontend"], &["idle"])
        .unwrap();
    let db = env.run("db", &[], &["idle"]).unwrap();
    let done = env.run("done", &[], &["exit", "0", "0"]).unwrap();
    let fresh = env.create("fresh", &[], &["idle"]).unwrap();
    wait_until_ok(
        "the short-lived container to exit",
        Duration::from_secs(20),
        Duration::from_millis(100),
        || Ok(done.state()? == "exited"),
    )
    .unwrap();

    let want = docker_ps_rows(&env.names.prefix, true);
    assert_eq!(want.len(), 4, "docker ps -a: {want:?}");
    let ours = env.ps_mine().unwrap();
    let by_id: BTreeMap<String, &Value> = ours
        .iter()
        .map(|r| (r["id"].as_str().unwrap().to_string(), r))
        .collect();
    assert_eq!(
        by_id.len(),
        4,
        "agent ps --all lists {} of this test's containers: {ours:#?}",
        by_id.len()
    );
    for d in &want {
        let id = d["ID"].as_str().unwrap();
        let r = by_id
            .get(id)
            .unwrap_or_else(|| panic!("docker's {d} missing from agent ps: {ours:#?}"));
        assert_eq!(r["name"], d["Names"], "name of {id}: {r}");
        assert_eq!(r["image"], d["Image"], "image of {id}: {r}");
        assert_eq!(r["state"], d["State"], "state of {id}: {r}");
        let first_word = |v: &Value| {
            v.as_str()
                .unwrap_or("")
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_string()
        };
        assert_eq!(
            first_word(&r["status"]),
            first_word(&d["Status"]),
            "status of {id}: ours {} docker {}",
            r["status"],
            d["Status"]
        );
        assert_eq!(
            r["labels"][TEST_LABEL],
            json!(env.names.prefix),
            "labels of {id}: {r}"
        );
        let created = docker(&["inspect", "--format", "{{.Created}}", id]).unwrap();
        let created = parse_rfc3339(&created).unwrap();
        let ours_created = parse_rfc3339(r["created"].as_str().unwrap()).unwrap();
        assert!(
            (ours_created - created).abs() < 1.5,
            "created of {id}: ours {ours_created}, docker {created}"
        );
    }
    let states: BTreeMap<&str, &str> = ours
        .iter()
        .map(|r| (r["name"].as_str().unwrap(), r["state"].as_str().unwrap()))
        .collect();
    assert_eq!(states[web.name.as_str()], "running");
    assert_eq!(states[db.name.as_str()], "running");
    assert_eq!(states[done.name.as_str()], "exited");
    assert_eq!(states[fresh.name.as_str()], "created");

    // Without --all: the running ones only, as docker ps.
    let f = format!("label={TEST_LABEL}={}", env.names.prefix);
    let running = env.agent_json("ps", &["--filter", &f]).unwrap();
    let mut names: Vec<&str> = running
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    names.sort();
    let mut want_names: Vec<String> = docker_ps_rows(&env.names.prefix, false)
        .iter()
        .map(|d| d["Names"].as_str().unwrap().to_string())
        .collect();
    want_names.sort();
    assert_eq!(names, want_names, "agent ps without --all: {running}");

    // Two label filters: both must hold.
    let only_web = env
        .agent_json(
            "ps",
            &[
                "--all",
                "--filter",
                &f,
                "--filter",
                "label=nd.role=frontend",
            ],
        )
        .unwrap();
    let only: Vec<&str> = only_web
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(only, vec![web.name.as_str()], "{only_web}");
    // And a filter matching nothing gives an empty array, not an error.
    let none = env
        .agent_json("ps", &["--all", "--filter", "label=nd.none=nothing"])
        .unwrap();
    assert_eq!(none, json!([]));
}

#[test]
fn inspect_by_name_and_prefix_and_the_errors() {
    let env = DockerEnv::start("inspect", &[]).unwrap();
    // Containers until two of them share the first hex digit of their id
    // (at most 17 by pigeonhole).
    let mut made: Vec<Container> = Vec::new();
    let shared = loop {
        let c = env
            .create(&format!("c{}", made.len()), &[], &["idle"])
            .unwrap();
        let first = c.id[..1].to_string();
        made.push(c);
        let same: Vec<&Container> = made.iter().filter(|m| m.id[..1] == first).collect();
        if same.len() >= 2 {
            break first;
        }
        assert!(made.len() <= 17, "17 ids without a shared first digit?");
    };
    let target = &made[0];

    // By name and by a 12-digit id prefix: the engine's document.
    for key in [target.name.clone(), target.id[..12].to_string()] {
        let v = env.agent_json("inspect", &["--container", &key]).unwrap();
        assert_eq!(v["Id"], json!(target.id), "inspect {key}: Id");
        assert_eq!(
            v["Name"],
            json!(format!("/{}", target.name)),
            "inspect {key}"
        );
        assert_eq!(v["State"]["Status"], json!("created"));
        assert!(v["Config"].is_object(), "not the engine's document: {v}");
    }

    // An id prefix matching several: ambiguous_container, naming them.
    let sharing: Vec<&Container> = made.iter().filter(|m| m.id[..1] == shared).collect();
    let out = env
        .agent_cli("inspect", &["--container", &shared])
        .unwrap()
        .failed()
        .unwrap();
    for c in &sharing {
        assert!(
            out.stderr.contains(&c.name),
            "the ambiguity message should name {}: {}",
            c.name,
            out.describe()
        );
    }
    let (code, msg) = env
        .ws_error("inspect", json!({"container": shared}))
        .unwrap();
    assert_eq!(code, "ambiguous_container", "{msg}");

    // An unknown name: no_such_container, with the closest name.
    let typo = format!("{}x", target.name);
    let out = env
        .agent_cli("inspect", &["--container", &typo])
        .unwrap()
        .failed()
        .unwrap();
    assert!(
        out.stderr.contains(&target.name),
        "the message should suggest {}: {}",
        target.name,
        out.describe()
    );
    for action in ["inspect", "logs", "restart", "stats"] {
        let (code, msg) = env.ws_error(action, json!({"container": typo})).unwrap();
        assert_eq!(code, "no_such_container", "{action}: {msg}");
        assert!(msg.contains(&target.name), "{action}: {msg}");
    }
}
