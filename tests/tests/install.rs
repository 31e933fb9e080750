#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `nextdeploy agent install --ssh` against a real OpenSSH sshd on loopback,
//! with `--no-systemd` and the install rooted in a temp prefix: the agent comes
//! online; a second run changes nothing; unknown host keys are refused without
//! `--accept-new-host-key` and changed ones even with it. No `--hub-ssh`:
//! the hub tells the CLI its SSH address (`whoami`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use nextdeploy_tests::sshd::Sshd;
use nextdeploy_tests::*;

/// Upload of a debug binary plus enrolment and start.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(240);

/// Stops the supervised agent of a prefix install on drop.
struct Installed(PathBuf);

impl Drop for Installed {
    fn drop(&mut self) {
        let pidfile = self.0.join("run/nextdeploy-agent.pid");
        if let Ok(pid) = std::fs::read_to_string(pidfile) {
            let _ = send_signal(pid.trim().parse().unwrap_or(0), "TERM");
        }
    }
}

fn install(hub: &Hub, sshd: &Sshd, known_hosts: &Path, prefix: &Path, extra: &[&str]) -> Output {
    let mut cmd = hub.cli_command(&hub.admin_token).unwrap();
    cmd.args(["agent", "install", "--ssh", &sshd.target(), "--identity"])
        .arg(&sshd.client_key)
        .arg("--known-hosts")
        .arg(known_hosts)
        // No --hub-ssh: the CLI learns the hub's SSH address from the hub.
        .arg("--binary")
        .arg(agent_bin().unwrap())
        .args(["--no-systemd", "--name", "pushed", "--labels", "env=test"])
        .arg("--remote-prefix")
        .arg(prefix)
        .args(extra);
    run_bounded(cmd, INSTALL_TIMEOUT).unwrap()
}

#[test]
fn push_install_comes_online_and_second_run_changes_nothing() {
    let hub = start_hub().unwrap();
    let sshd = Sshd::start().unwrap();
    let work = TempDir::new("push").unwrap();
    let prefix = work.path().join("root");
    std::fs::create_dir_all(&prefix).unwrap();
    let _guard = Installed(prefix.clone());
    let kh = work.path().join("known_hosts");

    let out = install(&hub, &sshd, &kh, &prefix, &["--accept-new-host-key"]);
    assert!(out.success(), "{}\n{}", out.describe(), sshd.log());
    assert!(
        out.mentions("[6/6]") && out.mentions("online"),
        "{}",
        out.describe()
    );
    let e = wait_online(&hub, &["pushed"], Duration::from_secs(5)).unwrap();
    assert_eq!(e[0]["labels"]["env"], json!("test"), "{e:?}");
    let kh_text = std::fs::read_to_string(&kh).unwrap();
    assert!(
        kh_text.contains(&format!("[127.0.0.1]:{}", sshd.port)),
        "{kh_text}"
    );
    let conf = prefix.join("etc/nextdeploy/agent/agent.toml");
    let conf_before = std::fs::read(&conf).unwrap();
    let key_before = std::fs::read(prefix.join("etc/nextdeploy/agent/agent_ed25519")).unwrap();
    let tokens_before = hub.cli_json(&["join-token", "list"]).unwrap();

    // Second run: the key is now known (no flag needed) and nothing changes.
    let out = install(&hub, &sshd, &kh, &prefix, &[]);
    assert!(out.success(), "{}", out.describe());
    assert!(out.mentions("nothing to do"), "{}", out.describe());
    assert_eq!(std::fs::read(&conf).unwrap(), conf_before);
    assert_eq!(
        std::fs::read(prefix.join("etc/nextdeploy/agent/agent_ed25519")).unwrap(),
        key_before
    );
    assert_eq!(std::fs::read_to_string(&kh).unwrap(), kh_text);
    assert_eq!(
        hub.cli_json(&["join-token", "list"]).unwrap(),
        tokens_before
    );
    assert_eq!(hub.agent_list().unwrap().len(), 1);
    wait_online(&hub, &["pushed"], Duration::from_secs(1)).unwrap();

    // --output json: progress on stderr, one document on stdout.
    let out = install(&hub, &sshd, &kh, &prefix, &["--output", "json"]);
    let doc = out.clone().ok().unwrap().json().unwrap();
    assert_eq!(doc["name"], "pushed", "{doc}");
    assert_eq!(doc["outcome"], "already_online", "{doc}");
    assert_eq!(doc["hub_ssh"], json!(hub.ssh_addr()), "{doc}");
    assert!(out.stderr.contains("[2/6]"), "{}", out.describe());
}

#[test]
fn unknown_host_key_is_refused_and_changed_key_always() {
    let hub = start_hub().unwrap();
    let mut sshd = Sshd::start().unwrap();
    let work = TempDir::new("hostkey").unwrap();
    let prefix = work.path().join("root");
    std::fs::create_dir_all(&prefix).unwrap();
    let _guard = Installed(prefix.clone());
    let kh = work.path().join("known_hosts");

    let out = install(&hub, &sshd, &kh, &prefix, &[]);
    assert!(!out.success(), "{}", out.describe());
    assert!(
        out.mentions("not in") && out.mentions("--accept-new-host-key"),
        "{}",
        out.describe()
    );
    assert!(!kh.exists() || std::fs::read_to_string(&kh).unwrap().is_empty());
    assert!(!prefix.join("etc").exists(), "something was installed");
    assert!(hub.agent_list().unwrap().is_empty());

    // Learn the key without installing anything: a throwaway accept run that
    // fails later is not wanted, so record it the way ssh would.
    let pubkey = std::fs::read_to_string(sshd.path().join("host_key.pub")).unwrap();
    let mut parts = pubkey.split_whitespace();
    let line = format!(
        "[127.0.0.1]:{} {} {}\n",
        sshd.port,
        parts.next().unwrap(),
        parts.next().unwrap()
    );
    std::fs::write(&kh, &line).unwrap();
    sshd.change_host_key().unwrap();
    let out = install(&hub, &sshd, &kh, &prefix, &["--accept-new-host-key"]);
    assert!(!out.success(), "{}", out.describe());
    assert!(out.mentions("CHANGED"), "{}", out.describe());
    assert_eq!(std::fs::read_to_string(&kh).unwrap(), line);
    assert!(!prefix.join("etc").exists(), "something was installed");
    assert!(hub.agent_list().unwrap().is_empty());
    assert!(
        hub.cli_json(&["join-token", "list"])
            .unwrap()
            .as_array()
            .unwrap()
            .is_empty(),
        "no join token should have been made"
    );
}
