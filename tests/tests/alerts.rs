#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Alerts end to end: real hub, agent and Docker, and a webhook receiver on
//! loopback (`nextdeploy_tests::receiver`) that records what it gets and can
//! be told to answer 500 for a while. A container that exits 3 fires
//! `container_died` once (exit code 3, body signed) and resolves once after
//! `docker start`; a receiver down for a minute still gets each notification
//! once; a hub killed with SIGKILL before
//! delivery delivers once after its restart; an agent killed fires
//! `agent_offline` once and resolves once when it is back.

use std::time::Duration;

use nextdeploy_tests::docker::*;
use nextdeploy_tests::receiver::{python_hmac, Receiver};
use nextdeploy_tests::{wait_online, wait_until};

const SECRET: &str = "s3cret-for-tests";
const ALERT_WAIT: Duration = nextdeploy_tests::receiver::RECEIVE_WAIT;

fn setup(env: &DockerEnv, rx: &Receiver, on: &str, extra: &[&str]) {
    env.hub
        .cli_json(&[
            "alert",
            "channel",
            "add",
            "ops",
            "--webhook",
            &rx.url(),
            "--secret",
            SECRET,
        ])
        .unwrap();
    let sel = format!("test={}", env.server().trim_start_matches("dk-"));
    let mut args = vec!["alert", "rule", "add", "r1", "--on", on, "--selector", &sel];
    args.extend(extra);
    args.extend(["--channel", "ops"]);
    env.hub.cli_json(&args).unwrap();
}

fn count(rx: &Receiver, status: &str) -> usize {
    rx.delivered()
        .iter()
        .filter(|r| r.json()["status"] == status && r.json()["rule"] == "r1")
        .count()
}

#[test]
fn a_container_that_exits_3_fires_once_signed_survives_an_outage_and_resolves_once() {
    let env = DockerEnv::start("alerts-died", &[]).unwrap();
    let rx = Receiver::start();
    let glob = format!("{}*", env.names.prefix);
    setup(&env, &rx, "container-died", &["--container", &glob]);
    let test = env
        .hub
        .cli_json(&["alert", "channel", "test", "ops"])
        .unwrap();
    assert_eq!(test["delivered"], true, "{test}");
    let baseline = rx.delivered().len();

    // The receiver is down while the container dies.
    rx.answer(500);
    let c = env.run("exit3", &[], &["exit", "3", "1"]).unwrap();
    wait_until(
        "a refused attempt",
        ALERT_WAIT,
        Duration::from_millis(200),
        || Ok((rx.refused() > 0).then_some(())),
    )
    .unwrap();
    // Down for a minute (attempts at about 1, 3, 7, 15, 31 s refused; the
    // next, about 63 s in, delivers).
    std::thread::sleep(Duration::from_secs(60));
    rx.answer(200);
    let fired = rx.wait_for("the firing notification", 1, |v| {
        v["status"] == "firing" && v["rule"] == "r1"
    });
    let f = &fired[0];
    assert_eq!(f["condition"], "container_died", "{f}");
    assert_eq!(f["rule"], "r1", "{f}");
    assert_eq!(f["server"], env.server(), "{f}");
    assert_eq!(f["container"], c.name.as_str(), "{f}");
    assert_eq!(f["value"]["exit_code"], 3, "{f}");
    assert_eq!(f["labels"]["suite"], "docker", "{f}");
    assert!(f["resolved_at"].is_null(), "{f}");
    for k in ["id", "summary", "started_at", "severity"] {
        assert!(f[k].is_string(), "{k} in {f}");
    }
    // Signed, and the signature is HMAC-SHA256 of the exact body.
    for r in rx.delivered().iter().skip(baseline) {
        let sig = r.headers.get("x-nextdeploy-signature").expect("signed");
        assert_eq!(sig, &python_hmac(SECRET, &r.body));
    }
    let firing = env.hub.cli_json(&["alert", "list"]).unwrap();
    assert_eq!(firing.as_array().unwrap().len(), 1, "{firing}");

    docker(&["start", &c.id]).unwrap();
    let resolved = rx.wait_for("the resolved notification", 1, |v| {
        v["status"] == "resolved"
    });
    assert_eq!(
        resolved[0]["id"].as_str().unwrap(),
        format!("{}-resolved", f["alert_id"].as_str().unwrap())
    );
    assert!(resolved[0]["resolved_at"].is_string());
    // It exits 3 again a second later: inside the warning cooldown, so it
    // fires quietly. Nothing more reaches the receiver.
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(count(&rx, "firing"), 1, "{:?}", rx.delivered());
    assert_eq!(count(&rx, "resolved"), 1);
    let history = env
        .hub
        .cli_json(&["alert", "history", "--since", "1h"])
        .unwrap();
    let first = history
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == f["alert_id"])
        .cloned()
        .unwrap();
    assert_eq!(first["status"], "resolved", "{first}");
    let n = &first["notifications"][0];
    assert_eq!(n["state"], "delivered", "{first}");
    assert!(n["attempts"].as_u64().unwrap() >= 2, "{first}");
}

