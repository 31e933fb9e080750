#![allow(clippy::unwrap_used, clippy::expect_used)]
//! No gaps while the link is down (issue 22): the agent reaches its hub
//! through a loopback proxy whose link the test cuts for 60 s while one
//! container exits 3 and another burns a core. After the link comes back the
//! history has the burner's points inside the outage, the die event is in
//! `events --since` once, marked late, and the `container-died` rule fired
//! once (marked late). Then a second outage during which the agent is killed
//! and restarted, and a replay cut short by a third cut right after it
//! reconnects: still every die once, and no history bucket counted twice.

use std::time::{Duration, Instant};

use nextdeploy_tests::docker::{DockerEnv, TEST_LABEL};
use nextdeploy_tests::proxy::Proxy;
use nextdeploy_tests::receiver::Receiver;
use nextdeploy_tests::{set_config_key, wait_offline, wait_online, wait_until_ok};
use serde_json::Value;

/// The outage the issue asks for.
const OUTAGE: Duration = Duration::from_secs(60);
/// Reconnecting after a minute of failed dials: the backoff's ceiling (60 s)
/// plus the handshake.
const BACK_ONLINE: Duration = Duration::from_secs(100);
/// Health snapshots every 2 s: at most 3 samples in a 5 s bucket, so a
/// bucket counted twice shows.
const MAX_SAMPLES: i64 = 3;
/// The history's finest bucket, seconds.
const BUCKET_S: i64 = 5;

fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The 5 s history points of `container` over the last 30 minutes (none
/// while it has no history yet).
fn points(env: &DockerEnv, container: &str) -> Vec<Value> {
    let out = env
        .agent_cli(
            "history",
            &[
                "--container",
                container,
                "--since",
                "30m",
                "--resolution",
                "5s",
                "-o",
                "json",
            ],
        )
        .unwrap();
    if !out.success() {
        return Vec::new();
    }
    let v = out.json().unwrap();
    v["points"].as_array().cloned().unwrap_or_default()
}

/// `events --since 30m` of `container` collected for a few seconds.
fn events(env: &DockerEnv, container: &str) -> Vec<Value> {
    let mut s = env
        .agent_stream(
            "events",
            &[
                "--output",
                "json",
                "--container",
                container,
                "--since",
                "30m",
            ],
        )
        .unwrap();
    s.collect_for(Duration::from_secs(3))
        .iter()
        .filter_map(|l| l.json().ok())
        .collect()
}

fn dies(env: &DockerEnv, container: &str) -> Vec<Value> {
    events(env, container)
        .into_iter()
        .filter(|e| e["action"] == "die")
        .collect()
}

fn firing_for(rx: &Receiver, container: &str) -> Vec<Value> {
    rx.delivered()
        .iter()
        .map(|r| r.json())
        .filter(|v| v["status"] == "firing" && v["container"] == container)
        .collect()
}

/// Wait until `container` has exited with code 3.
fn wait_exited(container: &str) {
    wait_until_ok(
        "the container to exit 3",
        Duration::from_secs(60),
        Duration::from_millis(500),
        || {
            // The link may be down: ask Docker itself.
            let out = nextdeploy_tests::docker::docker(&[
                "inspect",
                "--format",
                "{{.State.Status}} {{.State.ExitCode}}",
                container,
            ])?;
            Ok(out.trim() == "exited 3")
        },
    )
    .unwrap();
}

/// No 5 s bucket holds more samples than 2 s snapshots can put there. The
/// buckets within a bucket of `restarted` (when a new agent process
/// started) may hold one more: the old agent's last sweep and the new one's
/// first, which it makes at once, fall 2 s apart or less.
fn assert_nothing_doubled(env: &DockerEnv, container: &str, restarted: Option<i64>) {
    let pts = points(env, container);
    let near_restart =
        |t: i64| restarted.is_some_and(|r| (r - BUCKET_S..=r + BUCKET_S).contains(&t));
    let doubled: Vec<_> = pts
        .iter()
        .filter(|p| {
            let t = p["t_s"].as_i64().unwrap_or(0);
            let bound = MAX_SAMPLES + i64::from(near_restart(t));
            p["samples"].as_i64().unwrap_or(0) > bound
        })
        .collect();
    assert!(doubled.is_empty(), "buckets counted twice: {doubled:?}");
}

#[test]
fn an_outage_leaves_no_gap_and_a_resumed_replay_counts_nothing_twice() {
    let mut env = DockerEnv::start("buffer", &[("health_interval_s", "2")]).unwrap();
    let rx = Receiver::start();
    env.hub
        .cli_json(&["alert", "channel", "add", "ops", "--webhook", &rx.url()])
        .unwrap();
    let glob = format!("{}*", env.names.prefix);
    env.hub
        .cli_json(&[
            "alert",
            "rule",
            "add",
            "died",
            "--on",
            "container-died",
            "--container",
            &glob,
            "--channel",
            "ops",
        ])
        .unwrap();

    // The agent behind the proxy.
    let proxy = Proxy::start(&env.hub.ssh_addr());
    env.agent.kill();
    let name = env.server().to_string();
    wait_offline(&env.hub, &[&name], Duration::from_secs(30)).unwrap();
    set_config_key(&env.agent.config, "hub", &format!("\"{}\"", proxy.addr())).unwrap();
    // Only this test's containers: other tests' events must not push ours
    // out of the hub's ring of recent events.
    let scope = format!("\"{TEST_LABEL}={}\"", env.names.prefix);
    set_config_key(&env.agent.config, "scope_label", &scope).unwrap();
    env.agent.start().unwrap();
    wait_online(&env.hub, &[&name], Duration::from_secs(30)).unwrap();
    let info = env.agent_json("info", &[]).unwrap();
    assert_eq!(info["buffer"]["max_bytes"], 16 * 1024 * 1024, "{info}");

    let burner = env.run("burner", &[], &["burn"]).unwrap();
    let dier = env.run("dier", &[], &["exit", "3", "15"]).unwrap();
    wait_until_ok(
        "a history point of the burner before the outage",
        Duration::from_secs(30),
        Duration::from_millis(500),
        || Ok(!points(&env, &burner.name).is_empty()),
    )
    .unwrap();

    // Outage 1: the die and the burn happen while the link is down.
    let cut_at = now_s();
    let cut = Instant::now();
    proxy.cut();
    wait_exited(&dier.name);
    std::thread::sleep(OUTAGE.saturating_sub(cut.elapsed()));
    let back_at = now_s();
    proxy.restore();
    wait_online(&env.hub, &[&name], BACK_ONLINE).unwrap_or_else(|e| {
        panic!("{e:#}\n{}", env.logs());
    });

    // The history has the burner's points inside the gap, busy.
    let inside = |p: &Value| {
        let t = p["t_s"].as_i64().unwrap_or(0);
        t > cut_at + 5 && t < back_at - 5
    };
    let mut gap = Vec::new();
    wait_until_ok(
        "history points inside the outage",
        Duration::from_secs(30),
        Duration::from_millis(500),
        || {
            gap = points(&env, &burner.name)
                .into_iter()
                .filter(inside)
                .collect();
            Ok(gap.len() >= 8)
        },
    )
    .unwrap_or_else(|e| panic!("{e:#}: {gap:?}\n{}", env.logs()));
    assert!(
        gap.iter()
            .any(|p| p["cpu_avg"].as_f64().unwrap_or(0.0) > 50.0),
        "the burner burned: {gap:?}"
    );

    // The die: in the feed once, late, with its time inside the outage.
    let d = dies(&env, &dier.name);
    assert_eq!(d.len(), 1, "{d:?}\n{}", env.logs());
    assert_eq!(d[0]["late"], true, "{}", d[0]);
    let t = d[0]["time_ms"].as_i64().unwrap() / 1000;
    assert!(
        t >= cut_at && t <= back_at,
        "{t} not in {cut_at}..{back_at}"
    );
    // Its alert: once, late.
    let fired = rx.wait_for("the died alert", 1, |v| {
        v["status"] == "firing" && v["container"] == dier.name.as_str()
    });
    assert_eq!(fired[0]["value"]["late"], true, "{}", fired[0]);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(firing_for(&rx, &dier.name).len(), 1);
    assert_nothing_doubled(&env, &burner.name, None);

    // Outage 2: a second container dies; the agent is killed and started
    // again while the link is down (the buffer outlives it); the replay is
    // cut right after it reconnects, then resumed.
    let dier2 = env.run("dier2", &[], &["exit", "3", "3"]).unwrap();
    proxy.cut();
    wait_exited(&dier2.name);
    std::thread::sleep(Duration::from_secs(5));
    env.agent.kill();
    let restarted = now_s();
    env.agent.start().unwrap();
    std::thread::sleep(Duration::from_secs(5));
    proxy.restore();
    wait_online(&env.hub, &[&name], BACK_ONLINE).unwrap();
    proxy.cut();
    std::thread::sleep(Duration::from_secs(5));
    proxy.restore();
    wait_online(&env.hub, &[&name], BACK_ONLINE).unwrap();
    rx.wait_for("the second died alert", 1, |v| {
        v["status"] == "firing" && v["container"] == dier2.name.as_str()
    });
    std::thread::sleep(Duration::from_secs(3));
    let d2 = dies(&env, &dier2.name);
    assert_eq!(d2.len(), 1, "{d2:?}\n{}", env.logs());
    assert_eq!(d2[0]["late"], true);
    assert_eq!(firing_for(&rx, &dier2.name).len(), 1);
    assert_eq!(firing_for(&rx, &dier.name).len(), 1);
    assert_eq!(dies(&env, &dier.name).len(), 1);
    assert_nothing_doubled(&env, &burner.name, Some(restarted));
    let info = env.agent_json("info", &[]).unwrap();
    assert_eq!(info["buffer"]["dropped_snapshots"], 0, "{info}");
    assert_eq!(info["buffer"]["dropped_events"], 0, "{info}");
}
