#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The container page and the agent page's actions in a real browser:
//! Debian's Chromium driven by `web/e2e/container.mjs` (playwright-core),
//! against a hub with an agent and two containers. As an operator it sees
//! the host's facts and stops and starts two containers at once from the
//! agent page; on the container page it sees a new log line arrive, search
//! mark it, pause and resume lose no line, restart (confirmed) change the
//! start time and stop/start the state, Inspect show an environment value
//! and Stats draw three charts. As a viewer: no action buttons, Inspect
//! redacted, and a restart forged over the page's cookie WebSocket refused
//! with `forbidden`; ANSI colours, JSON, filter, timestamps and bytes that
//! are not UTF-8 drawn. Also (issue 19): the container's Events tab shows
//! the restart made from the page; the agent page draws a sparkline in each
//! container's row and lists a restart made with the CLI before the browser
//! started (replayed by `events` with `since`); the container page's Deploy
//! tab deploys a new tag of the test image and shows the outcome; a viewer
//! has no Deploy tab. Screenshots go to `target/dashboard-screenshots/`.

use std::time::Duration;

use nextdeploy_tests::docker::*;
use nextdeploy_tests::*;

/// The whole browser session: each wait in the script is bounded at 20 s,
/// three stops of a shell that ignores SIGTERM take 10 s each, the
/// sparklines may wait for the page's next minute and the deploy for 60 s.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(400);
/// How long the CLI restart may take to reach the hub's kept events.
const EVENT_WAIT: Duration = Duration::from_secs(15);
/// The environment value only operators may read.
const SECRET: &str = "s3cret-value-only-operators-see";

/// What the `colors` container writes: "red alert" in ANSI red and a JSON
/// object, then sleeps.
const COLORS_SCRIPT: &str = r#"printf '\033[31mred alert\033[0m\n{"level":"info","msg":"json line"}\n'; exec sleep 1000000"#;

fn token(env: &DockerEnv, role: &str, name: &str) -> String {
    env.hub
        .cli_json(&["token", "create", "--role", role, "--name", name])
        .unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn the_container_page_acts_for_operators_and_stays_read_only_for_viewers() {
    let env = DockerEnv::start("dash-container", &[("health_interval_s", "1")]).unwrap();
    let secret_env = format!("DASH_SECRET={SECRET}");
    // No network: starting a container on a bridge adds a veth, which
    // Chromium sees as a network change and aborts its requests with
    // ERR_NETWORK_CHANGED (measured: a failed fetch during the agent page's
    // stop and start).
    let isolated = ["--network", "none"];
    let tick_opts = [&isolated[..], &["-e", &secret_env]].concat();
    let tick = env.run("tick", &tick_opts, &["tick"]).unwrap();
    let idle = env.run("idle", &isolated, &["idle"]).unwrap();
    // A red ANSI line and a JSON line, then idle.
    let shell = [&isolated[..], &["--entrypoint", "/bin/sh"]].concat();
    let colors = env.run("colors", &shell, &["-c", COLORS_SCRIPT]).unwrap();
    // Lines on both streams, two of them not UTF-8 (the local log driver
    // keeps such bytes; json-file stores U+FFFD instead).
    let local = [&isolated[..], &["--log-driver", "local"]].concat();
    let lines = env.run("lines", &local, &["logs"]).unwrap();
    lines
        .wait_log("stderr last", Duration::from_secs(20))
        .unwrap();
    colors
        .wait_log("json line", Duration::from_secs(20))
        .unwrap();
    tick.wait_log("tick 2", Duration::from_secs(20)).unwrap();
    // A restart before the browser opens anything: the agent page must show
    // it from the hub's kept events. Seen by `events --since` first, so the
    // hub has it before the script starts.
    env.agent_json("restart", &["--container", &idle.name, "--timeout", "1"])
        .unwrap();
    let mut kept = env
        .agent_stream(
            "events",
            &[
                "--output",
                "json",
                "--container",
                &idle.name,
                "--since",
                "10m",
            ],
        )
        .unwrap();
    kept.wait_json("the CLI restart, kept by the hub", EVENT_WAIT, |v| {
        v["action"] == "restart" && v["container_id"] == idle.id.as_str()
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", env.logs()));
    drop(kept);
    // A new tag of the test image, built here (from the fixture, no network).
    let new_image = build_image(
        &format!("{}-dash-v2", env.image),
        &[(
            "Dockerfile",
            &format!("FROM {}\nLABEL nextdeploy.dash=v2\n", env.image),
        )],
    )
    .unwrap();
    let operator = token(&env, "operator", "browser-operator");
    let viewer = token(&env, "viewer", "browser-viewer");
    let shots = browser::shots_dir();

    let mut cmd = browser::node_script("container.mjs", &format!("{}/", env.hub.url())).unwrap();
    cmd.env("DASH_OPERATOR", &operator)
        .env("DASH_VIEWER", &viewer)
        .env("DASH_AGENT", env.server())
        .env("DASH_TICK", &tick.name)
        .env("DASH_IDLE", &idle.name)
        .env("DASH_RESTARTED", &idle.name)
        .env("DASH_NEW_IMAGE", &new_image)
        .env("DASH_COLORS", &colors.name)
        .env("DASH_LINES", &lines.name)
        .env("DASH_SECRET", SECRET);
    let out = run_bounded(cmd, BROWSER_TIMEOUT).unwrap();
    // The deploy replaced idle by a container with another id, which the
    // `Container` guard (by id) would not remove.
    let _ = docker(&["rm", "-f", &idle.name]);
    assert!(
        out.success() && out.stdout.contains("container test passed"),
        "{}\n{}",
        out.describe(),
        env.hub.log_tail()
    );
    for shot in [
        "container-logs",
        "container-inspect",
        "container-stats",
        "agent-actions",
        "agent-page",
        "container-events",
        "container-deploy",
    ] {
        assert!(shots.join(format!("{shot}.png")).is_file(), "{shot}.png");
    }
    // The restart went through the page and the hub: the container runs again.
    assert_eq!(tick.state().unwrap(), "running");
    assert!(
        out.stdout.contains(&format!("deployed to {new_image}")),
        "{}",
        out.describe()
    );
}
