#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The agent owns a started deploy: killing the CLI does not stop it, and
//! killing the hub (SIGKILL) during the health wait, then restarting it on
//! the same data dir, the history gets the outcome when the agent is back.

use std::time::Duration;

use nextdeploy_tests::deploy::{inspect, DeployEnv, Fixture};

#[test]
fn killing_the_cli_mid_deploy_does_not_stop_it() {
    let env = DeployEnv::start("res-cli").unwrap();
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
    cli.kill();
    let journal = env
        .agent
        .config
        .parent()
        .unwrap()
        .join("deploys")
        .join(format!("{id}.json"));
    assert!(journal.is_file(), "no journal at {}", journal.display());

    let shown = env
        .wait_status(&id, "succeeded", Duration::from_secs(30))
        .unwrap();
    assert_eq!(shown["outcome"]["outcome"], "succeeded", "{shown}");
    let now = inspect(&name).unwrap();
    assert_ne!(now["Id"], old_id.as_str());
    assert_eq!(now["Config"]["Image"], v2.as_str());
    assert_eq!(now["State"]["Running"], true, "{}", now["State"]);
    assert!(
        !nextdeploy_tests::deploy::exists(&old_id),
        "the old container was not cleaned up"
    );
}

#[test]
fn killing_the_hub_mid_deploy_the_restarted_hub_gets_the_outcome() {
    let mut env = DeployEnv::start("res-hub").unwrap();
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
    // v2 has no healthcheck: the agent waits 5 s of settle; the hub dies now.
    env.hub.kill9();
    let status = nextdeploy_tests::wait_until(
        "the CLI to exit after losing the hub",
        Duration::from_secs(20),
        Duration::from_millis(50),
        || Ok(cli.exit_status()),
    )
    .unwrap();
    assert!(
        !status.success(),
        "the CLI exited 0 without an outcome\n{}",
        cli.describe()
    );

    // The agent finishes on its own meanwhile.
    nextdeploy_tests::docker::wait_until_ok(
        "the agent to finish the deploy without the hub",
        Duration::from_secs(20),
        Duration::from_millis(200),
        || Ok(!nextdeploy_tests::deploy::exists(&old_id)),
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(500));

    env.hub.restart().unwrap();
    let shown = env
        .wait_status(&id, "succeeded", Duration::from_secs(30))
        .unwrap();
    assert_eq!(shown["outcome"]["outcome"], "succeeded", "{shown}");
    assert!(
        nextdeploy_tests::deploy::is_rfc3339(&shown["finished_at"]),
        "{shown}"
    );
    assert!(
        shown["outcome"]["steps"].as_array().is_some_and(|s| s
            .iter()
            .any(|x| x["step"] == "health" && x["status"] == "done")),
        "{shown}"
    );
    let now = inspect(&name).unwrap();
    assert_eq!(now["Config"]["Image"], v2.as_str());
    assert_eq!(now["State"]["Running"], true, "{}", now["State"]);
    let list = env
        .hub
        .cli_json(&["deploys", "list", "--server", env.server()])
        .unwrap();
    assert_eq!(list[0]["id"], id.as_str(), "{list}");
    assert_eq!(list[0]["status"], "succeeded", "{list}");
}
