#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The swap's gap, both ways. A container that publishes no host port is
//! replaced without one: the new container starts beside the old one and is
//! healthy before the old one stops (Docker's timestamps: the old one
//! finished after the new one started). One that publishes a host port
//! stops, then the new one starts at once: the gap is the old one's stop.
//! A container with a fixed IP address cannot overlap either. Prints
//! `MEASURE deploy_gap_ms ...` lines.

use std::time::Duration;

use chrono::DateTime;
use nextdeploy_tests::deploy::{free_port, inspect, wait_http, DeployEnv, Fixture, PortPoller};

/// Milliseconds from the old container's stop to the new one's start
/// (negative: they overlapped), from `docker inspect`.
fn docker_gap_ms(old: &str, new: &str) -> i64 {
    let t = |name: &str, field: &str| {
        let v = inspect(name).unwrap();
        let s = v["State"][field].as_str().unwrap().to_string();
        DateTime::parse_from_rfc3339(&s).unwrap().timestamp_millis()
    };
    t(new, "StartedAt") - t(old, "FinishedAt")
}

#[test]
fn the_swap_gap_with_and_without_host_ports() {
    let mut env = DeployEnv::start("gap").unwrap();
    let v1 = Fixture::V1.image().unwrap();
    let v2 = Fixture::V2.image().unwrap();

    // No host port: overlap.
    let (name, old_id) = env.run("inner", &v1, &[]).unwrap();
    let run = env
        .deploy(&["--container", &name, "--image", &v2, "--keep-previous"])
        .unwrap();
    assert!(run.out.success(), "{}\n{}", run.describe(), env.logs());
    let swap = run
        .progress()
        .iter()
        .find(|p| p["step"] == "swap" && p["status"] == "started")
        .unwrap();
    assert_eq!(swap["mode"], "overlap", "{}", run.describe());
    let previous = format!("{name}-nd-previous");
    assert_eq!(inspect(&previous).unwrap()["Id"], old_id.as_str());
    let overlap_gap = docker_gap_ms(&previous, &name);
    assert!(
        overlap_gap < 0,
        "the old container stopped {overlap_gap} ms before the new one started"
    );
    // The new container took the name; no temporary one is left.
    let now = inspect(&name).unwrap();
    assert_eq!(now["Config"]["Image"], v2.as_str());
    assert_eq!(now["State"]["Running"], true);
    let left = nextdeploy_tests::docker::docker(&[
        "ps",
        "-a",
        "--filter",
        &format!("name={name}-nd-new-"),
        "--format",
        "{{.Names}}",
    ])
    .unwrap();
    assert!(left.trim().is_empty(), "left behind: {left}");

    // A host port: stop, then start.
    let port = free_port().unwrap();
    let (pname, _) = env
        .run("outer", &v1, &["-p", &format!("127.0.0.1:{port}:8080")])
        .unwrap();
    wait_http(port, "version 1", Duration::from_secs(10)).unwrap();
    let poller = PortPoller::start(port);
    let run = env
        .deploy(&["--container", &pname, "--image", &v2, "--keep-previous"])
        .unwrap();
    wait_http(port, "version 2", Duration::from_secs(10)).unwrap();
    let stats = poller.finish();
    assert!(run.out.success(), "{}\n{}", run.describe(), env.logs());
    let swap = run
        .progress()
        .iter()
        .find(|p| p["step"] == "swap" && p["status"] == "started")
        .unwrap();
    assert_eq!(swap["mode"], "stop_then_start", "{}", run.describe());
    assert!(
        swap["detail"]
            .as_str()
            .is_some_and(|d| d.contains("stop timeout 1 s")),
        "{swap}"
    );
    let port_gap = docker_gap_ms(&format!("{pname}-nd-previous"), &pname);
    println!(
        "MEASURE deploy_gap_ms no_host_port={overlap_gap} (negative: the new container served that long before the old one stopped) \
         host_port={port_gap} (docker: old FinishedAt -> new StartedAt) host_port_polled={:.0} (longest time without an answer on the port, {} polls, {} failed)",
        stats.longest_gap.as_secs_f64() * 1000.0,
        stats.polls,
        stats.failed
    );
    assert!(
        stats.longest_gap < Duration::from_secs(3),
        "downtime {:?}",
        stats.longest_gap
    );

    // A fixed IP address: stop, then start, on the same address.
    let net = env
        .network_with("fixed", &["--subnet", "172.31.251.0/24"])
        .unwrap();
    let (fname, _) = env
        .run("fixed", &v1, &["--network", &net, "--ip", "172.31.251.10"])
        .unwrap();
    let run = env
        .deploy(&["--container", &fname, "--image", &v2])
        .unwrap();
    assert!(run.out.success(), "{}\n{}", run.describe(), env.logs());
    let swap = run
        .progress()
        .iter()
        .find(|p| p["step"] == "swap" && p["status"] == "started")
        .unwrap();
    assert_eq!(swap["mode"], "stop_then_start", "{swap}");
    assert!(
        swap["detail"]
            .as_str()
            .is_some_and(|d| d.contains("fixed IP address")),
        "{swap}"
    );
    let now = inspect(&fname).unwrap();
    assert_eq!(now["Config"]["Image"], v2.as_str());
    assert_eq!(
        now["NetworkSettings"]["Networks"][&net]["IPAddress"], "172.31.251.10",
        "{}",
        now["NetworkSettings"]
    );
}
