#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `nextdeploy hub backup` while the hub runs, then a fresh hub process on a
//! data dir restored from that one file, same SSH port: the agents reconnect
//! (the host key came along, so their pins hold) and are still enrolled.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::{Duration, Instant};

use nextdeploy_tests::*;

fn hub_cmd(args: &[&str]) -> Output {
    let mut cmd = Command::new(hub_bin().unwrap());
    cmd.args(args);
    run_bounded(cmd, CLI_TIMEOUT).unwrap()
}

#[test]
fn backup_then_restored_hub_takes_the_agents_back() {
    let mut hub = start_hub().unwrap();
    let names = ["b-1", "b-2"];
    let _agents: Vec<_> = names
        .iter()
        .map(|n| enroll_agent(&hub, n, "env=dev").unwrap())
        .collect();
    wait_online(&hub, &names, Duration::from_secs(15)).unwrap();

    let file = hub.dir().join("hub-backup.tar");
    let data = hub.data_dir.to_str().unwrap().to_string();
    let out = hub_cmd(&[
        "hub",
        "--data-dir",
        &data,
        "backup",
        "--to",
        file.to_str().unwrap(),
    ]);
    assert!(out.success(), "{}", out.describe());
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "backup mode {mode:o}");
    // a second backup never overwrites the first
    assert!(!hub_cmd(&[
        "hub",
        "--data-dir",
        &data,
        "backup",
        "--to",
        file.to_str().unwrap()
    ])
    .success());

    // The bastion dies; a new one starts from the backup on an empty data dir.
    hub.kill9();
    let old = hub.dir().join("data.lost");
    std::fs::rename(&hub.data_dir, &old).unwrap();
    let out = hub_cmd(&[
        "hub",
        "--data-dir",
        &data,
        "restore",
        "--from",
        file.to_str().unwrap(),
    ]);
    assert!(out.success(), "{}", out.describe());
    let fp_before = hub.fingerprint.clone();
    hub.restart().unwrap();
    assert_eq!(
        hub.fingerprint, fp_before,
        "restored hub has another host key"
    );

    let start = Instant::now();
    wait_online(&hub, &names, Duration::from_secs(65)).unwrap();
    eprintln!(
        "agents back on the restored hub after {:?}",
        start.elapsed()
    );
    for n in names {
        hub.cli(&["agent", "ping", &format!("--server={n}"), "-c", "1"])
            .unwrap()
            .ok()
            .unwrap();
    }
}
