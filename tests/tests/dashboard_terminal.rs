#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The container page's terminal and the exec sessions player in a real
//! browser: Debian's Chromium driven by `web/e2e/terminal.mjs`
//! (playwright-core) against a hub with an agent and a fixture container.
//! As an admin it connects `sh` in the container, types
//! `echo hello-$((6*7))` key by key and sees `hello-42`; shrinks the window
//! and sees `stty size` follow the rows drawn (exec_resize); `exit 3` shows
//! exit code 3 and the session; a second shell is disconnected. On the exec
//! sessions page it finds that session (exit 3) and plays its recording:
//! `hello-42` is drawn, Restart clears it, Show all draws it at once. A
//! viewer has no Terminal tab and no sessions link. Any console error, a
//! CSP violation by xterm.js's styles included, fails it. Screenshots go to
//! `target/dashboard-screenshots/`.

use std::time::Duration;

use nextdeploy_tests::docker::*;
use nextdeploy_tests::*;

/// The browser session: a dozen waits, each bounded at 20 s in the script.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(180);

#[test]
fn the_terminal_runs_a_shell_and_the_player_replays_it() {
    let env = DockerEnv::start("dash-terminal", &[]).unwrap();
    // No network: a veth appearing makes Chromium abort its requests with
    // ERR_NETWORK_CHANGED (see dashboard_container.rs).
    let shell = env.run("shell", &["--network", "none"], &["idle"]).unwrap();
    let viewer = env
        .hub
        .cli_json(&[
            "token",
            "create",
            "--role",
            "viewer",
            "--name",
            "term-viewer",
        ])
        .unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let shots = browser::shots_dir();

    let mut cmd = browser::node_script("terminal.mjs", &format!("{}/", env.hub.url())).unwrap();
    cmd.env("DASH_ADMIN", &env.hub.admin_token)
        .env("DASH_VIEWER", &viewer)
        .env("DASH_AGENT", env.server())
        .env("DASH_CONTAINER", &shell.name);
    let out = run_bounded(cmd, BROWSER_TIMEOUT).unwrap();
    assert!(
        out.success() && out.stdout.contains("terminal test passed"),
        "{}\n{}",
        out.describe(),
        env.logs()
    );
    for shot in ["container-terminal", "exec-sessions"] {
        assert!(shots.join(format!("{shot}.png")).is_file(), "{shot}.png");
    }
    // The hub kept what the page did: two sessions of `sh` in the container,
    // the first ended with 3 and recorded, the second cancelled.
    let list = env
        .ws("exec_sessions_list", json!({"server": env.server()}))
        .unwrap();
    let sessions = list["data"].as_array().expect("a list of sessions");
    let mine: Vec<_> = sessions
        .iter()
        .filter(|s| s["container"] == shell.name.as_str())
        .collect();
    assert_eq!(mine.len(), 2, "{list}");
    let first = mine[1];
    assert_eq!(first["exit_code"], 3, "{first}");
    assert_eq!(first["command"], "sh", "{first}");
    assert_eq!(first["tty"], true, "{first}");
    assert!(first["recording_bytes"].as_u64().unwrap() > 0, "{first}");
    assert!(mine[0]["exit_code"].is_null(), "{}", mine[0]);
}
