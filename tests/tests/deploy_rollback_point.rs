#![allow(clippy::unwrap_used, clippy::expect_used)]
//! What a rollback goes back to. Every deploy records the version it
//! replaced; a rollback undoes the last deploy still in effect: the
//! container that deploy kept (`--keep-previous`, verified) is swapped back
//! in, else the recorded version (image and configuration) is deployed again
//! through the deploy path and its health gate. Rolling back twice goes one
//! deploy further back; past the first recorded deploy it says so and
//! changes nothing. A container named `<name>-nd-previous` that no deploy
//! kept is never swapped in (nor removed by a rollback). A rollback names
//! both images, waits for health and is in `deploys list`.

use std::time::Duration;

use nextdeploy_tests::deploy::{
    env_of, exists, free_port, inspect, is_rfc3339, wait_http, DeployEnv, Fixture,
};

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

fn id_of(name: &str) -> String {
    inspect(name).unwrap()["Id"].as_str().unwrap().to_string()
}

#[test]
fn a_stale_kept_container_is_never_used_and_rollbacks_go_further_back() {
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

    // Rollback 1: the kept container, swapped back: v2 -> v1.
    let out = rollback(&env, &name);
    assert!(out.success(), "{}\n{}", out.describe(), env.logs());
    assert!(
        out.stdout
            .contains(&format!("rolled back from {v2} to {v1}")),
        "{}",
        out.describe()
    );
    assert!(
        out.stdout.contains("the kept container swapped back in"),
        "{}",
        out.describe()
    );
    assert!(out.stdout.contains("health done"), "{}", out.describe());
    wait_http(port, "version 1", Duration::from_secs(10)).unwrap();
    assert_eq!(image_of(&name), v1);
    assert!(!exists(&previous), "{previous} is still there");
    let current = id_of(&name);

    // Rollback 2: nothing before v1 was recorded: refused, nothing changes.
    let out = rollback(&env, &name);
    assert!(!out.success(), "{}", out.describe());
    let all = format!("{}{}", out.stdout, out.stderr);
    assert_eq!(
        all.matches("nothing earlier recorded for").count(),
        1,
        "{}",
        out.describe()
    );
    assert_eq!(id_of(&name), current);
    assert_eq!(inspect(&name).unwrap()["State"]["Running"], true);

    // v2 kept-previous, then v3 without: the kept v1 container goes.
    let run = env
        .deploy(&["--container", &name, "--image", &v2, "--keep-previous"])
        .unwrap();
    assert!(run.out.success(), "{}\n{}", run.describe(), env.logs());
    assert!(exists(&previous));
    let run = env.deploy(&["--container", &name, "--image", &v3]).unwrap();
    assert!(run.out.success(), "{}\n{}", run.describe(), env.logs());
    wait_http(port, "version other", Duration::from_secs(10)).unwrap();
    assert!(
        !exists(&previous),
        "the stale rollback point {previous} is still there\n{}",
        run.describe()
    );

    // A container named like a rollback point that no deploy kept is not
    // one: left alone, running; the recorded v2 is deployed again instead.
    let (planted, _) = env.run("web-nd-previous", &v1, &[]).unwrap();
    assert_eq!(planted, previous);
    let planted_id = id_of(&planted);
    let out = rollback(&env, &name);
    assert!(out.success(), "{}\n{}", out.describe(), env.logs());
    assert!(
        out.stdout.contains("is not the rollback point"),
        "{}",
        out.describe()
    );
    assert!(
        out.stdout
            .contains(&format!("rolled back from {v3} to {v2}")),
        "{}",
        out.describe()
    );
    wait_http(port, "version 2", Duration::from_secs(10)).unwrap();
    assert_eq!(image_of(&name), v2);
    assert_eq!(id_of(&planted), planted_id);
    assert_eq!(inspect(&planted).unwrap()["State"]["Running"], true);

    // The history: rollbacks recorded with the image they went back to.
    let list = env.hub.cli_json(&["deploys", "list"]).unwrap();
    let rows = list.as_array().unwrap();
    let rollbacks: Vec<_> = rows
        .iter()
        .filter(|r| r["outcome"]["kind"] == "rollback")
        .collect();
    assert_eq!(rollbacks.len(), 3, "{list}");
    let ok: Vec<&str> = rollbacks
        .iter()
        .filter(|r| r["status"] == "succeeded")
        .map(|r| r["image"].as_str().unwrap())
        .collect();
    assert_eq!(ok, vec![v2.as_str(), v1.as_str()], "{list}");
    assert_eq!(
        rollbacks.iter().filter(|r| r["status"] == "failed").count(),
        1,
        "{list}"
    );
    assert_eq!(
        rollbacks[0]["outcome"]["containers"][0]["rollback_via"], "recorded_version",
        "{list}"
    );
    assert_eq!(
        rollbacks[2]["outcome"]["containers"][0]["rollback_via"], "kept_container",
        "{list}"
    );
}

