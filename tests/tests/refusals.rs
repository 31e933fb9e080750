#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The hub's SSH server refuses strangers, plain ssh clients (even with an
//! enrolled agent's key), revoked agents; an agent refuses a hub whose host
//! key does not match its pin and never sends its token there.

use std::time::Duration;

use nextdeploy_tests::*;

fn assert_no_key_file_complaint(out: &Output) {
    assert!(
        !out.mentions("UNPROTECTED PRIVATE KEY") && !out.mentions("Load key"),
        "ssh could not use the key at all (test bug?): {}",
        out.describe()
    );
}

#[test]
fn unenrolled_key_is_refused() {
    let hub = start_hub().unwrap();
    let dir = TempDir::new("stranger").unwrap();
    let key = dir.path().join("id_ed25519");
    ssh_keygen(&key).unwrap();
    let out = ssh_with_key(&hub, &key, &[], &["true"]).unwrap();
    assert!(!out.success(), "{}", out.describe());
    assert_no_key_file_complaint(&out);
    assert!(out.mentions("Permission denied"), "{}", out.describe());
    // only publickey is advertised
    assert!(out.mentions("publickey"), "{}", out.describe());
    assert!(
        !out.mentions("password") && !out.mentions("keyboard-interactive"),
        "{}",
        out.describe()
    );
}

#[test]
fn enrolled_key_gets_no_shell_exec_or_forwarding() {
    let hub = start_hub().unwrap();
    let agent = enroll_agent(&hub, "plain-ssh", "env=dev").unwrap();
    wait_online(&hub, &["plain-ssh"], Duration::from_secs(15)).unwrap();
    assert!(agent.key.is_file(), "no key at {}", agent.key.display());

    // shell with a pty
    let out = ssh_with_key(&hub, &agent.key, &["-tt"], &[]).unwrap();
    assert!(!out.success(), "shell: {}", out.describe());
    assert_no_key_file_complaint(&out);

    // exec
    let out = ssh_with_key(&hub, &agent.key, &[], &["echo", "EXEC-RAN-MARKER"]).unwrap();
    assert!(!out.success(), "exec: {}", out.describe());
    assert!(
        !out.stdout.contains("EXEC-RAN-MARKER"),
        "{}",
        out.describe()
    );
    assert_no_key_file_complaint(&out);
    let out = ssh_with_key(&hub, &agent.key, &[], &["true"]).unwrap();
    assert!(!out.success(), "exec true: {}", out.describe());

    // subsystem
    let out = ssh_with_key(&hub, &agent.key, &["-s"], &["sftp"]).unwrap();
    assert!(!out.success(), "subsystem: {}", out.describe());

    // direct-tcpip forwarding (stdio forward to the hub's own HTTP port)
    let out = ssh_with_key(
        &hub,
        &agent.key,
        &["-W", &format!("127.0.0.1:{}", hub.http_port)],
        &[],
    )
    .unwrap();
    assert!(!out.success(), "-W forwarding: {}", out.describe());
    assert!(!out.stdout.contains("HTTP/"), "{}", out.describe());

    // the hub is still healthy
    let (status, _) = hub.http_get("/health").unwrap();
    assert_eq!(status, 200);
}

#[test]
fn revoked_agent_is_cut_and_stays_out() {
    let hub = start_hub().unwrap();
    let mut agent = enroll_agent(&hub, "to-revoke", "env=dev").unwrap();
    let _other = enroll_agent(&hub, "keeper", "env=dev").unwrap();
    wait_online(&hub, &["to-revoke", "keeper"], Duration::from_secs(15)).unwrap();

    hub.cli(&["agent", "revoke", "to-revoke"])
        .unwrap()
        .ok()
        .unwrap();
    // the live connection is cut within a second
    wait_offline(&hub, &["to-revoke"], Duration::from_secs(1)).unwrap();

    // the key is refused from now on: OpenSSH with the agent's key gets
    // "Permission denied" at authentication
    let out = ssh_with_key(&hub, &agent.key, &[], &["true"]).unwrap();
    assert!(!out.success(), "{}", out.describe());
    assert!(out.mentions("Permission denied"), "{}", out.describe());

    // a restarted agent process does not get back in
    agent.start().unwrap();
    for _ in 0..30 {
        let e = hub.agent_entry("to-revoke").unwrap();
        if let Some(e) = e {
            assert_ne!(e["online"], json!(true), "revoked agent online again: {e}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // the other agent is untouched
    wait_online(&hub, &["keeper"], Duration::from_secs(1)).unwrap();
}

#[test]
fn agent_refuses_hub_with_other_host_key_and_keeps_token() {
    let hub_a = start_hub().unwrap();
    let jt = hub_a.join_token("pinned", "env=prod", "1h").unwrap();
    let hub_b = start_hub().unwrap();
    assert_ne!(hub_a.fingerprint, hub_b.fingerprint);

    let dir = TempDir::new("mitm").unwrap();
    let config = dir.path().join("agent.toml");
    let out = agent_enroll(&hub_b.ssh_addr(), &jt.token, &config)
        .unwrap()
        .failed()
        .unwrap();
    assert!(
        out.mentions("fingerprint") || out.mentions("host key"),
        "should explain the host key mismatch: {}",
        out.describe()
    );
    assert!(
        out.mentions("mismatch") || out.mentions("does not match") || out.mentions("expected"),
        "should say the key does not match: {}",
        out.describe()
    );
    // hub B never saw the token (nor its secret)
    let secret = jt.token.split('_').nth(2).unwrap();
    assert!(!hub_b.log_text().contains(secret));
    // hub A still has the token unused
    let tokens = hub_a.cli_json(&["join-token", "list"]).unwrap();
    let t = tokens
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == json!(jt.id))
        .unwrap_or_else(|| panic!("token {} not listed: {tokens}", jt.id));
    let unused =
        t["used"] == json!(false) || (t.get("used_at").is_some() && t["used_at"].is_null());
    assert!(unused, "token marked used: {t}");
    // and nothing got enrolled on B
    assert!(hub_b.agent_list().unwrap().is_empty());

    // the untouched token still works against the right hub
    let a = Agent::enroll(&hub_a, "pinned", &jt.token).unwrap();
    assert!(a.config.is_file());
}
