#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Alert rules end to end, on one hub and one agent (scoped to this test's
//! containers) with real Docker and a webhook receiver on loopback
//! (tests/src/receiver.rs):
//!
//! - `alert apply -f` sets up a channel (its secret from `secret_file`)
//!   and the rules; applying the same file again changes nothing and says
//!   so; at the end `--prune` (after a `--dry-run`) removes the rules a
//!   shorter file no longer names;
//! - a container burning a core fires `cpu` once and resolves once after it
//!   is stopped;
//! - a container that exits at once under `--restart always` fires
//!   `restart_loop` once;
//! - a silence holds `container_died` notifications: removed while one alert
//!   still fires, that alert is announced once; one that fired and resolved
//!   inside the silence is never sent; viewers list silences, not add them;
//! - a deploy of an image that exits at once (rolled back) fires
//!   `deploy_failed` once, with its deploy id.

use std::time::Duration;

use nextdeploy_tests::deploy::{DeployEnv, Fixture};
use nextdeploy_tests::docker::*;
use nextdeploy_tests::paths::TempDir;
use nextdeploy_tests::receiver::{python_hmac, Receiver};
use nextdeploy_tests::wait_until;
use serde_json::Value;

const SECRET: &str = "file-secret-for-tests";

/// Delivered notifications of `rule` with `status`.
fn notes(rx: &Receiver, rule: &str, status: &str) -> Vec<Value> {
    rx.delivered()
        .iter()
        .map(|r| r.json())
        .filter(|v| v["rule"] == rule && v["status"] == status)
        .collect()
}

fn alerts_file(env: &DeployEnv, rx: &Receiver) -> String {
    let p = &env.names.prefix;
    format!(
        r#"
[[channel]]
name = "ops"
kind = "webhook"
url = "{url}"
secret_file = "ops.secret"

[[rule]]
name = "hot"
on = "cpu"
above = 50
for = "10s"
container = "{p}-burn*"
channel = "ops"

[[rule]]
name = "loop"
on = "restart-loop"
count = 3
within = "10m"
container = "{p}-loop*"
channel = "ops"

[[rule]]
name = "died"
on = "container-died"
container = "{p}-died*"
channel = "ops"

[[rule]]
name = "deploys"
on = "deploy-failed"
severity = "critical"
channel = "ops"
"#,
        url = rx.url()
    )
}

fn apply_twice(env: &DeployEnv, rx: &Receiver, dir: &TempDir) {
    std::fs::write(dir.path().join("ops.secret"), format!("{SECRET}\n")).unwrap();
    let file = dir.path().join("alerts.toml");
    std::fs::write(&file, alerts_file(env, rx)).unwrap();
    let f = file.to_str().unwrap();
    let first = env.hub.cli_json(&["alert", "apply", "-f", f]).unwrap();
    assert_eq!(first["added"].as_array().unwrap().len(), 5, "{first}");
    let again = env.hub.cli(&["alert", "apply", "-f", f]).unwrap();
    assert!(again.status.success(), "{}", again.stderr);
    assert!(
        again.stdout.contains("nothing to change"),
        "{}",
        again.stdout
    );
    let again = env.hub.cli_json(&["alert", "apply", "-f", f]).unwrap();
    assert_eq!(again["unchanged"].as_array().unwrap().len(), 5, "{again}");
    assert!(again["added"].as_array().unwrap().is_empty(), "{again}");
    assert!(again["updated"].as_array().unwrap().is_empty(), "{again}");
    let rules = env.hub.cli_json(&["alert", "rule", "list"]).unwrap();
    assert_eq!(rules.as_array().unwrap().len(), 4, "{rules}");
}

fn cpu_fires_once_and_resolves_once(env: &DeployEnv, rx: &Receiver, image: &str) {
    let burn = Container::run(&env.names, image, "burn", &[], &["burn"]).unwrap();
    let fired = rx.wait_for("cpu firing", 1, |v| {
        v["rule"] == "hot" && v["status"] == "firing"
    });
    let f = &fired[0];
    assert_eq!(f["condition"], "cpu", "{f}");
    assert_eq!(f["container"], burn.name.as_str(), "{f}");
    assert!(f["value"]["cpu_percent"].as_f64().unwrap() > 50.0, "{f}");
    assert!(f["value"]["for_s"].as_i64().unwrap() >= 10, "{f}");
    docker(&["stop", "-t", "1", &burn.id]).unwrap();
    rx.wait_for("cpu resolved", 1, |v| {
        v["rule"] == "hot" && v["status"] == "resolved"
    });
}

