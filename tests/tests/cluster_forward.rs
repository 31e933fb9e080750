#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Any hub answers any request (issue 23): two hub processes on one store
//! and one cluster secret, a real agent on this machine's engine held by
//! hub B, a second agent held by A. Through A: an `events` stream opened
//! before B joined that carries B's agent's events, one-shot requests (the
//! shared hub-to-hub link), `logs --follow` (a link of its own, ended by the
//! client), exec with stdin both ways, a deploy whose record lands in the
//! shared store, a deploy by selector whose batches reach both hubs' agents,
//! a selector fan-out answered by both hubs, and a viewer's
//! limits kept on the far side. A link signed with another secret, or for a
//! revoked token, is refused.

use std::io::{Read, Write};
use std::process::Stdio;
use std::time::Duration;

use nextdeploy_tests::cluster::Shared;
use nextdeploy_tests::docker::*;
use nextdeploy_tests::*;
use serde_json::Value;

const ONLINE_WAIT: Duration = Duration::from_secs(20);

/// `agent exec` through `hub` with `stdin`: (exit code, stdout, stderr).
fn exec_through(
    hub: &Hub,
    server: &str,
    container: &str,
    cmd: &[&str],
    stdin: &[u8],
) -> (i32, String, String) {
    let mut c = hub.cli_command(&hub.admin_token).unwrap();
    c.args([
        "agent",
        "exec",
        "-i",
        "--server",
        server,
        "--container",
        container,
        "--",
    ])
    .args(cmd)
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin).unwrap();
    drop(input);
    let (mut out, mut err) = (String::new(), String::new());
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let status = child.wait().unwrap();
    (status.code().unwrap_or(-1), out, err)
}

/// The statuses of `server`'s records in a `deploys list`, newest first.
fn statuses(deploys: &Value, server: &str) -> Vec<String> {
    deploys
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["server"] == server)
        .map(|r| r["status"].as_str().unwrap_or("").to_string())
        .collect()
}

