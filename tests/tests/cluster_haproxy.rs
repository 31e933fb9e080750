#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Three hubs on one PostgreSQL behind HAProxy, as users deploy a cluster
//! (issue 23): six real agents enrol and connect through the load balancer
//! and land on every hub; every request through the balancer (each CLI call
//! a new connection, so each hub in turn) reaches every agent; a selector
//! fan-out answers for all six once; a token made through one hub works on
//! each; then the hub holding an agent is killed (`kill -9`) in the middle
//! of a deploy to it: its agents are back online through the others within
//! the backoff bound, none shows online twice, the deploy's outcome reaches
//! the shared history, and the hub restarted rejoins.

use std::time::{Duration, Instant};

use nextdeploy_tests::cluster::{hub_id, Shared};
use nextdeploy_tests::docker::*;
use nextdeploy_tests::haproxy::HaProxy;
use nextdeploy_tests::*;
use serde_json::Value;

/// The agents' reconnect bound: the lease (5 s) plus the agent's backoff
/// ceiling early on and the balancer's health check.
const BACK_WITHIN: Duration = Duration::from_secs(20);

/// `nextdeploy <args> --output json` through the balancer, as `token`.
fn via_lb(lb: &HaProxy, hub: &Hub, token: &str, args: &[&str]) -> Value {
    let mut cmd = hub.cli_command(token).unwrap();
    cmd.env("NEXTDEPLOY_HUB", lb.url())
        .args(args)
        .args(["--output", "json"]);
    let out = run_bounded(cmd, CLI_TIMEOUT).unwrap();
    assert!(
        out.success(),
        "nextdeploy {args:?} through HAProxy: {}",
        out.describe()
    );
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stdout))
}

/// Agents online per hub id, as `hub` lists them; fails on a name listed twice.
fn held(hub: &Hub) -> Vec<(String, String)> {
    let list = hub.agent_list().unwrap();
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for a in list.iter().filter(|a| a["online"] == true) {
        let name = a["name"].as_str().unwrap().to_string();
        assert!(seen.insert(name.clone()), "{name} listed twice: {list:?}");
        out.push((name, a["hub"]["id"].as_str().unwrap_or("").to_string()));
    }
    out
}

#[test]
fn three_hubs_behind_haproxy_reach_every_agent_and_survive_one_killed() {
    let _lock = docker_lock().unwrap();
    require_docker().unwrap();
    let image = fixture_image().unwrap();
    let names = Names::new("lb");
    let shared = Shared::on_postgres();
    let a = shared.first();
    let mut hubs = vec![shared.join(&a), shared.join(&a)];
    hubs.insert(0, a);
    let ids: Vec<String> = hubs.iter().map(hub_id).collect();
    let lb = HaProxy::start(
        &hubs.iter().map(|h| h.ssh_addr()).collect::<Vec<_>>(),
        &hubs
            .iter()
            .map(|h| format!("127.0.0.1:{}", h.http_port))
            .collect::<Vec<_>>(),
    );
    let token = hubs[0].admin_token.clone();
    let mut agents = Vec::new();
    let agent_names: Vec<String> = (0..6).map(|i| format!("lb-{i}")).collect();
    for name in &agent_names {
        let jt = hubs[0].join_token(name, "fleet=lb", "1h").unwrap();
        let mut ag = Agent::enroll_at(&hubs[0], &lb.ssh_addr(), name, &jt.token).unwrap();
        ag.start().unwrap();
        agents.push(ag);
    }
    let refs: Vec<&str> = agent_names.iter().map(String::as_str).collect();
    wait_online(&hubs[0], &refs, Duration::from_secs(30)).unwrap();
    let spread: std::collections::HashSet<String> =
        held(&hubs[1]).into_iter().map(|(_, h)| h).collect();
    assert!(
        spread.len() >= 2,
        "the balancer put every agent on one hub: {spread:?} of {ids:?}"
    );

    // Every agent, through the balancer, three times (each call a new
    // connection: round robin sends each through another hub).
    for name in &refs {
        for _ in 0..3 {
            let p = via_lb(&lb, &hubs[0], &token, &["agent", "ping", "--server", name]);
            assert_eq!(p["server"], *name, "{p}");
        }
        let info = via_lb(&lb, &hubs[0], &token, &["agent", "info", "--server", name]);
        assert!(info.is_object(), "{info}");
    }
    let fan = via_lb(
        &lb,
        &hubs[0],
        &token,
        &["agent", "ping", "--selector", "fleet=lb"],
    );
    let mut answered: Vec<&str> = fan
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["server"].as_str())
        .collect();
    answered.sort();
    assert_eq!(answered, refs, "{fan}");

    // A token made through the balancer works on each hub directly.
    let t = via_lb(
        &lb,
        &hubs[0],
        &token,
        &["token", "create", "--role", "viewer", "--name", "lb-viewer"],
    );
    let viewer = t["token"].as_str().unwrap();
    for h in &hubs {
        let who = h.cli_json_as(viewer, &["whoami"]).unwrap();
        assert_eq!(who["role"], "viewer", "{who}");
    }

    kill_mid_deploy(&lb, &mut hubs, &ids, &image, &names, &token);
}

