#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Deploys a user can follow: the id comes first, before any change;
//! `deploys show ID --follow` attaches to a running deploy and prints the
//! rest; progress lines carry the elapsed time and say what is happening;
//! losing the hub mid-deploy prints the id and the command to follow it.

use std::time::Duration;

use nextdeploy_tests::deploy::{free_port, DeployEnv, Fixture, DEPLOY_TIMEOUT};
use nextdeploy_tests::process::{run_bounded, Streamer};

#[test]
fn a_running_deploy_can_be_followed_from_another_command() {
    let env = DeployEnv::start("follow").unwrap();
    let v1 = Fixture::V1.image().unwrap();
    let v2 = Fixture::V2.image().unwrap();
    let port = free_port().unwrap();
    let (name, _) = env
        .run("web", &v1, &["-p", &format!("127.0.0.1:{port}:8080")])
        .unwrap();

    let mut cli = env
        .deploy_stream(&["--container", &name, "--image", &v2])
        .unwrap();
    let first = cli
        .wait_json("the first line", Duration::from_secs(20), |_| true)
        .unwrap();
    assert_eq!(first["step"], "accepted", "{first}");
    let id = first["deploy_id"].as_str().unwrap().to_string();
    cli.wait_json("the health step", Duration::from_secs(30), |v| {
        v["step"] == "health" && v["status"] == "started"
    })
    .unwrap();

    // Attach while it waits for health (5 s settle): the rest comes, then the end.
    let mut cmd = env.hub.cli_command(&env.hub.admin_token).unwrap();
    cmd.args(["deploys", "show", &id, "--follow"]);
    let out = run_bounded(cmd, DEPLOY_TIMEOUT).unwrap();
    assert!(out.success(), "{}", out.describe());
    let text = &out.stdout;
    for needle in [
        "deploy ",
        "pull done: image present, not pulled",
        "stopping the old container (stop timeout 1 s)",
        "health done",
        "cleanup done",
        ": succeeded",
    ] {
        assert!(text.contains(needle), "no {needle:?} in\n{text}");
    }
    assert!(text.contains("[   0.0s]"), "no elapsed time in\n{text}");
    let status = nextdeploy_tests::wait_until(
        "the deploy CLI to end",
        Duration::from_secs(30),
        Duration::from_millis(100),
        || Ok(cli.exit_status()),
    )
    .unwrap();
    assert!(status.success(), "{}", cli.describe());
}

#[test]
fn losing_the_hub_mid_deploy_prints_how_to_follow_it() {
    let mut env = DeployEnv::start("follow-lost").unwrap();
    let v1 = Fixture::V1.image().unwrap();
    let v2 = Fixture::V2.image().unwrap();
    let (name, _) = env.run("web", &v1, &[]).unwrap();
    let mut cmd = env.hub.cli_command(&env.hub.admin_token).unwrap();
    cmd.args([
        "agent",
        "deploy",
        "--server",
        env.server(),
        "--container",
        &name,
        "--image",
        &v2,
    ]);
    let mut cli = Streamer::spawn(cmd).unwrap();
    let line = cli
        .wait_line("the id line", Duration::from_secs(20), |l| {
            l.text().contains("deploys show")
        })
        .unwrap();
    let text = line.text();
    let id = text
        .split("] deploy ")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .unwrap()
        .to_string();
    cli.wait_line("the health step", Duration::from_secs(30), |l| {
        l.text().contains("health started")
    })
    .unwrap();
    env.hub.kill9();
    nextdeploy_tests::wait_until(
        "the CLI to exit after losing the hub",
        Duration::from_secs(20),
        Duration::from_millis(50),
        || Ok(cli.exit_status()),
    )
    .unwrap();
    let err = cli.stderr_text();
    assert!(
        err.contains(&format!("nextdeploy deploys show {id} --follow")),
        "{}",
        cli.describe()
    );
    env.hub.restart().unwrap();
    env.wait_status(&id, "succeeded", Duration::from_secs(40))
        .unwrap();
}
