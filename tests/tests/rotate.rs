#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `agent rotate-key`: the agent makes a new key and proves it over its
//! tunnel; the hub swaps the keys; the old key is refused afterwards and the
//! agent never goes offline (the same connection carries on).

use std::time::Duration;

use nextdeploy_tests::*;

#[test]
fn rotate_key_keeps_agent_online_and_refuses_old_key() {
    let hub = start_hub().unwrap();
    let agent = enroll_agent(&hub, "rot-1", "env=dev").unwrap();
    let before = wait_online(&hub, &["rot-1"], Duration::from_secs(15)).unwrap();
    let fp_before = before[0]["fingerprint"].as_str().unwrap().to_string();
    let old_key = agent.dir().join("old_key");
    std::fs::copy(&agent.key, &old_key).unwrap();
    std::fs::set_permissions(
        &old_key,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();

    let v = hub
        .cli_json(&["agent", "rotate-key", "--server=rot-1"])
        .unwrap();
    assert_eq!(v["old_fingerprint"], json!(fp_before), "{v}");
    assert_ne!(v["new_fingerprint"], json!(fp_before), "{v}");
    assert_eq!(v["agent_confirmed"], json!(true), "{v}");

    // still online, on the same connection (the hub logged no new session)
    let now = wait_online(&hub, &["rot-1"], Duration::from_secs(1)).unwrap();
    assert_eq!(now[0]["fingerprint"], v["new_fingerprint"]);
    hub.cli(&["agent", "ping", "--server=rot-1", "-c", "1"])
        .unwrap()
        .ok()
        .unwrap();
    // the key file on disk is the new key (its old copy is gone)
    assert_ne!(
        std::fs::read(&agent.key).unwrap(),
        std::fs::read(&old_key).unwrap()
    );
    assert!(!agent.key.with_extension("new").exists());

    // the old key is refused
    let out = ssh_with_key(&hub, &old_key, &[], &["true"]).unwrap();
    assert!(out.mentions("Permission denied"), "{}", out.describe());
    // audit
    assert!(
        hub.log_text().contains("agent key rotated"),
        "{}",
        hub.log_tail()
    );
}
