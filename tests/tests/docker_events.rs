#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `agent events` through hub and agent: create/start/die (exit code 3),
//! health_status (unhealthy), kill (signal), agent offline/online, and the
//! `--container` filter.

use std::time::Duration;

use nextdeploy_tests::docker::*;
use nextdeploy_tests::wait_online;
use serde_json::Value;

const EVENT_WAIT: Duration = Duration::from_secs(15);

/// Once the subscription is live: create and remove probe containers named
/// `probe` until the stream shows one's `create` (the hub has no
/// "subscribed" reply, so this is the barrier).
fn wait_subscribed(env: &DockerEnv, events: &mut Streamer, probe: &str, opts: &[&str]) {
    let mut tries = 0;
    loop {
        tries += 1;
        let p = env.create(probe, opts, &["idle"]).unwrap();
        let id = p.id.clone();
        drop(p);
        let seen = events.wait_json("the probe's create", Duration::from_secs(1), |v| {
            v["action"] == "create" && v["container_id"] == id.as_str()
        });
        if seen.is_ok() {
            return;
        }
        assert!(
            tries < 15,
            "the events stream never showed a probe's create\n{}\n{}",
            events.describe(),
            env.logs()
        );
    }
}

fn of(events: &[Value], id: &str) -> Vec<String> {
    events
        .iter()
        .filter(|v| v["container_id"] == id)
        .map(|v| v["action"].as_str().unwrap_or("?").to_string())
        .collect()
}

#[test]
fn exit_code_3_and_lifecycle_events() {
    let env = DockerEnv::start("events", &[]).unwrap();
    let mut ev = env.agent_stream("events", &["--output", "json"]).unwrap();
    wait_subscribed(&env, &mut ev, "probe", &[]);

    let c = env.run("exit3", &[], &["exit", "3", "1"]).unwrap();
    let die = ev
        .wait_json("die of the exit-3 container", EVENT_WAIT, |v| {
            v["action"] == "die" && v["container_id"] == c.id.as_str()
        })
        .unwrap();
    assert_eq!(die["kind"], "container", "{die}");
    assert_eq!(die["exit_code"], 3, "{die}");
    assert_eq!(die["container"], c.name.as_str(), "{die}");
    assert_eq!(die["server"], env.server(), "{die}");
    assert!(
        die["image"]
            .as_str()
            .is_some_and(|i| i.starts_with("nextdeploy-fixture")),
        "{die}"
    );
    assert!(
        die["time_ms"].as_i64().unwrap() > 1_600_000_000_000,
        "{die}"
    );
    let seq = of(&ev.json_lines(), &c.id);
    let pos = |a: &str| {
        seq.iter()
            .position(|x| x == a)
            .unwrap_or_else(|| panic!("no {a} event for the exit-3 container: {seq:?}"))
    };
    assert!(
        pos("create") < pos("start") && pos("start") < pos("die"),
        "{seq:?}"
    );

    // kill (with its signal), stop, destroy.
    let k = env.run("killme", &[], &["idle"]).unwrap();
    docker(&["kill", "-s", "SIGKILL", &k.id]).unwrap();
    let kill = ev
        .wait_json("kill event", EVENT_WAIT, |v| {
            v["action"] == "kill" && v["container_id"] == k.id.as_str()
        })
        .unwrap();
    assert!(
        kill["signal"] == "9" || kill["signal"] == "SIGKILL" || kill["signal"] == "KILL",
        "{kill}"
    );
    let die = ev
        .wait_json("die after kill", EVENT_WAIT, |v| {
            v["action"] == "die" && v["container_id"] == k.id.as_str()
        })
        .unwrap();
    assert_eq!(die["exit_code"], 137, "{die}");
    let kid = k.id.clone();
    drop(k);
    ev.wait_json("destroy", EVENT_WAIT, |v| {
        v["action"] == "destroy" && v["container_id"] == kid.as_str()
    })
    .unwrap();

    // restart through the agent: restart event.
    let r = env.run("restartme", &[], &["idle"]).unwrap();
    env.agent_json("restart", &["--container", &r.name, "--timeout", "5"])
        .unwrap();
    ev.wait_json("restart event", EVENT_WAIT, |v| {
        v["action"] == "restart" && v["container_id"] == r.id.as_str()
    })
    .unwrap();
}

#[test]
fn a_failing_healthcheck_shows_health_status_unhealthy() {
    let env = DockerEnv::start("events-health", &[]).unwrap();
    let mut ev = env.agent_stream("events", &["--output", "json"]).unwrap();
    wait_subscribed(&env, &mut ev, "probe", &[]);
    let c = env
        .run(
            "hc",
            &[
                "--health-cmd",
                "test ! -e /unhealthy",
                "--health-interval",
                "1s",
                "--health-timeout",
                "1s",
                "--health-retries",
                "1",
            ],
            &["idle"],
        )
        .unwrap();
    let h = ev
        .wait_json("health_status healthy", EVENT_WAIT, |v| {
            v["action"] == "health_status" && v["container_id"] == c.id.as_str()
        })
        .unwrap();
    assert_eq!(h["health"], "healthy", "{h}");
    docker(&["exec", &c.id, "touch", "/unhealthy"]).unwrap();
    let h = ev
        .wait_json("health_status unhealthy", EVENT_WAIT, |v| {
            v["action"] == "health_status"
                && v["container_id"] == c.id.as_str()
                && v["health"] == "unhealthy"
        })
        .unwrap();
    assert_eq!(h["container"], c.name.as_str(), "{h}");
    assert_eq!(h["kind"], "container", "{h}");
}

