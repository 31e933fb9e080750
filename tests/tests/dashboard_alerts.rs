#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The alerts page in a real browser: Debian's Chromium driven by
//! `web/e2e/alerts.mjs` (playwright-core) against a hub with an agent, a
//! webhook channel pointed at a receiver on loopback and a `container-died`
//! rule. A fixture container exits 3; as an admin the page shows the
//! firing alert (rule, severity, summary, a link to the container, its
//! notification delivered), the same alert in the 24-hour history, adds a
//! silence from the form and ends it (the hub's audit log has both), the
//! rule and the channel, and a channel test from the page reaches the
//! receiver. A viewer sees the alert and the silences but no silence form,
//! rules or channels. Any console
//! error fails it. Screenshots go to `target/dashboard-screenshots/`.

use std::time::Duration;

use nextdeploy_tests::docker::*;
use nextdeploy_tests::receiver::Receiver;
use nextdeploy_tests::*;

/// The browser session: a dozen waits, each bounded at 20 s in the script.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(180);

#[test]
fn the_alerts_page_shows_a_firing_alert_and_tests_a_channel() {
    let env = DockerEnv::start("dash-alerts", &[]).unwrap();
    let rx = Receiver::start();
    let hub = &env.hub;
    hub.cli_json(&["alert", "channel", "add", "ops", "--webhook", &rx.url()])
        .unwrap();
    let sel = format!("test={}", env.server().trim_start_matches("dk-"));
    hub.cli_json(&[
        "alert",
        "rule",
        "add",
        "died",
        "--on",
        "container-died",
        "--selector",
        &sel,
        "--severity",
        "critical",
        "--channel",
        "ops",
    ])
    .unwrap();
    // Exits 3 after 2 s (the evaluator takes new rules at its next tick);
    // no network, so no veth appears while the browser runs
    // (ERR_NETWORK_CHANGED, see dashboard_container.rs).
    let dead = env
        .run("dies", &["--network", "none"], &["exit", "3", "2"])
        .unwrap();
    rx.wait_for("the firing notification", 1, |v| v["status"] == "firing");
    let viewer = hub
        .cli_json(&[
            "token",
            "create",
            "--role",
            "viewer",
            "--name",
            "alerts-viewer",
        ])
        .unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let shots = browser::shots_dir();
    let before = rx.delivered().len();

    let mut cmd = browser::node_script("alerts.mjs", &format!("{}/", hub.url())).unwrap();
    cmd.env("DASH_ADMIN", &hub.admin_token)
        .env("DASH_VIEWER", &viewer)
        .env("DASH_AGENT", env.server())
        .env("DASH_CONTAINER", &dead.name);
    let out = run_bounded(cmd, BROWSER_TIMEOUT).unwrap();
    assert!(
        out.success() && out.stdout.contains("alerts test passed"),
        "{}\n{}",
        out.describe(),
        env.logs()
    );
    assert!(shots.join("alerts.png").is_file(), "alerts.png");
    // The page's channel test reached the receiver: one more request.
    let tests: Vec<_> = rx.delivered().into_iter().skip(before).collect();
    assert_eq!(tests.len(), 1, "{tests:?}");
    // The silence the page added and ended, in the audit log.
    let audit = hub.cli_json(&["audit", "--limit", "50"]).unwrap();
    for action in ["alert_silence_add", "alert_silence_remove"] {
        assert!(
            audit
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["action"] == action),
            "no {action} in {audit}"
        );
    }
}
