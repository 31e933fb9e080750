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

fn hub_cmd_env(args: &[&str], env: &[(&str, &std::path::Path)]) -> Output {
    let mut cmd = Command::new(hub_bin().unwrap());
    cmd.args(args)
        .env_remove("NEXTDEPLOY_HUB")
        .env_remove("NEXTDEPLOY_TOKEN")
        .env_remove("XDG_DATA_HOME");
    for (k, v) in env {
        cmd.env(k, v);
    }
    run_bounded(cmd, CLI_TIMEOUT).unwrap()
}

/// `--data-dir` after the subcommand (as the README writes it) as well as
/// before; and a backup never pretends to talk to a hub: `--hub`/`--token`
/// or a saved login to another machine get a note naming the local data dir.
#[test]
fn backup_and_restore_take_data_dir_after_the_subcommand_and_say_they_are_local() {
    let mut hub = start_hub().unwrap();
    hub.kill9();
    let data = hub.data_dir.clone();
    let dir = TempDir::new("backup-args").unwrap();
    let home = dir.path().join("home");
    let config = dir.path().join("config");
    std::fs::create_dir_all(&home).unwrap();
    let env = [
        ("HOME", home.as_path()),
        ("NEXTDEPLOY_CONFIG_DIR", config.as_path()),
    ];
    let d = data.to_str().unwrap();

    let f1 = dir.path().join("after.tar");
    let out = hub_cmd_env(
        &[
            "hub",
            "backup",
            "--to",
            f1.to_str().unwrap(),
            "--data-dir",
            d,
        ],
        &env,
    );
    assert!(out.success(), "{}", out.describe());
    assert!(!out.stderr.contains("note:"), "{}", out.describe());
    let restored = dir.path().join("restored");
    let out = hub_cmd_env(
        &[
            "hub",
            "restore",
            "--from",
            f1.to_str().unwrap(),
            "--data-dir",
            restored.to_str().unwrap(),
        ],
        &env,
    );
    assert!(out.success(), "{}", out.describe());
    assert!(
        restored.join("nextdeploy.db").is_file() && restored.join("ssh_host_ed25519_key").is_file()
    );

    // Two different --data-dir: refused.
    let out = hub_cmd_env(
        &[
            "hub",
            "--data-dir",
            "/nonexistent",
            "backup",
            "--to",
            "/tmp/x.tar",
            "--data-dir",
            d,
        ],
        &env,
    );
    assert!(
        !out.success() && out.stderr.contains("--data-dir given twice"),
        "{}",
        out.describe()
    );

    // --hub: a note that names the data dir actually read.
    let f2 = dir.path().join("with-hub.tar");
    let out = hub_cmd_env(
        &[
            "--hub",
            "http://bastion.example:8080",
            "hub",
            "backup",
            "--to",
            f2.to_str().unwrap(),
            "--data-dir",
            d,
        ],
        &env,
    );
    assert!(out.success(), "{}", out.describe());
    assert!(
        out.stderr.contains(&format!("local data dir {d}"))
            && out
                .stderr
                .contains("--hub http://bastion.example:8080 is not used"),
        "{}",
        out.describe()
    );

    // A saved login to a remote hub, no data dir here: the error names the
    // default data dir it read and says how to name another.
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(
        config.join("login.json"),
        r#"{"hub": "http://bastion.example:8080", "token": "nda_x"}"#,
    )
    .unwrap();
    let f3 = dir.path().join("remote.tar");
    let xdg = dir.path().join("xdg");
    let mut env2 = env.to_vec();
    env2.push(("XDG_DATA_HOME", xdg.as_path()));
    let out = hub_cmd_env(&["hub", "backup", "--to", f3.to_str().unwrap()], &env2);
    assert!(!out.success(), "{}", out.describe());
    // The hub's default: /var/lib/nextdeploy as root, else under XDG_DATA_HOME.
    let root = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self").unwrap()) == 0;
    let default_dir = if root {
        std::path::PathBuf::from("/var/lib/nextdeploy")
    } else {
        xdg.join("nextdeploy")
    };
    if default_dir.join("nextdeploy.db").exists() {
        eprintln!(
            "{} holds a hub here: the error case is not checked",
            default_dir.display()
        );
        return;
    }
    let default_dir = default_dir.to_str().unwrap();
    assert!(
        out.stderr
            .contains("the saved login to http://bastion.example:8080 is not used")
            && out
                .stderr
                .contains(&format!("local data dir {default_dir}"))
            && out.stderr.contains("--data-dir"),
        "{}",
        out.describe()
    );
    assert!(!f3.exists());
}

/// `--output json`: `hub backup` and `hub restore` print one document, and a
/// failure is `{"error": {"code", "message"}}` on stderr.
#[test]
fn backup_and_restore_speak_json() {
    let mut hub = start_hub().unwrap();
    hub.kill9();
    let d = hub.data_dir.to_str().unwrap().to_string();
    let file = hub.dir().join("j.tar");
    let f = file.to_str().unwrap();
    let v = hub_cmd(&["hub", "backup", "--to", f, "--data-dir", &d, "-o", "json"])
        .ok()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(v, json!({"backup": f, "data_dir": d}));
    let into = hub.dir().join("into");
    let into_s = into.to_str().unwrap();
    let v = hub_cmd(&[
        "hub",
        "restore",
        "--from",
        f,
        "--data-dir",
        into_s,
        "-o",
        "json",
    ])
    .ok()
    .unwrap()
    .json()
    .unwrap();
    assert_eq!(v, json!({"restored": f, "data_dir": into_s}));
    // Again: the target now holds a hub.
    let out = hub_cmd(&[
        "hub",
        "restore",
        "--from",
        f,
        "--data-dir",
        into_s,
        "-o",
        "json",
    ]);
    assert!(!out.success());
    assert!(out.stdout.trim().is_empty(), "{}", out.describe());
    let err: serde_json::Value = serde_json::from_str(out.stderr.trim()).unwrap();
    assert_eq!(err["error"]["code"], "cli_error", "{err}");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("already holds a hub"),
        "{err}"
    );
}

/// An archive whose member header claims more than a restore accepts (a
/// 20 GiB store in a 1.5 KiB file) is refused from the header, with a clear
/// error, and the data dir is left empty: the claim is checked before any
/// buffer or file is made.
#[test]
fn oversize_member_claims_are_refused_and_nothing_is_written() {
    let dir = TempDir::new("backup-claims").unwrap();
    let mut h = [0u8; 512];
    h[..13].copy_from_slice(b"nextdeploy.db");
    h[124..136].copy_from_slice(format!("{:012o}", 20u64 << 30).as_bytes());
    h[257..263].copy_from_slice(b"ustar\0");
    let archive = dir.path().join("claims.tar");
    std::fs::write(&archive, [&h[..], &[0u8; 1024][..]].concat()).unwrap();
    let into = dir.path().join("into");
    let out = hub_cmd(&[
        "hub",
        "restore",
        "--from",
        archive.to_str().unwrap(),
        "--data-dir",
        into.to_str().unwrap(),
    ]);
    assert!(!out.success(), "{}", out.describe());
    assert!(
        out.mentions("not a NextDeploy hub backup")
            && out.mentions("claims 21474836480 bytes, more than the 17179869184"),
        "{}",
        out.describe()
    );
    assert_eq!(
        std::fs::read_dir(&into).unwrap().count(),
        0,
        "wrote something"
    );
}
