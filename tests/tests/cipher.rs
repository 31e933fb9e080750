#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The agent's connection negotiates AES-256-GCM where the CPU has AES and
//! carry-less multiply instructions, and ChaCha20-Poly1305 elsewhere, as
//! OpenSSH's sshd sees it: the real agent dials a real sshd (pinned to its
//! host key), whose debug log names the cipher of each direction.

use std::time::Duration;

use nextdeploy_tests::sshd::Sshd;
use nextdeploy_tests::*;

/// What this machine's /proc/cpuinfo says, read independently of the agent.
fn cpu_has_aes_and_clmul() -> bool {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap();
    let flags = info
        .lines()
        .find(|l| l.starts_with("flags") || l.starts_with("Features"))
        .unwrap_or("")
        .to_string();
    let words: Vec<&str> = flags.split_whitespace().collect();
    (words.contains(&"aes") && words.contains(&"pclmulqdq"))
        || (words.contains(&"aes") && words.contains(&"pmull"))
}

#[test]
fn agent_negotiates_aes_gcm_with_hardware_aes_as_sshd_sees_it() {
    let hub = start_hub().unwrap();
    let token = hub.join_token("cipher", "", "10m").unwrap();
    let mut agent = Agent::enroll(&hub, "cipher", &token.token).unwrap();
    let sshd = Sshd::start_with("LogLevel DEBUG1\n").unwrap();
    // Point the enrolled agent at sshd, pinned to sshd's own host key.
    let fp = keyscan_fingerprint(sshd.port).unwrap();
    let cfg = std::fs::read_to_string(&agent.config).unwrap();
    let mut replaced = 0;
    let cfg: Vec<String> = cfg
        .lines()
        .map(|l| {
            if l.starts_with("hub = ") {
                replaced += 1;
                format!("hub = \"127.0.0.1:{}\"", sshd.port)
            } else if l.starts_with("hub_fingerprint = ") {
                replaced += 1;
                format!("hub_fingerprint = \"{fp}\"")
            } else {
                l.to_string()
            }
        })
        .collect();
    assert_eq!(replaced, 2, "agent.toml without hub / hub_fingerprint");
    std::fs::write(&agent.config, cfg.join("\n") + "\n").unwrap();
    // ssh-keyscan's own connection is in the log already; only what comes
    // after this point is the agent's.
    let before = sshd.log().len();
    agent.start().unwrap();
    let agent_part = || sshd.log().get(before..).unwrap_or_default().to_string();
    let line = wait_until(
        "sshd logs the negotiated cipher",
        Duration::from_secs(30),
        Duration::from_millis(100),
        || {
            Ok(agent_part()
                .lines()
                .find(|l| l.contains("kex: client->server cipher:"))
                .map(str::to_string))
        },
    )
    .unwrap_or_else(|e| panic!("{e}\nsshd:\n{}\nagent:\n{}", sshd.log(), agent.log_text()));
    let want = if cpu_has_aes_and_clmul() {
        "aes256-gcm@openssh.com"
    } else {
        "chacha20-poly1305@openssh.com"
    };
    assert!(
        line.contains(&format!("cipher: {want} ")),
        "expected {want}: {line}"
    );
    // The same both ways.
    let back = agent_part()
        .lines()
        .find(|l| l.contains("kex: server->client cipher:"))
        .map(str::to_string)
        .unwrap_or_default();
    assert!(back.contains(&format!("cipher: {want} ")), "{back}");
    agent.kill();
}