#[test]
fn a_hub_killed_before_delivery_delivers_once_after_its_restart() {
    let mut env = DockerEnv::start("alerts-kill9", &[]).unwrap();
    let rx = Receiver::start();
    let glob = format!("{}*", env.names.prefix);
    setup(&env, &rx, "container-died", &["--container", &glob]);
    rx.answer(500);
    let c = env.run("exit3", &[], &["exit", "3", "1"]).unwrap();
    wait_until(
        "a refused attempt",
        ALERT_WAIT,
        Duration::from_millis(200),
        || Ok((rx.refused() > 0).then_some(())),
    )
    .unwrap();
    env.hub.kill9();
    rx.answer(200);
    env.hub.restart().unwrap();
    let fired = rx.wait_for("the firing notification", 1, |v| {
        v["status"] == "firing" && v["rule"] == "r1"
    });
    assert_eq!(fired[0]["container"], c.name.as_str());
    wait_online(&env.hub, &[env.server()], Duration::from_secs(30)).unwrap();
    // The restarted hub kept the alert firing: it does not fire it again.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(count(&rx, "firing"), 1, "{:?}", rx.delivered());
    let firing = env.hub.cli_json(&["alert", "list"]).unwrap();
    assert_eq!(firing.as_array().unwrap().len(), 1, "{firing}");
}

#[test]
fn an_agent_killed_fires_offline_once_and_resolves_once_when_back() {
    let mut env = DockerEnv::start("alerts-offline", &[]).unwrap();
    let rx = Receiver::start();
    setup(
        &env,
        &rx,
        "agent-offline",
        &["--for", "2s", "--severity", "critical"],
    );
    env.agent.kill();
    let fired = rx.wait_for("agent offline", 1, |v| {
        v["status"] == "firing" && v["rule"] == "r1"
    });
    assert_eq!(fired[0]["condition"], "agent_offline");
    assert_eq!(fired[0]["server"], env.server());
    assert!(fired[0]["container"].is_null());
    assert_eq!(fired[0]["severity"], "critical");
    assert!(fired[0]["value"]["offline_s"].as_i64().unwrap() >= 2);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(count(&rx, "firing"), 1);
    env.agent.start().unwrap();
    wait_online(&env.hub, &[env.server()], Duration::from_secs(30)).unwrap();
    rx.wait_for("agent back", 1, |v| v["status"] == "resolved");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!((count(&rx, "firing"), count(&rx, "resolved")), (1, 1));
    assert!(env
        .hub
        .cli_json(&["alert", "list"])
        .unwrap()
        .as_array()
        .unwrap()
        .is_empty());
}

#[test]
fn channels_and_rules_are_managed_by_admins_and_incomplete_channels_say_why() {
    let hub = nextdeploy_tests::start_hub().unwrap();
    let rx = Receiver::start();
    let out = hub
        .cli(&[
            "alert",
            "channel",
            "add",
            "g",
            "--gotify",
            "https://x.example/y",
        ])
        .unwrap();
    assert!(!out.status.success());
    assert!(out.stderr.contains("needs a token"), "{}", out.stderr);
    hub.cli_json(&["alert", "channel", "add", "ops", "--webhook", &rx.url()])
        .unwrap();
    let list = hub.cli_json(&["alert", "channel", "list"]).unwrap();
    assert_eq!(
        list[0]["target"],
        format!("http://127.0.0.1:{}/…", rx.port),
        "{list}"
    );
    let rule = [
        "alert",
        "rule",
        "add",
        "sick",
        "--on",
        "unhealthy",
        "--for",
        "30s",
        "--channel",
        "ops",
    ];
    let r = hub.cli_json(&rule).unwrap();
    assert_eq!(
        (r["for_s"].as_u64(), r["severity"].as_str()),
        (Some(30), Some("warning"))
    );
    let out = hub.cli(&["alert", "channel", "remove", "ops"]).unwrap();
    assert!(!out.status.success(), "a used channel stays");
    let viewer = hub
        .cli_json(&["token", "create", "--name", "v", "--role", "viewer"])
        .unwrap();
    let vt = viewer["token"].as_str().unwrap();
    assert!(hub.cli_json_as(vt, &["alert", "list"]).unwrap().is_array());
    let out = hub.cli_as(vt, &["alert", "rule", "list"]).unwrap();
    assert!(out.stderr.contains("admin"), "{}", out.stderr);
    hub.cli_json(&["alert", "rule", "remove", "sick"]).unwrap();
    hub.cli_json(&["alert", "channel", "remove", "ops"])
        .unwrap();
}
