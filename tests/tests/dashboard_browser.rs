#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The dashboard in a real browser: Debian's Chromium, driven by
//! `web/e2e/browser.mjs` (playwright-core, installed by `npm ci` in web/ from
//! scripts/test.sh), against a hub with an agent and two containers. It signs
//! in with an API token, sees the agent's link, opens a container, sees a log
//! line written after the view opened arrive, and sees stderr told apart
//! from stdout. Screenshots go to `target/dashboard-screenshots/`.

use std::time::Duration;

use nextdeploy_tests::docker::*;
use nextdeploy_tests::*;

/// The whole browser session: start, sign-in, three pages, each wait in
/// the script bounded at 20 s.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(120);

#[test]
fn a_browser_signs_in_finds_the_agent_and_follows_a_containers_logs() {
    let env = DockerEnv::start("dash-browser", &[("health_interval_s", "1")]).unwrap();
    let tick = env.run("tick", &[], &["tick"]).unwrap();
    let lines = env.run("lines", &[], &["logs"]).unwrap();
    lines
        .wait_log("stderr last", Duration::from_secs(20))
        .unwrap();
    let viewer = env
        .hub
        .cli_json(&["token", "create", "--role", "viewer", "--name", "browser"])
        .unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let shots = browser::shots_dir();

    let mut cmd = browser::node_script("browser.mjs", &format!("{}/", env.hub.url())).unwrap();
    cmd.env("DASH_TOKEN", &viewer)
        .env("DASH_AGENT", env.server())
        .env("DASH_TICK", &tick.name)
        .env("DASH_STDERR", &lines.name);
    let out = run_bounded(cmd, BROWSER_TIMEOUT).unwrap();
    assert!(
        out.success() && out.stdout.contains("browser test passed"),
        "{}\n{}",
        out.describe(),
        env.hub.log_tail()
    );
    assert!(shots.join("logs.png").is_file());
}
