#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The dashboard's events, deploys and admin pages in a real browser
//! (Debian's Chromium, driven by `web/e2e/admin.mjs`) against a hub with
//! one agent scoped to this test's containers. Signed in as admin, the
//! browser creates a viewer token on the Admin page (shown once) and a join
//! token (its enrol command), finds the token's creation in the audit log,
//! sees on the Events page a restart the test makes through the CLI, deploys
//! an image whose health check fails from the New deploy form and sees the
//! rollback with its failed step (to one server, then by label selector with
//! the counts updated / failed / untouched), rotates the agent's key and
//! deletes the join token, and revokes the viewer token while a
//! second browser is signed in with it: that page is back at the sign-in
//! within seconds. The test then reads the same facts through the CLI
//! (`nextdeploy audit`, `deploys list`). Screenshots go to
//! `target/dashboard-screenshots/`.

use std::process::Command;
use std::time::{Duration, Instant};

use nextdeploy_tests::deploy::{DeployEnv, Fixture};
use nextdeploy_tests::process::Streamer;
use nextdeploy_tests::*;
use serde_json::Value;

/// The whole browser session: sign-in, four pages, a deploy whose health
/// check fails (health timeout 30 s, failing in a few) and the rollback.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(240);
/// How long the script may take to reach the Events page.
const EVENTS_OPEN_WITHIN: Duration = Duration::from_secs(90);
/// How long after a restart its event must be on the page.
const EVENT_SHOWN_WITHIN: Duration = Duration::from_secs(10);
/// Restarts tried: the page subscribes to `events` as it says "open", so a
/// first restart may just precede the subscription.
const RESTART_TRIES: usize = 3;
/// How often a wait for the script's output checks whether it exited.
const POLL: Duration = Duration::from_millis(500);

fn script(env: &DeployEnv, web: &str, bad: &str) -> Command {
    let mut cmd = browser::node_script("admin.mjs", &format!("{}/", env.hub.url())).unwrap();
    cmd.env("DASH_TOKEN", &env.hub.admin_token)
        .env("DASH_AGENT", env.server())
        .env("DASH_WEB", web)
        .env("DASH_BAD_IMAGE", bad);
    cmd
}

/// Whether the script prints `needle` within `within`; false at once when
/// it exits without.
fn has_line(s: &mut Streamer, needle: &str, within: Duration) -> bool {
    let end = Instant::now() + within;
    while Instant::now() < end {
        if s.wait_line(needle, POLL, |l| l.text().contains(needle))
            .is_ok()
        {
            return true;
        }
        if s.exit_status().is_some() {
            return s.lines().iter().any(|l| l.text().contains(needle));
        }
    }
    false
}

#[test]
fn admin_pages_events_and_a_rolled_back_deploy_in_a_browser() {
    let env = DeployEnv::start("dash-admin").unwrap();
    let (web, _) = env.run("web", &Fixture::V1.image().unwrap(), &[]).unwrap();
    let bad = Fixture::Unhealthy.image().unwrap();
    let shots = browser::shots_dir();

    let mut node = Streamer::spawn(script(&env, &web, &bad)).unwrap();
    let fail = |node: &Streamer, what: &str| -> ! {
        panic!("{what}\n{}\n{}", node.describe(), env.hub.log_tail())
    };
    if !has_line(&mut node, "events: open", EVENTS_OPEN_WITHIN) {
        fail(&node, "the script never opened the Events page");
    }
    let mut shown = false;
    for _ in 0..RESTART_TRIES {
        let args = [
            "agent",
            "restart",
            "--server",
            env.server(),
            "--container",
            &web,
        ];
        env.hub
            .cli(&[&args[..], &["--timeout", "1"]].concat())
            .unwrap()
            .ok()
            .unwrap();
        if has_line(
            &mut node,
            "events: the container's restart shown",
            EVENT_SHOWN_WITHIN,
        ) {
            shown = true;
            break;
        }
    }
    if !shown {
        fail(&node, "the restart never showed on the Events page");
    }
    if !has_line(&mut node, "admin test passed", BROWSER_TIMEOUT) {
        fail(&node, "the browser test did not pass");
    }
    for shot in [
        "admin",
        "events",
        "deploy-new",
        "deploy",
        "deploys",
        "deploy-fleet",
        "revoked",
    ] {
        assert!(shots.join(format!("{shot}.png")).is_file(), "no {shot}.png");
    }

    // The same facts through the API: the audit log names the admin's token
    // for the viewer token's creation and revocation.
    let me = env.hub.cli_json(&["whoami"]).unwrap();
    let audit = env.hub.cli_json(&["audit", "--limit", "50"]).unwrap();
    let rows = audit.as_array().unwrap();
    let find = |action: &str| -> &Value {
        rows.iter()
            .find(|r| r["action"] == action)
            .unwrap_or_else(|| panic!("no {action} in {audit:#}"))
    };
    let created = find("create_token");
    assert_eq!(created["detail"], "dash-viewer (viewer)", "{created}");
    assert_eq!(created["actor_token"], me["id"], "{created}");
    let revoked = find("revoke_token");
    assert_eq!(revoked["target"], created["target"], "{revoked}");
    for action in ["create_join_token", "delete_join_token", "rotate_key"] {
        assert!(rows.iter().any(|r| r["action"] == action), "no {action}");
    }
    // Newest first, ids decreasing; `before` pages on.
    let ids: Vec<i64> = rows.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "{ids:?}");
    let last = ids[ids.len() - 1].to_string();
    let older = env.hub.cli_json(&["audit", "--before", &last]).unwrap();
    assert!(older
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["id"].as_i64().unwrap() < ids[ids.len() - 1]));
    let deploys = env.hub.cli_json(&["deploys", "list"]).unwrap();
    // The one-server deploy and the selector's, both rolled back.
    for d in &deploys.as_array().unwrap()[..2] {
        assert_eq!(d["outcome"]["outcome"], "rolled_back", "{deploys:#}");
    }

    // The audit log is for admins only.
    let viewer = env
        .hub
        .cli_json(&["token", "create", "--role", "viewer", "--name", "peek"])
        .unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let zero = env
        .hub
        .cli(&["audit", "--limit", "0", "--output", "json"])
        .unwrap();
    assert!(
        !zero.success() && zero.stderr.contains(r#""code":"bad_request""#),
        "{}",
        zero.describe()
    );
    let refused = env
        .hub
        .cli_as(&viewer, &["audit", "--output", "json"])
        .unwrap();
    assert!(
        !refused.success() && refused.stderr.contains(r#""code":"forbidden""#),
        "{}",
        refused.describe()
    );
}
