#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `events` with `since`: a restart made before the request is replayed from
//! the hub's ring (then the stream goes on live); without `since`, or with a
//! window that ends before it, it is not.

use std::time::Duration;

use nextdeploy_tests::docker::*;
use serde_json::Value;

const EVENT_WAIT: Duration = Duration::from_secs(15);
/// How long a stream is watched to show that an event does not come.
const QUIET: Duration = Duration::from_secs(3);

fn is_restart(v: &Value, id: &str) -> bool {
    v["action"] == "restart" && v["container_id"] == id
}

#[test]
fn a_restart_before_the_request_is_replayed_with_since() {
    let env = DockerEnv::start("evsince", &[]).unwrap();
    let c = env.run("web", &[], &["idle"]).unwrap();
    // A live stream as the barrier: once it shows the restart, the hub has
    // kept it (the ring is written before the bus is).
    let mut live = env
        .agent_stream("events", &["--output", "json", "--container", &c.name])
        .unwrap();
    let mut tries = 0;
    loop {
        tries += 1;
        env.agent_json("restart", &["--container", &c.name, "--timeout", "1"])
            .unwrap();
        let seen = live.wait_json("the restart, live", Duration::from_secs(5), |v| {
            is_restart(v, &c.id)
        });
        if seen.is_ok() {
            break;
        }
        // The stream may have subscribed after the first restart: again.
        assert!(
            tries < 4,
            "no live restart event\n{}\n{}",
            live.describe(),
            env.logs()
        );
    }
    drop(live);

    // With --since: replayed, oldest first, with its server, then live.
    let mut since = env
        .agent_stream(
            "events",
            &["--output", "json", "--container", &c.name, "--since", "10m"],
        )
        .unwrap();
    let replayed = since
        .wait_json("the restart, replayed", EVENT_WAIT, |v| {
            is_restart(v, &c.id)
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", env.logs()));
    assert_eq!(replayed["server"], env.server(), "{replayed}");
    assert_eq!(replayed["container"], c.name.as_str(), "{replayed}");
    let times: Vec<i64> = since
        .json_lines()
        .iter()
        .map(|v| v["time_ms"].as_i64().unwrap())
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "not oldest first: {times:?}"
    );
    assert!(
        since
            .json_lines()
            .iter()
            .all(|v| v["container"] == c.name.as_str()),
        "the container filter applies to the replay: {:?}",
        since.json_lines()
    );
    // ...and live after it: a new restart arrives on the same stream.
    let before = since.json_lines().len();
    env.agent_json("restart", &["--container", &c.name, "--timeout", "1"])
        .unwrap();
    since
        .wait_json("a new restart, live after the replay", EVENT_WAIT, |v| {
            is_restart(v, &c.id)
        })
        .unwrap();
    let after: Vec<Value> = since.json_lines()[before..].to_vec();
    assert!(after.iter().any(|v| is_restart(v, &c.id)), "{after:?}");
    drop(since);

    // Seconds over the WebSocket API, for the whole agent (no container).
    let r = env.ws("events", serde_json::json!({"since": 600})).unwrap();
    assert_eq!(r["type"], "event", "{r}");
    assert_eq!(r["server"], env.server(), "{r}");

    // Without since, or with a window after it: nothing of the past.
    std::thread::sleep(Duration::from_secs(2));
    for args in [
        vec!["--output", "json", "--container", c.name.as_str()],
        vec![
            "--output",
            "json",
            "--container",
            c.name.as_str(),
            "--since",
            "1s",
        ],
    ] {
        let mut s = env.agent_stream("events", &args).unwrap();
        let got = s.collect_for(QUIET).len();
        assert_eq!(got, 0, "{args:?} showed past events: {}", s.describe());
    }

    // A bad since is refused.
    let (code, msg) = env
        .ws_error("events", serde_json::json!({"since": "soon"}))
        .unwrap();
    assert_eq!(code, "bad_request", "{msg}");
}
