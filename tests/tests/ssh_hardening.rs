#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The hub's SSH server offers only what agents need (ssh-audit finds
//! nothing but curve25519's post-quantum note), cuts authenticated sessions
//! that never say hello, cuts them on revocation before their hello, and
//! refuses used or expired join-token ids at authentication.

use std::process::Command;
use std::time::Duration;

use nextdeploy_shared::protocol::{AGENT_USER, ENROLL_USER_PREFIX};
use nextdeploy_tests::*;

/// The hub's `HELLO_TIMEOUT`: an authenticated agent has this long, in all,
/// to accept the control channel and say hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// Slack on the hub's timers for a loaded CI machine.
const SLACK: Duration = Duration::from_secs(5);
/// How long ssh-audit may take (its rate test opens a few dozen connections).
const AUDIT_TIMEOUT: Duration = Duration::from_secs(120);

/// Every `fail` and `warn` note ssh-audit gives an algorithm, as
/// `(algorithm, level, note)`.
fn flagged(report: &serde_json::Value) -> Vec<(String, String, String)> {
    let mut out = vec![];
    for section in ["kex", "key", "enc", "mac"] {
        for alg in report[section].as_array().unwrap() {
            let name = alg["algorithm"].as_str().unwrap();
            for level in ["fail", "warn"] {
                for note in alg["notes"][level].as_array().into_iter().flatten() {
                    let note = note.as_str().unwrap_or_default().to_string();
                    out.push((name.to_string(), level.to_string(), note));
                }
            }
        }
    }
    out
}

