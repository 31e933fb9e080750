#![allow(clippy::unwrap_used, clippy::expect_used)]
//! One deploy per container at a time: a second one is refused with the id
//! of the running one. Viewers read the history but cannot deploy.

use std::time::Duration;

use nextdeploy_tests::deploy::{deploy_as, inspect, DeployEnv, Fixture};

#[test]
fn a_second_deploy_of_the_same_container_is_refused_with_the_running_id() {
    let env = DeployEnv::start("conc").unwrap();
    let v1 = Fixture::V1.image().unwrap();
    let v2 = Fixture::V2.image().unwrap();
    let sick = Fixture::NeverHealthy.image().unwrap();
    let (name, old_id) = env.run("web", &v1, &[]).unwrap();

    // A slow deploy: the new container never becomes healthy.
    let mut first = env
        .deploy_stream(&[
            "--container",
            &name,
            "--image",
            &sick,
            "--health-timeout",
            "15s",
        ])
        .unwrap();
    let started = first
        .wait_json(
            "the first deploy's health step",
            Duration::from_secs(30),
            |v| v["step"] == "health" && v["status"] == "started",
        )
        .unwrap();
    let first_id = started["deploy_id"].as_str().unwrap().to_string();

    let second = env.deploy(&["--container", &name, "--image", &v2]).unwrap();
    assert!(
        !second.out.success(),
        "a concurrent deploy was accepted\n{}",
        second.describe()
    );
    assert!(
        second.out.mentions(&first_id),
        "the refusal does not name the running deploy {first_id}\n{}\n{}",
        second.describe(),
        env.logs()
    );
    if let Ok(id) = second.id() {
        let shown = env.show(&id).unwrap();
        assert_ne!(shown["status"], "succeeded", "{shown}");
        assert_ne!(
            shown["status"], "running",
            "a refused deploy stays running: {shown}"
        );
    }

    // The first one goes on and rolls back to the same old container.
    let last = first
        .wait_json(
            "the first deploy's final document",
            Duration::from_secs(40),
            |v| v["outcome"].is_string(),
        )
        .unwrap();
    assert_eq!(last["outcome"], "rolled_back", "{last}");
    assert_eq!(last["deploy_id"], first_id.as_str(), "{last}");
    let now = inspect(&name).unwrap();
    assert_eq!(now["Id"], old_id.as_str());
    assert_eq!(now["State"]["Running"], true, "{}", now["State"]);
    env.wait_status(&first_id, "rolled_back", Duration::from_secs(10))
        .unwrap();
}

#[test]
fn a_viewer_reads_the_history_but_cannot_deploy() {
    let env = DeployEnv::start("viewer").unwrap();
    let v1 = Fixture::V1.image().unwrap();
    let v2 = Fixture::V2.image().unwrap();
    let (name, old_id) = env.run("web", &v1, &[]).unwrap();
    let viewer = env
        .hub
        .cli_json(&["token", "create", "--role", "viewer", "--name", "ro"])
        .unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();

    let run = deploy_as(
        &env.hub,
        &viewer,
        &[
            "--server",
            env.server(),
            "--container",
            &name,
            "--image",
            &v2,
        ],
    )
    .unwrap();
    assert!(!run.out.success(), "a viewer deployed\n{}", run.describe());
    assert!(
        run.out.mentions("forbidden") || run.out.mentions("permission") || run.out.mentions("role"),
        "no permission error\n{}",
        run.describe()
    );
    let out = env
        .hub
        .cli_as(
            &viewer,
            &[
                "agent",
                "rollback",
                "--server",
                env.server(),
                "--container",
                &name,
            ],
        )
        .unwrap();
    assert!(!out.success(), "a viewer rolled back\n{}", out.describe());
    assert_eq!(inspect(&name).unwrap()["Id"], old_id.as_str());
    assert_eq!(
        env.hub.cli_json(&["deploys", "list"]).unwrap(),
        serde_json::json!([]),
        "a refused deploy was recorded"
    );

    // An operator's deploy, which the viewer can read.
    let op = env
        .hub
        .cli_json(&["token", "create", "--role", "operator", "--name", "ops"])
        .unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let run = deploy_as(
        &env.hub,
        &op,
        &[
            "--server",
            env.server(),
            "--container",
            &name,
            "--image",
            &v2,
        ],
    )
    .unwrap();
    assert!(run.out.success(), "{}\n{}", run.describe(), env.logs());
    let id = run.id().unwrap();
    let list = env.hub.cli_json_as(&viewer, &["deploys", "list"]).unwrap();
    assert_eq!(list[0]["id"], id.as_str(), "{list}");
    assert_eq!(list[0]["actor"], "ops", "{list}");
    let shown = env
        .hub
        .cli_json_as(&viewer, &["deploys", "show", &id])
        .unwrap();
    assert_eq!(shown["status"], "succeeded", "{shown}");
    assert!(
        shown["outcome"]["steps"]
            .as_array()
            .is_some_and(|s| !s.is_empty()),
        "{shown}"
    );
    // An id prefix is taken, as docker takes short ids; too short is refused.
    let by_prefix = env
        .hub
        .cli_json_as(&viewer, &["deploys", "show", &id[..8]])
        .unwrap();
    assert_eq!(by_prefix["id"], id.as_str(), "{by_prefix}");
    let out = env
        .hub
        .cli_as(&viewer, &["deploys", "show", &id[..2]])
        .unwrap()
        .failed()
        .unwrap();
    assert!(out.stderr.contains("at least 4"), "{}", out.describe());
}
