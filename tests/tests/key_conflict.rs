#![allow(clippy::unwrap_used, clippy::expect_used)]
//! One agent key, two agents. On one config the second `nextdeploy-agent run`
//! refuses to start (a lock beside the config). With a copied config and key
//! the two would replace each other on the hub every few seconds: the hub
//! notices, keeps one, refuses the other with a reason the agent logs (and
//! backs off on), and reports the conflict in `agent list` and as an agent
//! event.

use std::process::Command;
use std::time::{Duration, Instant};

use nextdeploy_tests::process::Streamer;
use nextdeploy_tests::*;

#[test]
fn a_second_agent_on_one_config_refuses_to_start() {
    let hub = start_hub().unwrap();
    let _first = enroll_agent(&hub, "lock-one", "").unwrap();
    wait_online(&hub, &["lock-one"], Duration::from_secs(15)).unwrap();
    let mut cmd = Command::new(agent_bin().unwrap());
    cmd.arg("run").arg("--config").arg(&_first.config);
    let out = run_bounded(cmd, Duration::from_secs(10)).unwrap();
    assert!(!out.success(), "a second agent ran: {}", out.describe());
    assert!(
        out.stderr
            .contains("another nextdeploy-agent is already running")
            && out.stderr.contains("agent.toml"),
        "{}",
        out.describe()
    );
    // The first is untouched.
    let e = hub.agent_entry("lock-one").unwrap().unwrap();
    assert_eq!(e["online"], json!(true), "{e}");
}

#[test]
fn two_agents_with_one_copied_key_stop_flapping_and_the_conflict_is_reported() {
    let hub = start_hub().unwrap();
    let mut events = {
        let mut cmd = hub.cli_command(&hub.admin_token).unwrap();
        cmd.args(["agent", "events", "--selector", "dup=yes", "-o", "json"]);
        Streamer::spawn(cmd).unwrap()
    };
    let first = enroll_agent(&hub, "dup-key", "dup=yes").unwrap();
    wait_online(&hub, &["dup-key"], Duration::from_secs(15)).unwrap();
    let mut second = first.copy_identity("copy").unwrap();
    second.start().unwrap();

    // Within a few of their 1-3 s backoffs the hub declares the conflict.
    let conflict = wait_until(
        "the conflict in agent list",
        Duration::from_secs(60),
        Duration::from_millis(200),
        || {
            Ok(hub
                .agent_entry("dup-key")?
                .filter(|e| e["conflict"].is_object()))
        },
    )
    .unwrap_or_else(|e| panic!("{e:#}\n{}", hub.log_tail()));
    eprintln!("conflict: {conflict}");
    assert!(conflict["conflict"]["refusals"].as_u64().unwrap() >= 1);
    let ev = events
        .wait_json("the conflict event", Duration::from_secs(10), |v| {
            v["kind"] == "agent" && v["action"] == "conflict"
        })
        .unwrap();
    assert_eq!(ev["server"], "dup-key", "{ev}");

    // The refused agent says why, and backs off.
    let needle = "another agent is online with this agent's key";
    wait_until(
        "the refused agent's log line",
        Duration::from_secs(10),
        Duration::from_millis(100),
        || {
            Ok(
                (first.log_text().contains(needle) || second.log_text().contains(needle))
                    .then_some(()),
            )
        },
    )
    .unwrap_or_else(|e| panic!("{e:#}\n{}\n{}", first.log_tail(), second.log_tail()));

    // No more flapping: one connection stays online, from one address.
    let kept = hub.agent_entry("dup-key").unwrap().unwrap();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(8) {
        let e = hub.agent_entry("dup-key").unwrap().unwrap();
        assert_eq!(e["online"], json!(true), "{e}");
        assert_eq!(
            e["address"],
            kept["address"],
            "still flapping: {e}\n{}",
            hub.log_tail()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let table = hub.cli(&["agent", "list"]).unwrap().ok().unwrap();
    assert!(table.stdout.contains("key conflict"), "{}", table.stdout);
    drop(second);
}
