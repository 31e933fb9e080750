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

/// `ssh-keygen` (real OpenSSH) run with `args`; it must succeed.
fn ssh_keygen(args: &[&str]) {
    let out = std::process::Command::new("ssh-keygen")
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "ssh-keygen {args:?}: {out:?}");
}

/// A known_hosts that records for the server only a key of another algorithm
/// (ECDSA) refuses it as changed, also when the entry is hashed
/// (`ssh-keygen -H`); an entry for the host without the port is another
/// host; an unparsable file is refused, naming the file and line, never
/// taken for an empty one.
#[test]
fn other_algorithm_hashed_entries_and_bad_files_are_refused() {
    let hub = start_hub().unwrap();
    let sshd = Sshd::start().unwrap();
    let work = TempDir::new("hostkey-forms").unwrap();
    let prefix = work.path().join("root");
    std::fs::create_dir_all(&prefix).unwrap();
    let _guard = Installed(prefix.clone());
    let kh = work.path().join("known_hosts");
    let ecdsa = work.path().join("ecdsa");
    ssh_keygen(&["-q", "-t", "ecdsa", "-N", "", "-f", ecdsa.to_str().unwrap()]);
    let ecdsa_pub = std::fs::read_to_string(ecdsa.with_extension("pub")).unwrap();
    let other: Vec<&str> = ecdsa_pub.split_whitespace().take(2).collect();
    let other = other.join(" ");
    let refused = |extra: &[&str], needles: &[&str]| {
        let before = std::fs::read(&kh).unwrap();
        let out = install(&hub, &sshd, &kh, &prefix, extra);
        assert!(!out.success(), "{}", out.describe());
        for n in needles {
            assert!(out.mentions(n), "{n:?} in {}", out.describe());
        }
        assert_eq!(std::fs::read(&kh).unwrap(), before, "known_hosts changed");
        assert!(!prefix.join("etc").exists(), "something was installed");
    };

    std::fs::write(&kh, format!("[127.0.0.1]:{} {other}\n", sshd.port)).unwrap();
    refused(&["--accept-new-host-key"], &["CHANGED", "line 1"]);

    ssh_keygen(&["-q", "-H", "-f", kh.to_str().unwrap()]);
    assert!(std::fs::read_to_string(&kh).unwrap().starts_with("|1|"));
    refused(&["--accept-new-host-key"], &["CHANGED", "line 1"]);

    // The host on port 22 is not the host on this port.
    std::fs::write(&kh, format!("127.0.0.1 {other}\n")).unwrap();
    refused(&[], &["not in", "--accept-new-host-key"]);

    let bad = format!(
        "# mine\n[127.0.0.1]:{} ssh-ed25519 AAAA-not-base64\n",
        sshd.port
    );
    std::fs::write(&kh, bad).unwrap();
    let line = format!("{} line 2", kh.display());
    refused(&["--accept-new-host-key"], &[&line, "refusing"]);
    assert!(hub.agent_list().unwrap().is_empty());
}
