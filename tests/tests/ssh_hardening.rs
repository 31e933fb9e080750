#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The hub's SSH server offers only what agents need (ssh-audit finds
//! nothing but curve25519's post-quantum note), cuts authenticated sessions
//! that never say hello, cuts them on revocation before their hello, and
//! refuses used or expired join-token ids at authentication, caps
//! handshakes per source prefix and penalises sources that time out.

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use nextdeploy_shared::protocol::{AGENT_USER, ENROLL_USER_PREFIX};
use nextdeploy_tests::*;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpSocket, TcpStream};

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

/// The hub's default `--max-handshakes-per-ip`.
const PER_IP: usize = 64;
/// The hub's default `--max-handshakes-per-prefix`.
const PER_PREFIX: usize = 128;
/// How long a real agent usually takes from start to online here.
const AGENT_USUAL: Duration = Duration::from_secs(5);
/// How long the hub has to answer (banner) or close a new connection.
const FIRST_WORD: Duration = Duration::from_secs(5);

/// `n` TCP connections to the hub from `from`, saying nothing.
async fn idle_from(port: u16, from: [u8; 4], n: usize) -> Vec<TcpStream> {
    let to: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut conns = Vec::with_capacity(n);
    for i in 0..n {
        let sock = TcpSocket::new_v4().unwrap();
        sock.bind((from, 0).into()).unwrap();
        let s = tokio::time::timeout(FIRST_WORD, sock.connect(to))
            .await
            .unwrap_or_else(|_| panic!("connect #{i} from {from:?} timed out"))
            .unwrap_or_else(|e| panic!("connect #{i} from {from:?}: {e}"));
        conns.push(s);
    }
    conns
}

/// Whether the hub served the connection (sent its SSH banner) rather than
/// closing it at accept.
async fn served(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 256];
    match tokio::time::timeout(FIRST_WORD, s.read(&mut buf)).await {
        Ok(Ok(n)) if n > 0 => buf.starts_with(b"SSH-2.0-"),
        Ok(_) => false,
        Err(_) => panic!("the hub neither served nor closed a connection in {FIRST_WORD:?}"),
    }
}

/// Start `agent` and return how long it took to come online.
fn time_online(hub: &Hub, agent: &mut Agent) -> Duration {
    let start = Instant::now();
    agent.start().unwrap();
    wait_online(hub, &[&agent.name], AGENT_USUAL * 2).unwrap();
    start.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_from_one_prefix_do_not_keep_an_agent_out() {
    let hub = start_hub().unwrap();
    let jt = hub.join_token("outsider", "env=dev", "1h").unwrap();
    let mut agent = Agent::enroll(&hub, "outsider", &jt.token).unwrap();

    // 64 idle connections from each of four addresses of 127.0.5.0/24: the
    // first two addresses fill the prefix's 128 places, the rest is closed.
    let mut idle = vec![];
    for host in 2..=5 {
        idle.extend(idle_from(hub.ssh_port, [127, 0, 5, host], PER_IP).await);
    }
    let mut kept = 0;
    for s in &mut idle {
        kept += usize::from(served(s).await);
    }
    assert_eq!(kept, PER_PREFIX, "connections served from one /24");

    // The agent (127.0.0.1, another /24) comes online in its usual time.
    let took = tokio::task::block_in_place(|| time_online(&hub, &mut agent));
    eprintln!("agent online in {took:?} beside {kept} idle connections from one /24");
    assert!(took < AGENT_USUAL, "agent online only after {took:?}");
    drop(idle);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sources_that_time_out_are_penalised_authenticated_ones_never() {
    let hub = Hub::start(HubOpts::args(["--auth-deadline", "2s"])).unwrap();
    let jt = hub.join_token("neighbour", "env=dev", "1h").unwrap();
    let mut agent = Agent::enroll(&hub, "neighbour", &jt.token).unwrap();
    let took = tokio::task::block_in_place(|| time_online(&hub, &mut agent));
    assert!(took < AGENT_USUAL, "agent online only after {took:?}");

    // Two idle connections from 127.0.6.2 run out the deadline: 20 s of
    // penalty, over the 15 s minimum. The same from 127.0.0.1, where an
    // agent authenticated, costs nothing.
    let mut idle = idle_from(hub.ssh_port, [127, 0, 6, 2], 2).await;
    idle.extend(idle_from(hub.ssh_port, [127, 0, 0, 1], 2).await);
    for s in &mut idle {
        assert!(served(s).await, "an idle connection was not served");
    }
    for s in &mut idle {
        let mut buf = [0u8; 256];
        let end = tokio::time::Instant::now() + Duration::from_secs(2) + SLACK;
        loop {
            match tokio::time::timeout_at(end, s.read(&mut buf)).await {
                Err(_) => panic!("an idle connection outlived the 2 s deadline"),
                Ok(Ok(0)) | Ok(Err(_)) => break,
                Ok(Ok(_)) => {}
            }
        }
    }

    let mut again = idle_from(hub.ssh_port, [127, 0, 6, 2], 1).await;
    assert!(
        !served(&mut again[0]).await,
        "a penalised source was served"
    );
    let mut other = idle_from(hub.ssh_port, [127, 0, 6, 3], 1).await;
    assert!(
        served(&mut other[0]).await,
        "its neighbour address was refused"
    );
    let mut trusted = idle_from(hub.ssh_port, [127, 0, 0, 1], 1).await;
    assert!(
        served(&mut trusted[0]).await,
        "the agents' address was penalised"
    );
    assert!(
        hub.agent_entry("neighbour")
            .unwrap()
            .is_some_and(|a| a["online"] == json!(true)),
        "the agent went offline"
    );
}
