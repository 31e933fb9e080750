#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The link between agent and hub drops in the middle of a deploy (the TCP
//! connection is destroyed with `ss -K`, both processes keep running): the
//! agent finishes the deploy on its own, the hub re-asks the reconnected agent
//! with the same deploy id, the agent answers the same deploy (it never
//! deploys twice), and the CLI that started it still gets the outcome.

use std::process::Command;
use std::time::{Duration, Instant};

use nextdeploy_tests::deploy::{inspect, DeployEnv, Fixture};

#[test]
fn a_dropped_link_mid_deploy_still_ends_with_the_outcome_and_one_deploy() {
    let env = DeployEnv::start("relink").unwrap();
    let v1 = Fixture::V1.image().unwrap();
    let v2 = Fixture::V2.image().unwrap();
    let (name, old_id) = env.run("web", &v1, &[]).unwrap();

    let mut cli = env
        .deploy_stream(&["--container", &name, "--image", &v2])
        .unwrap();
    let p = cli
        .wait_json("the health step to start", Duration::from_secs(30), |v| {
            v["step"] == "health" && v["status"] == "started"
        })
        .unwrap();
    let id = p["deploy_id"].as_str().unwrap().to_string();

    // Cut every TCP connection to the hub's SSH port (agent side and hub side).
    let port = env.hub.ssh_addr().rsplit(':').next().unwrap().to_string();
    for filter in [["dport", "=", port.as_str()], ["sport", "=", port.as_str()]] {
        let out = Command::new("ss")
            .arg("-K")
            .arg("-t")
            .args(filter)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "ss -K failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // The CLI still ends, with the outcome, after the agent reconnects.
    let started = Instant::now();
    let status = loop {
        if let Some(s) = cli.exit_status() {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "the CLI did not finish: {}",
            cli.describe()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let lines = cli.json_lines();
    let last = lines.last().cloned().unwrap_or_default();
    assert!(
        status.success(),
        "deploy CLI failed: {}\n{}",
        cli.describe(),
        env.logs()
    );
    assert_eq!(last["outcome"], "succeeded", "{last}");
    assert_eq!(last["deploy_id"], id.as_str(), "{last}");

    let shown = env
        .wait_status(&id, "succeeded", Duration::from_secs(30))
        .unwrap();
    assert_eq!(shown["outcome"]["outcome"], "succeeded", "{shown}");
    let now = inspect(&name).unwrap();
    assert_eq!(now["Config"]["Image"], v2.as_str());
    assert_ne!(now["Id"], old_id.as_str());
    // Exactly one deploy ran on the agent: one "deploy started" for this id.
    let log = env.agent.log_text();
    let starts = log
        .lines()
        .filter(|l| l.contains("deploy started") && l.contains(&id))
        .count();
    assert_eq!(
        starts, 1,
        "the agent started the deploy {starts} times:\n{log}"
    );
    let reconnects = log.matches("connected to the hub").count();
    assert!(reconnects >= 2, "the link was not actually cut:\n{log}");
}
