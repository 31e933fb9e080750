#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The rollback point is the one the last deploy kept, and nothing else:
//! after `deploy --keep-previous` and two rollbacks, a deploy without
//! `--keep-previous` removes the stale kept container, and a rollback then is
//! refused while the app stays on the version just deployed. A container
//! named `<name>-nd-previous` that no deploy kept is never swapped in. A
//! rollback names both images, waits for health and is in `deploys list`.

use std::time::Duration;

use nextdeploy_tests::deploy::{exists, free_port, inspect, wait_http, DeployEnv, Fixture};

fn rollback(env: &DeployEnv, name: &str) -> nextdeploy_tests::process::Output {
    env.hub
        .cli(&[
            "agent",
            "rollback",
            "--server",
            env.server(),
            "--container",
            name,
        ])
        .unwrap()
}

fn image_of(name: &str) -> String {
    inspect(name).unwrap()["Config"]["Image"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn a_deploy_without_keep_previous_removes_a_stale_rollback_point() {
    let env = DeployEnv::start("rb-stale").unwrap();
    let (v1, v2, v3) = (
        Fixture::V1.image().unwrap(),
        Fixture::V2.image().unwrap(),
        Fixture::Other.image().unwrap(),
    );
    let port = free_port().unwrap();
    let (name, _) = env
        .run("web", &v1, &["-p", &format!("127.0.0.1:{port}:8080")])
        .unwrap();
    wait_http(port, "version 1", Duration::from_secs(10)).unwrap();
    let previous = format!("{name}-nd-previous");

    let run = env
        .deploy(&["--container", &name, "--image", &v2, "--keep-previous"])
        .unwrap();
    assert!(run.out.success(), "{}\n{}", run.describe(), env.logs());

    // Rollback 1: v2 -> v1, named in the output, health-gated, recorded.
    let out = rollback(&env, &name);
    assert!(out.success(), "{}\n{}", out.describe(), env.logs());
    assert!(
        out.stdout
            .contains(&format!("rolled back from {v2} to {v1}")),
        "{}",
        out.describe()
    );
    assert!(out.stdout.contains("health done"), "{}", out.describe());
    assert!(out.stdout.contains("deploy "), "{}", out.describe());
    wait_http(port, "version 1", Duration::from_secs(10)).unwrap();
    assert_eq!(image_of(&name), v1);
    // Rollback 2: v1 -> v2.
    let out = rollback(&env, &name);
    assert!(out.success(), "{}\n{}", out.describe(), env.logs());
    assert!(
        out.stdout
            .contains(&format!("rolled back from {v1} to {v2}")),
        "{}",
        out.describe()
    );
    wait_http(port, "version 2", Duration::from_secs(10)).unwrap();
    assert!(exists(&previous), "the v1 container is no longer kept");

    // A later deploy without --keep-previous: the kept v1 container goes.
    let run = env.deploy(&["--container", &name, "--image", &v3]).unwrap();
    assert!(run.out.success(), "{}\n{}", run.describe(), env.logs());
    wait_http(port, "version other", Duration::from_secs(10)).unwrap();
    assert!(
        !exists(&previous),
        "the stale rollback point {previous} is still there\n{}",
        run.describe()
    );
    let current = inspect(&name).unwrap()["Id"].as_str().unwrap().to_string();

    // A rollback now is refused and changes nothing.
    let out = rollback(&env, &name);
    assert!(
        !out.success(),
        "rollback with no point exited 0\n{}",
        out.describe()
    );
    // The error, once.
    let all = format!("{}{}", out.stdout, out.stderr);
    assert_eq!(
        all.matches("no rollback point").count(),
        1,
        "{}",
        out.describe()
    );
    let now = inspect(&name).unwrap();
    assert_eq!(now["Id"], current.as_str());
    assert_eq!(now["State"]["Running"], true);
    wait_http(port, "version other", Duration::from_secs(5)).unwrap();

    // A container named like a rollback point that no deploy kept is not one.
    let (planted, _) = env.run("web-nd-previous", &v1, &[]).unwrap();
    assert_eq!(planted, previous);
    let out = rollback(&env, &name);
    assert!(!out.success(), "{}", out.describe());
    assert!(
        out.stdout.contains("is not the rollback point"),
        "{}",
        out.describe()
    );
    assert_eq!(inspect(&name).unwrap()["Id"], current.as_str());
    assert_eq!(inspect(&planted).unwrap()["State"]["Running"], true);
    wait_http(port, "version other", Duration::from_secs(5)).unwrap();

    // The history: 2 deploys succeeded, 2 rollbacks succeeded with the image
    // they went back to, 2 refused rollbacks failed.
    let list = env.hub.cli_json(&["deploys", "list"]).unwrap();
    let rows = list.as_array().unwrap();
    let rollbacks: Vec<_> = rows
        .iter()
        .filter(|r| r["outcome"]["kind"] == "rollback")
        .collect();
    assert_eq!(rollbacks.len(), 4, "{list}");
    let ok: Vec<&str> = rollbacks
        .iter()
        .filter(|r| r["status"] == "succeeded")
        .map(|r| r["image"].as_str().unwrap())
        .collect();
    assert_eq!(ok, vec![v2.as_str(), v1.as_str()], "{list}");
    assert_eq!(
        rollbacks.iter().filter(|r| r["status"] == "failed").count(),
        2,
        "{list}"
    );
}

#[test]
fn a_rollback_to_a_container_that_is_not_healthy_is_undone() {
    let env = DeployEnv::start("rb-undo").unwrap();
    let (v1, v2) = (Fixture::V1.image().unwrap(), Fixture::V2.image().unwrap());
    // A healthcheck only v2 passes (it is the user's: every container keeps it).
    let (name, _) = env
        .run(
            "web",
            &v1,
            &[
                "--health-cmd",
                "grep -q 'version 2' /www/index.html",
                "--health-interval",
                "1s",
                "--health-retries",
                "1",
            ],
        )
        .unwrap();
    let run = env
        .deploy(&["--container", &name, "--image", &v2, "--keep-previous"])
        .unwrap();
    assert!(run.out.success(), "{}\n{}", run.describe(), env.logs());
    let v2_id = inspect(&name).unwrap()["Id"].as_str().unwrap().to_string();
    let previous = format!("{name}-nd-previous");
    let kept_id = inspect(&previous).unwrap()["Id"]
        .as_str()
        .unwrap()
        .to_string();

    let out = rollback(&env, &name);
    assert!(!out.success(), "{}", out.describe());
    assert!(out.stdout.contains("health failed"), "{}", out.describe());
    assert!(out.stdout.contains("rolled_back"), "{}", out.describe());
    // As before: v2 runs under the name, v1 is kept, stopped, still the point.
    let now = inspect(&name).unwrap();
    assert_eq!(now["Id"], v2_id.as_str());
    assert_eq!(now["State"]["Running"], true, "{}", now["State"]);
    let kept = inspect(&previous).unwrap();
    assert_eq!(kept["Id"], kept_id.as_str());
    assert_eq!(kept["State"]["Running"], false);
    let list = env.hub.cli_json(&["deploys", "list"]).unwrap();
    assert_eq!(list[0]["outcome"]["kind"], "rollback", "{list}");
    assert_eq!(list[0]["status"], "rolled_back", "{list}");
    assert_eq!(
        list[0]["outcome"]["containers"][0]["failed_step"], "health",
        "{list}"
    );
}