/// Kill the hub holding `lb-*`'s first agent it holds, while a deploy to
/// that agent runs; then check what the issue asks.
fn kill_mid_deploy(
    lb: &HaProxy,
    hubs: &mut [Hub],
    ids: &[String],
    image: &str,
    names: &Names,
    token: &str,
) {
    let now = held(&hubs[0]);
    let (victim_agent, victim_hub) = now.iter().find(|(_, h)| !h.is_empty()).cloned().unwrap();
    let k = ids.iter().position(|i| *i == victim_hub).unwrap();
    let orphans: Vec<String> = now
        .iter()
        .filter(|(_, h)| *h == victim_hub)
        .map(|(n, _)| n.clone())
        .collect();
    let survivor = (k + 1) % hubs.len();
    let web = Container::run(names, image, "web", &[], &["idle"]).unwrap();
    let mut cmd = hubs[k].cli_command(token).unwrap();
    cmd.args([
        "agent",
        "deploy",
        "--server",
        &victim_agent,
        "--container",
        &web.name,
    ])
    .args(["--image", image, "--pull", "never", "--output", "json"]);
    let mut deploy = Streamer::spawn(cmd).unwrap();
    let started = deploy
        .wait_json("the deploy's health step", Duration::from_secs(30), |v| {
            v["step"] == "health" && v["status"] == "started"
        })
        .unwrap();
    let deploy_id = started["deploy_id"].as_str().unwrap().to_string();
    hubs[k].kill9();
    let killed = Instant::now();
    drop(deploy);
    // Its agents come back through the others, each online once.
    let refs: Vec<&str> = orphans.iter().map(String::as_str).collect();
    wait_until(
        "the killed hub's agents online elsewhere",
        BACK_WITHIN,
        Duration::from_millis(200),
        || {
            let now = held(&hubs[survivor]);
            let back = refs
                .iter()
                .all(|n| now.iter().any(|(m, h)| m == n && *h != ids[k]));
            Ok(back.then_some(()))
        },
    )
    .unwrap();
    eprintln!(
        "{} agents of the killed hub back online {:?} after the kill",
        refs.len(),
        killed.elapsed()
    );
    // The deploy finished on the agent; its outcome reached the store.
    wait_until(
        "the deploy's outcome in the history",
        Duration::from_secs(60),
        Duration::from_millis(500),
        || {
            let list = hubs[survivor].cli_json(&["deploys", "list"])?;
            let row = list
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["id"] == deploy_id.as_str())
                .cloned();
            Ok(row.filter(|r| r["status"] == "succeeded"))
        },
    )
    .unwrap();
    // Restarted, the hub rejoins: requests through it reach every agent.
    hubs[k].restart().unwrap();
    let p = hubs[k]
        .cli_json(&["agent", "ping", "--selector", "fleet=lb"])
        .unwrap();
    assert_eq!(p.as_array().unwrap().len(), 6, "{p}\n{}", lb.log());
}
