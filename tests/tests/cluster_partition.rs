#![allow(clippy::unwrap_used, clippy::expect_used)]
//! A hub cut off from the network but alive (issue 23): hub C runs in a
//! network namespace of its own (its store, PostgreSQL, reached across the
//! namespace's link), hub A on the host; two agents list C first, then A.
//! The link goes down: C's heartbeat fails, it cuts its agents and its
//! leases expire; the agents come back online through A, once each. The
//! link comes back: C writes its heartbeat again, is alive in the cluster's
//! status, claims none of them, and forwards requests for them to A. (The
//! agents notice the silent link by their heartbeat timeout, 30 s.)

use std::time::{Duration, Instant};

use nextdeploy_tests::cluster::{hub_id, Shared};
use nextdeploy_tests::netns::Netns;
use nextdeploy_tests::proxy::Proxy;
use nextdeploy_tests::*;
use serde_json::Value;

const NAMES: [&str; 2] = ["pt-1", "pt-2"];

/// Each agent's (online, hub id) as `hub` lists them; fails on one listed twice.
fn where_are(hub: &Hub) -> Vec<(bool, String)> {
    let list = hub.agent_list().unwrap();
    NAMES
        .iter()
        .map(|n| {
            let mine: Vec<&Value> = list.iter().filter(|a| a["name"] == *n).collect();
            assert_eq!(mine.len(), 1, "{n} listed {} times: {list:?}", mine.len());
            let id = mine[0]["hub"]["id"].as_str().unwrap_or("").to_string();
            (mine[0]["online"] == true, id)
        })
        .collect()
}

fn all_on(hub: &Hub, id: &str) -> bool {
    where_are(hub).iter().all(|(on, h)| *on && h == id)
}

#[test]
fn a_hub_cut_off_from_the_network_loses_its_agents_and_does_not_claim_them_back() {
    let ns = Netns::new();
    let shared = Shared::on_postgres();
    let mut a = shared.first();
    // A as the namespace reaches it (C forwards requests for A's agents
    // there): another relay, and A told so.
    let a_relay = Proxy::start_on(
        &format!("{}:0", ns.host_ip),
        &format!("127.0.0.1:{}", a.http_port),
    );
    a.restart_with(&["--cluster-api-url", &format!("https://{}", a_relay.addr())])
        .unwrap();
    // PostgreSQL as the namespace reaches it: a relay on the link's host side.
    let local = shared
        .store
        .split('@')
        .nth(1)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let relay = Proxy::start_on(&format!("{}:0", ns.host_ip), &local);
    let store = shared.store.replace(&local, &relay.addr());
    let secret = shared.secret.display().to_string();
    let mut opts = HubOpts::args(["--store", &store, "--cluster-secret-file", &secret]);
    opts.netns = Some((ns.name.clone(), ns.ns_ip.clone()));
    let c = Hub::start_joining(opts, &a.admin_token).unwrap();
    let (ida, idc) = (hub_id(&a), hub_id(&c));
    let list = format!("{},{}", c.ssh_addr(), a.ssh_addr());
    let mut agents = Vec::new();
    for name in NAMES {
        let jt = a.join_token(name, "", "1h").unwrap();
        let mut ag = Agent::enroll_at(&c, &list, name, &jt.token).unwrap();
        ag.start().unwrap();
        agents.push(ag);
    }
    wait_until(
        "both agents online through C",
        Duration::from_secs(30),
        Duration::from_millis(200),
        || Ok(all_on(&a, &idc).then_some(())),
    )
    .unwrap();

    ns.cut();
    let cut = Instant::now();
    wait_until(
        "both agents online through A",
        Duration::from_secs(90),
        Duration::from_millis(200),
        || Ok(all_on(&a, &ida).then_some(())),
    )
    .unwrap_or_else(|e| panic!("{e:#}\n{}\n{}", c.log_tail(), agents[0].log_tail()));
    eprintln!(
        "both agents online through A {:?} after C was cut off",
        cut.elapsed()
    );
    wait_until(
        "C cut its agents",
        Duration::from_secs(20),
        Duration::from_millis(200),
        || Ok(c.log_text().contains("cutting every agent").then_some(())),
    )
    .unwrap();

    ns.restore();
    let back = Instant::now();
    wait_until(
        "C alive again",
        Duration::from_secs(60),
        Duration::from_millis(250),
        || {
            let s = a.cli_json(&["hub", "cluster", "status"])?;
            let alive = s["hubs"]
                .as_array()
                .unwrap()
                .iter()
                .any(|h| h["id"] == idc.as_str() && h["alive"] == true);
            Ok(alive.then_some(()))
        },
    )
    .unwrap_or_else(|e| panic!("{e:#}\n{}", c.log_tail()));
    eprintln!(
        "C alive again {:?} after the link came back",
        back.elapsed()
    );
    // A few heartbeats later, C holds none of them; requests through C reach them.
    std::thread::sleep(Duration::from_secs(3));
    assert!(all_on(&a, &ida), "{:?}", where_are(&a));
    assert!(all_on(&c, &ida), "C's view: {:?}", where_are(&c));
    for name in NAMES {
        let p = c.cli_json(&["agent", "ping", "--server", name]).unwrap();
        assert_eq!(p["server"], name, "{p}");
    }
}