#[test]
fn a_rollback_without_a_kept_container_deploys_the_recorded_version_again() {
    let env = DeployEnv::start("rb-record").unwrap();
    let (v1, v2, v3) = (
        Fixture::V1.image().unwrap(),
        Fixture::V2.image().unwrap(),
        Fixture::Other.image().unwrap(),
    );
    let port = free_port().unwrap();
    // The user's own configuration (env, port) must come back with v1.
    let (name, _) = env
        .run(
            "web",
            &v1,
            &[
                "-p",
                &format!("127.0.0.1:{port}:8080"),
                "-e",
                "APP_MODE=custom",
            ],
        )
        .unwrap();
    wait_http(port, "version 1 mode custom", Duration::from_secs(10)).unwrap();
    let first = env.deploy(&["--container", &name, "--image", &v2]).unwrap();
    assert!(first.out.success(), "{}\n{}", first.describe(), env.logs());
    let first_id = first.id().unwrap();
    let second = env.deploy(&["--container", &name, "--image", &v3]).unwrap();
    assert!(
        second.out.success(),
        "{}\n{}",
        second.describe(),
        env.logs()
    );
    let second_id = second.id().unwrap();
    wait_http(port, "version other mode custom", Duration::from_secs(10)).unwrap();
    assert!(!exists(&format!("{name}-nd-previous")));

    // Rollback 1 (table): v3 -> v2, both images and the deploy named.
    let out = rollback(&env, &name);
    assert!(out.success(), "{}\n{}", out.describe(), env.logs());
    assert!(
        out.stdout
            .contains(&format!("{name}: rolled back from {v3} to {v2} (deploy ")),
        "{}",
        out.describe()
    );
    assert!(
        out.stdout.contains(&format!(
            "redeployed the version deploy {second_id} replaced"
        )),
        "{}",
        out.describe()
    );
    assert!(out.stdout.contains("health done"), "{}", out.describe());
    wait_http(port, "version 2 mode custom", Duration::from_secs(10)).unwrap();
    assert_eq!(image_of(&name), v2);

    // Rollback 2 (JSON: progress lines, the outcome last): one deploy
    // further back, v2 -> v1, healthy.
    let out = env
        .hub
        .cli(&[
            "agent",
            "rollback",
            "--server",
            env.server(),
            "--container",
            &name,
            "--output",
            "json",
        ])
        .unwrap();
    assert!(out.success(), "{}\n{}", out.describe(), env.logs());
    let lines: Vec<serde_json::Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["step"], "accepted", "{}", out.describe());
    let doc = lines.last().unwrap().clone();
    assert_eq!(doc["outcome"], "succeeded", "{doc}");
    assert_eq!(doc["kind"], "rollback", "{doc}");
    assert_eq!(doc["image"], v1.as_str(), "{doc}");
    assert_eq!(doc["container"], name.as_str(), "{doc}");
    let c = &doc["containers"][0];
    assert_eq!(c["from_image"], v2.as_str(), "{doc}");
    assert_eq!(c["to_image"], v1.as_str(), "{doc}");
    assert_eq!(c["rollback_via"], "recorded_version", "{doc}");
    assert_eq!(c["undid_deploy"], first_id.as_str(), "{doc}");
    assert_eq!(doc["now_running"], id_of(&name).as_str(), "{doc}");
    let rollback_id = doc["deploy_id"].as_str().unwrap().to_string();
    assert!(
        doc["steps"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["step"] == "health" && s["status"] == "done"),
        "{doc}"
    );
    wait_http(port, "version 1 mode custom", Duration::from_secs(10)).unwrap();
    let now = inspect(&name).unwrap();
    assert_eq!(now["Config"]["Image"], v1.as_str());
    assert_eq!(now["State"]["Running"], true, "{}", now["State"]);
    assert!(
        env_of(&now).contains(&"APP_MODE=custom".to_string()),
        "{:?}",
        env_of(&now)
    );

    // Rollback 3: nothing earlier; refused, v1 keeps running.
    let out = rollback(&env, &name);
    assert!(!out.success(), "{}", out.describe());
    assert!(
        format!("{}{}", out.stdout, out.stderr).contains("nothing earlier recorded for"),
        "{}",
        out.describe()
    );
    assert_eq!(inspect(&name).unwrap()["Id"], now["Id"]);
    wait_http(port, "version 1 mode custom", Duration::from_secs(5)).unwrap();

    // The history: the rollbacks as deploys of their own, both images named.
    let list = env.hub.cli_json(&["deploys", "list"]).unwrap();
    let row = list
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == rollback_id.as_str())
        .unwrap();
    assert_eq!(row["status"], "succeeded", "{row}");
    assert_eq!(row["image"], v1.as_str(), "{row}");
    assert_eq!(row["outcome"]["kind"], "rollback", "{row}");
    assert_eq!(row["outcome"]["containers"][0]["from_image"], v2.as_str());
    assert_eq!(row["outcome"]["containers"][0]["to_image"], v1.as_str());
    assert!(is_rfc3339(&row["created_at"]), "{row}");
    assert!(is_rfc3339(&row["finished_at"]), "{row}");
    let table = env.hub.cli(&["deploys", "list"]).unwrap();
    assert!(table.success(), "{}", table.describe());
    assert!(
        table.stdout.contains(&rollback_id) && table.stdout.contains(&v1),
        "{}",
        table.describe()
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