#[test]
fn agent_offline_and_online_events() {
    let mut env = DockerEnv::start("events-agent", &[]).unwrap();
    // By selector (the agent's labels) and by server.
    let mut by_sel = env
        .hub
        .cli_command(&env.hub.admin_token)
        .map(|mut c| {
            c.args([
                "agent",
                "events",
                "--selector",
                "test=events-agent",
                "--output",
                "json",
            ]);
            c
        })
        .and_then(Streamer::spawn)
        .unwrap();
    let mut by_server = env.agent_stream("events", &["--output", "json"]).unwrap();
    wait_subscribed(&env, &mut by_sel, "probe", &[]);
    wait_subscribed(&env, &mut by_server, "probe", &[]);

    env.agent.kill();
    for ev in [&mut by_sel, &mut by_server] {
        let off = ev
            .wait_json("agent offline", EVENT_WAIT, |v| {
                v["kind"] == "agent" && v["action"] == "offline"
            })
            .unwrap();
        assert_eq!(off["server"], env.server(), "{off}");
        assert!(
            off["time_ms"].as_i64().unwrap() > 1_600_000_000_000,
            "{off}"
        );
    }
    env.agent.start().unwrap();
    wait_online(&env.hub, &[env.server()], Duration::from_secs(20)).unwrap();
    for ev in [&mut by_sel, &mut by_server] {
        let on = ev
            .wait_json("agent online", EVENT_WAIT, |v| {
                v["kind"] == "agent" && v["action"] == "online"
            })
            .unwrap();
        assert_eq!(on["server"], env.server(), "{on}");
    }
    // The subscription carries on: container events after the reconnection.
    let c = env.run("after", &[], &["exit", "3", "0"]).unwrap();
    by_server
        .wait_json("die after the reconnection", EVENT_WAIT, |v| {
            v["action"] == "die" && v["container_id"] == c.id.as_str()
        })
        .unwrap();

    // A selector matching another agent sees none of this.
    let mut other = env
        .hub
        .cli_command(&env.hub.admin_token)
        .map(|mut c| {
            c.args([
                "agent",
                "events",
                "--selector",
                "test=nobody",
                "--output",
                "json",
            ]);
            c
        })
        .and_then(Streamer::spawn)
        .unwrap();
    let d = env.run("unseen", &[], &["exit", "3", "0"]).unwrap();
    by_server
        .wait_json("die of the unseen one", EVENT_WAIT, |v| {
            v["action"] == "die" && v["container_id"] == d.id.as_str()
        })
        .unwrap();
    let lines = other.collect_for(Duration::from_millis(500)).to_vec();
    assert!(
        lines.is_empty(),
        "a selector matching no agent got events: {:?}",
        lines.iter().map(Line::text).collect::<Vec<_>>()
    );
}

#[test]
fn the_container_filter_keeps_one_container() {
    let env = DockerEnv::start("events-filter", &[]).unwrap();
    let wanted = env.names.name("wanted");
    let mut all = env.agent_stream("events", &["--output", "json"]).unwrap();
    let mut one = env
        .agent_stream("events", &["--container", &wanted, "--output", "json"])
        .unwrap();
    // The filtered stream's barrier: probes carrying the wanted name.
    wait_subscribed(&env, &mut one, "wanted", &[]);
    wait_subscribed(&env, &mut all, "probe", &[]);
    let n_one = one.lines().len();

    let w = env.run("wanted", &[], &["exit", "3", "0"]).unwrap();
    let o = env.run("other", &[], &["exit", "3", "0"]).unwrap();
    for id in [&w.id, &o.id] {
        all.wait_json("die on the unfiltered stream", EVENT_WAIT, |v| {
            v["action"] == "die" && v["container_id"] == id.as_str()
        })
        .unwrap();
    }
    one.wait_json("die of the wanted one", EVENT_WAIT, |v| {
        v["action"] == "die" && v["container_id"] == w.id.as_str()
    })
    .unwrap();
    // Give the filtered stream the time the unfiltered one needed, then check.
    one.collect_for(Duration::from_millis(500));
    let got: Vec<Value> = one.json_lines()[n_one..].to_vec();
    for v in &got {
        assert_eq!(
            v["container"],
            wanted.as_str(),
            "--container {wanted} let through {v}"
        );
    }
    let seq = of(&got, &w.id);
    for a in ["create", "start", "die"] {
        assert!(seq.iter().any(|x| x == a), "no {a} in {seq:?}");
    }
    // By id prefix too.
    let mut by_id = env
        .agent_stream("events", &["--container", &w.id[..12], "--output", "json"])
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let mut tries = 0;
    loop {
        docker(&["start", &w.id]).unwrap();
        if by_id
            .wait_json("start by id prefix", Duration::from_secs(2), |v| {
                v["action"] == "start" && v["container_id"] == w.id.as_str()
            })
            .is_ok()
        {
            break;
        }
        tries += 1;
        assert!(
            tries < 5,
            "--container <id prefix> saw nothing\n{}",
            by_id.describe()
        );
    }
    docker(&["start", &o.id]).unwrap();
    all.wait_json("start of the other", EVENT_WAIT, |v| {
        v["action"] == "start" && v["container_id"] == o.id.as_str()
    })
    .unwrap();
    by_id.collect_for(Duration::from_millis(300));
    for v in by_id.json_lines() {
        assert_eq!(v["container_id"], w.id.as_str(), "{v}");
    }
}