fn restart_loop_fires_once(env: &DeployEnv, rx: &Receiver, image: &str) {
    let opts = ["--restart", "always"];
    let looping = Container::run(&env.names, image, "loop", &opts, &["exit", "1", "0"]).unwrap();
    let fired = rx.wait_for("restart loop firing", 1, |v| {
        v["rule"] == "loop" && v["status"] == "firing"
    });
    let f = &fired[0];
    assert_eq!(f["condition"], "restart_loop", "{f}");
    assert_eq!(f["container"], looping.name.as_str(), "{f}");
    assert!(f["value"]["restarts"].as_u64().unwrap() >= 3, "{f}");
    // It keeps restarting (Docker's backoff): still one notification.
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(notes(rx, "loop", "firing").len(), 1);
    docker(&["rm", "-f", &looping.id]).unwrap();
}

/// The `died` notifications' state in the history, by container.
fn died_states(env: &DeployEnv, container: &str) -> Vec<String> {
    let h = env
        .hub
        .cli_json(&["alert", "history", "--since", "1h"])
        .unwrap();
    h.as_array()
        .unwrap()
        .iter()
        .filter(|a| a["rule"] == "died" && a["container"] == container)
        .flat_map(|a| a["notifications"].as_array().cloned().unwrap_or_default())
        .map(|n| n["state"].as_str().unwrap_or("").to_string())
        .collect()
}

fn silence_holds_and_releases_once(env: &DeployEnv, rx: &Receiver, image: &str) {
    let viewer = env
        .hub
        .cli_json(&["token", "create", "--name", "v", "--role", "viewer"])
        .unwrap();
    let vt = viewer["token"].as_str().unwrap();
    let refused = env
        .hub
        .cli_as(vt, &["alert", "silence", "--rule", "died", "--for", "1h"])
        .unwrap();
    assert!(!refused.status.success(), "a viewer silenced");
    let s = env
        .hub
        .cli_json(&[
            "alert",
            "silence",
            "--rule",
            "died",
            "--for",
            "1h",
            "--comment",
            "test",
        ])
        .unwrap();
    let sid = s["id"].as_str().unwrap().to_string();
    assert_eq!(s["active"], true, "{s}");
    let listed = env
        .hub
        .cli_json_as(vt, &["alert", "silence", "list"])
        .unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");

    // One fires and keeps firing; one fires and resolves (removed) inside.
    let stays = Container::run(&env.names, image, "died-stays", &[], &["exit", "3", "0"]).unwrap();
    let gone = Container::run(&env.names, image, "died-gone", &[], &["exit", "4", "0"]).unwrap();
    for c in [&stays, &gone] {
        wait_until(
            "a held notification",
            Duration::from_secs(30),
            Duration::from_millis(300),
            || {
                Ok(died_states(env, &c.name)
                    .contains(&"held".to_string())
                    .then_some(()))
            },
        )
        .unwrap();
    }
    docker(&["rm", "-f", &gone.id]).unwrap();
    wait_until(
        "the removed one resolved",
        Duration::from_secs(30),
        Duration::from_millis(300),
        || {
            let list = env.hub.cli_json(&["alert", "list"]).unwrap();
            let firing = list
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a["container"] == gone.name.as_str());
            Ok((!firing).then_some(()))
        },
    )
    .unwrap();
    assert!(
        notes(rx, "died", "firing").is_empty(),
        "sent while silenced"
    );

    let ended = env
        .hub
        .cli_json(&["alert", "silence", "remove", &sid])
        .unwrap();
    assert_eq!(ended["active"], false, "{ended}");
    let fired = rx.wait_for("the released notification", 1, |v| {
        v["rule"] == "died" && v["status"] == "firing"
    });
    assert_eq!(fired[0]["container"], stays.name.as_str(), "{}", fired[0]);
    assert_eq!(fired[0]["value"]["exit_code"], 3);
    std::thread::sleep(Duration::from_secs(4));
    let died: Vec<Value> = rx
        .delivered()
        .iter()
        .map(|r| r.json())
        .filter(|v| v["rule"] == "died")
        .collect();
    assert_eq!(died.len(), 1, "{died:?}");
    assert_eq!(
        died_states(env, &gone.name),
        ["dropped", "dropped"],
        "fired and resolved inside the silence: never sent"
    );
}