fn names(report: &serde_json::Value, section: &str) -> Vec<String> {
    report[section]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["algorithm"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn ssh_audit_flags_nothing_but_curve25519_post_quantum_note() {
    let hub = start_hub().unwrap();
    let mut cmd = Command::new("ssh-audit");
    cmd.args(["-j", "-p", &hub.ssh_port.to_string(), "127.0.0.1"]);
    // ssh-audit exits non-zero when it warns about anything; the JSON says what.
    let out = run_bounded(cmd, AUDIT_TIMEOUT).unwrap();
    let report: serde_json::Value = serde_json::from_str(out.stdout.trim())
        .unwrap_or_else(|e| panic!("ssh-audit -j gave no JSON ({e}): {}", out.describe()));

    let flagged = flagged(&report);
    let unexpected: Vec<_> = flagged
        .iter()
        .filter(|(alg, level, note)| {
            !(alg == "curve25519-sha256" && level == "warn" && note.contains("post-quantum"))
        })
        .collect();
    assert!(unexpected.is_empty(), "ssh-audit flags: {unexpected:#?}");
    assert_eq!(
        flagged.len(),
        1,
        "curve25519's note is expected: {flagged:?}"
    );
    assert_eq!(
        names(&report, "kex"),
        [
            "mlkem768x25519-sha256",
            "curve25519-sha256",
            "ext-info-s",
            "kex-strict-s-v00@openssh.com"
        ]
    );
    assert_eq!(
        names(&report, "enc"),
        [
            "chacha20-poly1305@openssh.com",
            "aes256-gcm@openssh.com",
            "aes128-gcm@openssh.com"
        ]
    );
    assert_eq!(names(&report, "key"), ["ssh-ed25519"]);
    assert_eq!(report["compression"], json!(["none"]), "{report:#}");
    assert_eq!(report["cves"], json!([]), "{report:#}");
    assert_eq!(report["recommendations"], json!({}), "{report:#}");
    for note in report["additional_notes"].as_array().into_iter().flatten() {
        eprintln!("ssh-audit note (informational): {note}");
    }

    // OpenSSH 9.2's ssh-keyscan (curve25519) and our agent (mlkem768x25519)
    // still connect.
    assert_eq!(keyscan_fingerprint(hub.ssh_port).unwrap(), hub.fingerprint);
    let _agent = enroll_agent(&hub, "audited", "env=dev").unwrap();
    wait_online(&hub, &["audited"], Duration::from_secs(15)).unwrap();
}

#[test]
fn authenticated_session_without_hello_is_cut_in_time() {
    let hub = start_hub().unwrap();
    let mut agent = enroll_agent(&hub, "mute", "env=dev").unwrap();
    wait_online(&hub, &["mute"], Duration::from_secs(15)).unwrap();
    agent.kill();
    wait_offline(&hub, &["mute"], Duration::from_secs(15)).unwrap();

    let silent = SilentClient::login(&hub.ssh_addr(), &agent.key, AGENT_USER)
        .unwrap()
        .expect("the enrolled key authenticates");
    let took = silent
        .wait_closed(HELLO_TIMEOUT + SLACK)
        .unwrap_or_else(|| panic!("still open after {:?}", HELLO_TIMEOUT + SLACK));
    // Held until the bound, not dropped for some other reason at once.
    assert!(took >= HELLO_TIMEOUT - SLACK, "cut after {took:?}");
    assert!(hub
        .agent_entry("mute")
        .unwrap()
        .is_some_and(|a| a["online"] != json!(true)));
}

#[test]
fn revocation_cuts_a_session_that_has_not_said_hello() {
    let hub = start_hub().unwrap();
    let mut agent = enroll_agent(&hub, "doomed", "env=dev").unwrap();
    wait_online(&hub, &["doomed"], Duration::from_secs(15)).unwrap();
    agent.kill();
    wait_offline(&hub, &["doomed"], Duration::from_secs(15)).unwrap();

    let silent = SilentClient::login(&hub.ssh_addr(), &agent.key, AGENT_USER)
        .unwrap()
        .expect("the enrolled key authenticates");
    assert!(!silent.is_closed());
    hub.cli(&["agent", "revoke", "doomed"])
        .unwrap()
        .ok()
        .unwrap();
    let took = silent
        .wait_closed(Duration::from_secs(2))
        .expect("the unregistered session is cut on revocation");
    assert!(took < HELLO_TIMEOUT - SLACK, "{took:?}");
    assert!(
        hub.log_text().contains("cut unregistered connections"),
        "{}",
        hub.log_tail()
    );
    // The key authenticates nothing from now on.
    let again = SilentClient::login(&hub.ssh_addr(), &agent.key, AGENT_USER).unwrap();
    assert!(again.is_none(), "a revoked key authenticated");
    assert!(hub
        .agent_entry("doomed")
        .unwrap()
        .is_none_or(|a| a["online"] != json!(true)));
}

#[test]
fn used_or_expired_join_token_id_authenticates_nothing() {
    let hub = start_hub().unwrap();
    let dir = TempDir::new("stranger").unwrap();
    let stranger = dir.path().join("id_ed25519");
    ssh_keygen(&stranger).unwrap();
    let login = |id: &str| {
        let user = format!("{ENROLL_USER_PREFIX}{id}");
        SilentClient::login(&hub.ssh_addr(), &stranger, &user).unwrap()
    };

    // Control: an unused, unexpired id lets a new key in (to prove its secret).
    let fresh = hub.join_token("fresh", "env=dev", "1h").unwrap();
    assert!(
        login(&fresh.id).is_some(),
        "a fresh join token id is refused"
    );

    let used = hub.join_token("used", "env=dev", "1h").unwrap();
    let _agent = Agent::enroll(&hub, "used", &used.token).unwrap();
    assert!(
        login(&used.id).is_none(),
        "a used join token id authenticated"
    );

    let expired = hub.join_token("late", "env=dev", "1s").unwrap();
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        login(&expired.id).is_none(),
        "an expired join token id authenticated"
    );

    let deleted = hub.join_token("gone", "env=dev", "1h").unwrap();
    hub.cli(&["join-token", "delete", &deleted.id])
        .unwrap()
        .ok()
        .unwrap();
    assert!(
        login(&deleted.id).is_none(),
        "a deleted join token id authenticated"
    );
}