#[test]
fn a_hub_forwards_requests_for_agents_another_hub_holds() {
    let _lock = docker_lock().unwrap();
    require_docker().unwrap();
    let image = fixture_image().unwrap();
    let names = Names::new("fw");
    let shared = Shared::new();
    let a = shared.first();
    // Events through A, asked before B exists: B's stream joins it when B
    // joins the cluster (fw-b's events, sent by B, below).
    let mut cmd = a.cli_command(&a.admin_token).unwrap();
    cmd.args(["agent", "events", "--output", "json"]);
    let mut events = Streamer::spawn(cmd).unwrap();
    let b = shared.join(&a);
    // fw-b on B (Docker), fw-a on A; the join token made on A.
    let jt = a.join_token("fw-b", "fleet=fw", "1h").unwrap();
    let mut on_b = Agent::enroll(&b, "fw-b", &jt.token).unwrap();
    on_b.start().unwrap();
    let _on_a = enroll_agent(&a, "fw-a", "fleet=fw").unwrap();
    wait_online(&a, &["fw-a", "fw-b"], ONLINE_WAIT).unwrap();
    let logs = || format!("A:\n{}\nB:\n{}", a.log_tail(), b.log_tail());

    // One-shot through A (twice: the second on the same shared link).
    for _ in 0..2 {
        let p = a
            .cli_json(&["agent", "ping", "--server", "fw-b"])
            .unwrap_or_else(|e| panic!("{e:#}\n{}", logs()));
        assert_eq!(p["server"], "fw-b", "{p}");
    }
    // Events through A: fw-b's (sent by B) as well as fw-a's. A's view
    // shows B alive within a heartbeat of its first; give it two.
    std::thread::sleep(Duration::from_secs(2));
    let logger = Container::run(&names, &image, "logger", &[], &["tick"]).unwrap();
    for server in ["fw-a", "fw-b"] {
        events
            .wait_json(
                &format!("{server}'s start event"),
                Duration::from_secs(15),
                |v| v["server"] == server && v.to_string().contains(&logger.name),
            )
            .unwrap_or_else(|e| panic!("{e:#}\n{}", logs()));
    }
    drop(events);
    // status through A: fw-b's live snapshot (held by B) is in its row.
    wait_until(
        "fw-b's snapshot in A's status",
        Duration::from_secs(15),
        Duration::from_millis(200),
        || {
            let rows = a.cli_json(&["agent", "status"])?;
            let row = rows
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["server"] == "fw-b")
                .cloned();
            Ok(row
                .filter(|r| r["snapshot_at"].is_string() && r["hub"].is_string())
                .map(|_| ()))
        },
    )
    .unwrap();
    let ps = a
        .cli_json(&["agent", "ps", "--server", "fw-b", "--all"])
        .unwrap();
    assert!(ps.to_string().contains(&logger.name), "ps through A: {ps}");

    // logs --follow through A: lines arrive, and keep arriving.
    let mut cmd = a.cli_command(&a.admin_token).unwrap();
    cmd.args([
        "agent",
        "logs",
        "--server",
        "fw-b",
        "--container",
        &logger.name,
        "--follow",
    ]);
    let mut follow = Streamer::spawn(cmd).unwrap();
    follow
        .wait_line("tick 1", Duration::from_secs(15), |l| {
            l.text().contains("tick 1")
        })
        .unwrap();
    follow
        .wait_line("tick 5", Duration::from_secs(15), |l| {
            l.text().contains("tick 5")
        })
        .unwrap();
    drop(follow);

    // exec through A, stdin and stdout both ways, exit code kept.
    let (code, out, err) = exec_through(&a, "fw-b", &logger.name, &["cat"], b"through two hubs\n");
    assert_eq!(
        (code, out.as_str()),
        (0, "through two hubs\n"),
        "stderr: {err}\n{}",
        logs()
    );
    let (code, _, _) = exec_through(&a, "fw-b", &logger.name, &["sh", "-c", "exit 7"], b"");
    assert_eq!(code, 7);
    // Its session is recorded (by B, in the shared store): A lists it.
    let sessions = a.cli_json(&["exec-sessions", "list"]).unwrap();
    assert!(
        sessions.to_string().contains("through") || sessions.to_string().contains("cat"),
        "{sessions}"
    );

    // A deploy through A to the agent B holds; its record is in the store.
    let web = Container::run(&names, &image, "web", &[], &["idle"]).unwrap();
    let d = a
        .cli(&[
            "agent",
            "deploy",
            "--server",
            "fw-b",
            "--container",
            &web.name,
            "--image",
            &image,
            "--pull",
            "never",
        ])
        .unwrap();
    assert!(
        d.success(),
        "deploy through A: {}\n{}",
        d.describe(),
        logs()
    );
    let deploys = a.cli_json(&["deploys", "list"]).unwrap();
    assert_eq!(statuses(&deploys, "fw-b"), ["succeeded"], "{deploys}");

    // A deploy by selector through A: its batches reach fw-a (held here)
    // and fw-b (held by B, which runs and records its part), in name order.
    // (`--output json` prints each step, then the fleet's outcome last.)
    let d = a
        .cli(&[
            "agent",
            "deploy",
            "--selector",
            "fleet=fw",
            "--container",
            &web.name,
            "--image",
            &image,
            "--pull",
            "never",
            "--output",
            "json",
        ])
        .unwrap();
    assert!(d.success(), "{}\n{}", d.describe(), logs());
    let last = d.stdout.lines().last().unwrap_or_default();
    let fleet: Value = serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: {last}"));
    assert!(
        d.stdout
            .contains(r#""server":"fw-b","status":"done","step":"health""#),
        "fw-b's steps (from B) relayed: {}",
        d.stdout
    );
    assert_eq!(
        fleet["updated"],
        serde_json::json!(["fw-a", "fw-b"]),
        "{fleet}"
    );
    assert_eq!(fleet["failed"], serde_json::json!([]), "{fleet}");
    let deploys = a.cli_json(&["deploys", "list"]).unwrap();
    assert_eq!(statuses(&deploys, "fw-a"), ["succeeded"], "{deploys}");
    assert_eq!(
        statuses(&deploys, "fw-b"),
        ["succeeded", "succeeded"],
        "{deploys}"
    );

    // A selector fan-out through A: both hubs' agents answer, once each.
    let fan = a
        .cli_json(&["agent", "ping", "--selector", "fleet=fw"])
        .unwrap();
    let servers: Vec<String> = fan
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["server"].as_str().unwrap_or("").to_string())
        .collect();
    let mut sorted = servers.clone();
    sorted.sort();
    assert_eq!(sorted, ["fw-a", "fw-b"], "{fan}");

    // A viewer made on A: ping goes through, stop is refused.
    let v = a
        .cli_json(&["token", "create", "--role", "viewer", "--name", "fw-viewer"])
        .unwrap();
    let viewer = v["token"].as_str().unwrap();
    assert!(a
        .cli_as(viewer, &["agent", "ping", "--server", "fw-b"])
        .unwrap()
        .success());
    let stop = a
        .cli_as(viewer, &["agent", "stop", "--server", "fw-b", &web.name])
        .unwrap();
    assert!(
        !stop.success() && stop.stderr.contains("permission denied"),
        "{}",
        stop.describe()
    );
}

/// A link that does not carry a claim signed with the cluster's secret is
/// refused at the upgrade (the claim's own checks: hub/src/cluster/peer_auth.rs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_without_the_clusters_signature_is_refused() {
    let shared = Shared::new();
    let a = shared.first();
    let forged = [("x-nextdeploy-peer", "v1.aaaa.1.tok.once.00")];
    let refused = ws_connect_with(&a, &forged)
        .await
        .err()
        .expect("a forged claim was accepted");
    assert_eq!(ws_refusal_status(&refused), Some(401), "{refused}");
    wait_until(
        "the refusal logged",
        Duration::from_secs(2),
        Duration::from_millis(20),
        || {
            Ok(a.log_text()
                .contains("refused a hub-to-hub link")
                .then_some(()))
        },
    )
    .unwrap();
}
