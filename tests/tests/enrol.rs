#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Enrol agents with labels, see them online, ping them, ask for host info;
//! unknown and offline agents give distinct, clear errors.

use std::time::{Duration, Instant};

use nextdeploy_tests::*;

#[test]
fn three_agents_online_with_labels_ping_and_info() {
    let hub = start_hub().unwrap();
    let specs = [
        ("web-1", "env=prod,role=web"),
        ("db-1", "env=prod,role=db"),
        ("dev-1", "env=dev"),
    ];
    let mut agents = Vec::new();
    for (name, labels) in specs {
        let a = enroll_agent(&hub, name, labels).unwrap();
        // enrol prints the agent's name and the pinned hub fingerprint
        assert!(
            a.enroll_output.stdout.contains(name),
            "enrol output should name the agent: {}",
            a.enroll_output.describe()
        );
        assert!(
            a.enroll_output.stdout.contains(&hub.fingerprint),
            "enrol output should show the hub fingerprint {}: {}",
            hub.fingerprint,
            a.enroll_output.describe()
        );
        agents.push(a);
    }
    let list = wait_online(&hub, &["web-1", "db-1", "dev-1"], Duration::from_secs(15)).unwrap();
    for (name, labels) in specs {
        let entry = list
            .iter()
            .find(|a| a["name"] == name)
            .unwrap_or_else(|| panic!("{name} not listed: {list:?}"));
        let mut want = serde_json::Map::new();
        for kv in labels.split(',') {
            let (k, v) = kv.split_once('=').unwrap();
            want.insert(k.to_string(), json!(v));
        }
        assert_eq!(entry["labels"], serde_json::Value::Object(want), "{entry}");
        assert_eq!(entry["online"], json!(true), "{entry}");
        for field in ["last_seen", "version", "address", "fingerprint"] {
            assert!(entry.get(field).is_some(), "{field} missing in {entry}");
        }
        assert!(
            entry["version"].as_str().is_some_and(|v| !v.is_empty()),
            "version: {entry}"
        );
        assert!(
            entry["fingerprint"]
                .as_str()
                .is_some_and(|f| f.starts_with("SHA256:")),
            "fingerprint: {entry}"
        );
    }
    // agents' fingerprints are distinct
    let mut fps: Vec<_> = list
        .iter()
        .map(|a| a["fingerprint"].as_str().unwrap().to_string())
        .collect();
    fps.sort();
    fps.dedup();
    assert_eq!(fps.len(), 3, "{list:?}");

    for (name, _) in specs {
        let ping = hub
            .cli(&[
                "agent",
                "ping",
                &format!("--server={name}"),
                "--output",
                "json",
            ])
            .unwrap()
            .ok()
            .unwrap();
        let v = ping.json().unwrap();
        assert_eq!(v["server"], json!(name), "{v}");
        let count = v["count"].as_u64().unwrap_or(0);
        assert!(count >= 1, "{v}");
        assert_eq!(
            v["rtt_ms"].as_array().map(|a| a.len() as u64),
            Some(count),
            "{v}"
        );
        let (min, med, max) = (
            v["min_ms"].as_f64().unwrap(),
            v["median_ms"].as_f64().unwrap(),
            v["max_ms"].as_f64().unwrap(),
        );
        assert!(med > 0.0, "median must be > 0: {v}");
        assert!(min <= med && med <= max, "{v}");
        assert!(max < 5_000.0, "loopback ping took seconds: {v}");

        let info = hub
            .cli_json(&["agent", "info", &format!("--server={name}")])
            .unwrap();
        for field in ["hostname", "os", "kernel", "agent_version"] {
            assert!(
                info[field].as_str().is_some_and(|s| !s.is_empty()),
                "{field} in {info}"
            );
        }
        assert!(info["cpus"].as_u64().unwrap_or(0) > 0, "cpus in {info}");
        assert!(
            info["memory_total_bytes"].as_u64().unwrap_or(0) > 0,
            "memory_total_bytes in {info}"
        );
        assert!(
            info["docker"]["available"].is_boolean(),
            "docker.available in {info}"
        );
    }
}

#[test]
fn unknown_agent_is_a_clear_error() {
    let hub = start_hub().unwrap();
    let out = hub
        .cli(&["agent", "ping", "--server=nope"])
        .unwrap()
        .failed()
        .unwrap();
    assert!(out.stderr.contains("nope"), "{}", out.describe());
    let out = hub
        .cli(&["agent", "info", "--server=nope", "--output", "json"])
        .unwrap()
        .failed()
        .unwrap();
    assert!(out.stderr.contains("nope"), "{}", out.describe());
}

#[test]
fn offline_agent_fails_fast_with_last_seen() {
    let hub = start_hub().unwrap();
    let mut agent = enroll_agent(&hub, "gone-1", "env=dev").unwrap();
    wait_online(&hub, &["gone-1"], Duration::from_secs(15)).unwrap();
    agent.kill();
    let list = wait_offline(&hub, &["gone-1"], Duration::from_secs(35)).unwrap();
    let entry = list.iter().find(|a| a["name"] == "gone-1").unwrap();
    assert_eq!(entry["online"], json!(false), "{entry}");
    assert!(!entry["last_seen"].is_null(), "{entry}");

    let start = Instant::now();
    let out = hub
        .cli(&["agent", "ping", "--server=gone-1"])
        .unwrap()
        .failed()
        .unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "ping to an offline agent must fail fast: {:?}",
        start.elapsed()
    );
    let err = out.stderr.to_lowercase();
    assert!(err.contains("gone-1"), "{}", out.describe());
    assert!(err.contains("offline"), "{}", out.describe());
    assert!(err.contains("last seen"), "{}", out.describe());
}
