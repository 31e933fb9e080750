#![allow(clippy::unwrap_used, clippy::expect_used)]
//! kill -9 the hub and restart it on the same data dir and ports: every agent
//! comes back by itself within the backoff bound, with the same host key.

use std::time::{Duration, Instant};

use nextdeploy_tests::*;

#[test]
fn agents_reconnect_after_hub_kill9_with_same_host_key() {
    let mut hub = start_hub().unwrap();
    let names = ["r-web", "r-db", "r-dev"];
    let labels = ["env=prod,role=web", "env=prod,role=db", "env=dev"];
    let mut agents = Vec::new();
    for (n, l) in names.iter().zip(labels) {
        agents.push(enroll_agent(&hub, n, l).unwrap());
    }
    wait_online(&hub, &names, Duration::from_secs(15)).unwrap();
    let fp_before = hub.fingerprint.clone();
    let token_before = hub.admin_token.clone();
    let host_key_files: Vec<_> = read_tree(&hub.data_dir)
        .unwrap()
        .into_iter()
        .filter(|(p, _)| !p.to_string_lossy().contains("nextdeploy.db"))
        .collect();

    hub.kill9();
    hub.restart().unwrap();
    assert_eq!(
        hub.fingerprint, fp_before,
        "host key changed across restart"
    );
    assert_eq!(hub.admin_token, token_before);
    // the key files on disk are unchanged too
    for (p, bytes) in &host_key_files {
        if p.ends_with("initial-admin-token") {
            continue;
        }
        if let Ok(now) = std::fs::read(p) {
            if p.to_string_lossy().contains("key") {
                assert_eq!(&now, bytes, "{} changed across restart", p.display());
            }
        }
    }
    assert_eq!(keyscan_fingerprint(hub.ssh_port).unwrap(), fp_before);

    let start = Instant::now();
    let list = wait_online(&hub, &names, Duration::from_secs(65)).unwrap();
    eprintln!("all agents back online {:?} after restart", start.elapsed());
    for (n, l) in names.iter().zip(labels) {
        let e = list.iter().find(|a| a["name"] == *n).unwrap();
        let want: serde_json::Map<_, _> = l
            .split(',')
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap();
                (k.to_string(), json!(v))
            })
            .collect();
        assert_eq!(e["labels"], serde_json::Value::Object(want), "{e}");
    }
    // and the tunnel works again
    for n in names {
        hub.cli(&["agent", "ping", &format!("--server={n}")])
            .unwrap()
            .ok()
            .unwrap();
    }
    // no agent process gave up
    for a in &mut agents {
        assert!(
            a.exit_status().is_none(),
            "{} exited\n{}",
            a.name,
            a.log_tail()
        );
    }
}

#[test]
fn agents_reconnect_after_an_outage_long_enough_to_back_off() {
    let mut hub = start_hub().unwrap();
    let names = ["o-1", "o-2"];
    let _agents: Vec<_> = names
        .iter()
        .map(|n| enroll_agent(&hub, n, "env=dev").unwrap())
        .collect();
    wait_online(&hub, &names, Duration::from_secs(15)).unwrap();
    hub.kill9();
    // an outage (not an event to wait for): agents fail to reconnect a few
    // times and their backoff grows
    std::thread::sleep(Duration::from_secs(8));
    hub.restart().unwrap();
    let start = Instant::now();
    wait_online(&hub, &names, Duration::from_secs(65)).unwrap();
    eprintln!(
        "after an 8 s outage, agents back {:?} after restart",
        start.elapsed()
    );
}