fn deploy_failed_fires_once(env: &DeployEnv, rx: &Receiver) {
    let (name, _id) = env.run("web", &Fixture::V1.image().unwrap(), &[]).unwrap();
    let bad = Fixture::Crash.image().unwrap();
    let run = env
        .deploy(&[
            "--container",
            &name,
            "--image",
            &bad,
            "--health-timeout",
            "20s",
        ])
        .unwrap();
    assert_eq!(run.doc["outcome"], "rolled_back", "{}", run.describe());
    let fired = rx.wait_for("deploy failed", 1, |v| {
        v["rule"] == "deploys" && v["status"] == "firing"
    });
    let f = &fired[0];
    assert_eq!(f["condition"], "deploy_failed", "{f}");
    assert_eq!(f["severity"], "critical", "{f}");
    assert_eq!(f["container"], name.as_str(), "{f}");
    assert_eq!(f["value"]["deploy_id"], run.doc["deploy_id"], "{f}");
    assert_eq!(f["value"]["outcome"], "rolled_back", "{f}");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(notes(rx, "deploys", "firing").len(), 1);
}

fn prune_removes_what_the_file_no_longer_names(env: &DeployEnv, rx: &Receiver, dir: &TempDir) {
    let full = alerts_file(env, rx);
    let only_hot = &full[..full.find("[[rule]]\nname = \"loop\"").unwrap()];
    let file = dir.path().join("alerts.toml");
    std::fs::write(&file, only_hot).unwrap();
    let f = file.to_str().unwrap();
    let dry = env
        .hub
        .cli_json(&["alert", "apply", "-f", f, "--prune", "--dry-run"])
        .unwrap();
    assert_eq!(dry["removed"].as_array().unwrap().len(), 3, "{dry}");
    let rules = env.hub.cli_json(&["alert", "rule", "list"]).unwrap();
    assert_eq!(
        rules.as_array().unwrap().len(),
        4,
        "a dry run changed nothing"
    );
    let pruned = env
        .hub
        .cli_json(&["alert", "apply", "-f", f, "--prune"])
        .unwrap();
    assert_eq!(pruned["removed"].as_array().unwrap().len(), 3, "{pruned}");
    let rules = env.hub.cli_json(&["alert", "rule", "list"]).unwrap();
    assert_eq!(rules[0]["name"], "hot", "{rules}");
    assert_eq!(rules.as_array().unwrap().len(), 1, "{rules}");
}

#[test]
fn rules_from_a_file_fire_once_on_cpu_restarts_deploys_and_silences_hold_them() {
    let env = DeployEnv::start("alert-rules").unwrap();
    let image = fixture_image().unwrap();
    let rx = Receiver::start();
    let dir = TempDir::new("alert-rules").unwrap();
    apply_twice(&env, &rx, &dir);

    let glob = format!("{}*", env.names.prefix);
    let p = env
        .hub
        .cli_json(&["alert", "rule", "preview", "--container", &glob])
        .unwrap();
    assert_eq!(
        (p["agents"].as_u64(), p["agents_connected"].as_u64()),
        (Some(1), Some(1)),
        "{p}"
    );

    cpu_fires_once_and_resolves_once(&env, &rx, &image);
    restart_loop_fires_once(&env, &rx, &image);
    silence_holds_and_releases_once(&env, &rx, &image);
    deploy_failed_fires_once(&env, &rx);

    assert_eq!(notes(&rx, "hot", "firing").len(), 1);
    assert_eq!(notes(&rx, "hot", "resolved").len(), 1);
    prune_removes_what_the_file_no_longer_names(&env, &rx, &dir);
    // Every body is signed with the secret read from the file.
    for r in rx.delivered() {
        let sig = r.headers.get("x-nextdeploy-signature").expect("signed");
        assert_eq!(sig, &python_hmac(SECRET, &r.body));
    }
}
