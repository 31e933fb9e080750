#![allow(clippy::unwrap_used, clippy::expect_used)]
//! A new image that exits at once, or never becomes healthy, is rolled back:
//! the old container (same id, same configuration) runs again under its name,
//! and the deploy is recorded as rolled back with the failed step and the new
//! container's last log lines. `--keep-previous` then `agent rollback`
//! brings the previous image back.

use std::time::Duration;

use nextdeploy_tests::deploy::{
    config_fingerprint, exists, free_port, inspect, wait_http, DeployEnv, DeployRun, Fixture,
    CRASH_LOG_LINE,
};

/// Start a v1 container with user settings on a free port: (name, id, port).
fn v1_container(env: &DeployEnv, role: &str) -> (String, String, u16) {
    let port = free_port().unwrap();
    let (name, id) = env
        .run(
            role,
            &Fixture::V1.image().unwrap(),
            &[
                "-e",
                "APP_MODE=custom",
                "-e",
                "DB_URL=postgres://db/app",
                "--label",
                "team=payments",
                "-p",
                &format!("127.0.0.1:{port}:8080"),
                "--restart",
                "unless-stopped",
            ],
        )
        .unwrap();
    wait_http(port, "version 1 mode custom", Duration::from_secs(10)).unwrap();
    (name, id, port)
}

/// The deploy failed and was rolled back: the same container, unchanged and
/// running, answers v1; the outcome and the history say so.
fn assert_rolled_back(
    env: &DeployEnv,
    run: &DeployRun,
    name: &str,
    old_id: &str,
    port: u16,
    before: &serde_json::Value,
    log_needle: &str,
) -> serde_json::Value {
    assert!(
        !run.out.success(),
        "a failed deploy exited 0\n{}",
        run.describe()
    );
    let doc = &run.doc;
    assert_eq!(
        doc["outcome"],
        "rolled_back",
        "{}\n{}",
        run.describe(),
        env.logs()
    );
    let c = run.container();
    assert_eq!(c["container"], name, "{doc}");
    assert_eq!(c["outcome"], "rolled_back", "{doc}");
    assert_eq!(c["failed_step"], "health", "{doc}");
    assert!(c["error"].as_str().is_some_and(|e| !e.is_empty()), "{doc}");
    let logs = c["logs_tail"].as_str().unwrap_or_default();
    assert!(
        logs.contains(log_needle),
        "logs_tail lacks {log_needle:?}: {doc}"
    );
    assert!(
        run.progress()
            .iter()
            .any(|p| p["step"] == "rollback" && p["status"] == "done"),
        "no `rollback done` progress line\n{}",
        run.describe()
    );

    let now = inspect(name).unwrap();
    assert_eq!(now["Id"], old_id, "another container runs under {name}");
    assert_eq!(now["State"]["Running"], true, "{}", now["State"]);
    assert_eq!(
        config_fingerprint(&now),
        *before,
        "the configuration changed"
    );
    wait_http(port, "version 1 mode custom", Duration::from_secs(10)).unwrap();
    if let Some(new_id) = c["new_id"].as_str() {
        assert!(
            !exists(new_id),
            "the failed container {new_id} was left behind"
        );
    }

    let id = run.id().unwrap();
    let shown = env
        .wait_status(&id, "rolled_back", Duration::from_secs(10))
        .unwrap();
    assert_eq!(shown["outcome"]["outcome"], "rolled_back", "{shown}");
    assert_eq!(
        shown["outcome"]["containers"][0]["failed_step"], "health",
        "{shown}"
    );
    assert!(
        shown["outcome"]["containers"][0]["logs_tail"]
            .as_str()
            .is_some_and(|l| l.contains(log_needle)),
        "{shown}"
    );
    assert!(
        nextdeploy_tests::deploy::is_rfc3339(&shown["finished_at"]),
        "{shown}"
    );
    shown
}

#[test]
fn an_image_that_exits_at_once_is_rolled_back() {
    let env = DeployEnv::start("rb-crash").unwrap();
    let (name, old_id, port) = v1_container(&env, "web");
    let before = config_fingerprint(&inspect(&name).unwrap());
    let bad = Fixture::Crash.image().unwrap();
    let run = env
        .deploy(&[
            "--container",
            &name,
            "--image",
            &bad,
            "--health-timeout",
            "20s",
        ])
        .unwrap();
    assert_rolled_back(&env, &run, &name, &old_id, port, &before, CRASH_LOG_LINE);
    assert!(
        run.out.elapsed < Duration::from_secs(19),
        "a container that exits at once should fail health before the timeout: {:?}",
        run.out.elapsed
    );
}

#[test]
fn an_image_that_never_becomes_healthy_is_rolled_back() {
    let env = DeployEnv::start("rb-never").unwrap();
    let (name, old_id, port) = v1_container(&env, "web");
    let before = config_fingerprint(&inspect(&name).unwrap());
    let bad = Fixture::NeverHealthy.image().unwrap();
    let run = env
        .deploy(&[
            "--container",
            &name,
            "--image",
            &bad,
            "--health-timeout",
            "10s",
        ])
        .unwrap();
    let shown = assert_rolled_back(
        &env,
        &run,
        &name,
        &old_id,
        port,
        &before,
        "app starting serving on 8080",
    );
    let err = shown["outcome"]["containers"][0]["error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        err.contains("--health-timeout"),
        "the health timeout's error should name --health-timeout: {err}"
    );
    assert!(
        run.out.elapsed >= Duration::from_secs(10),
        "rolled back before the 10 s health timeout: {:?}",
        run.out.elapsed
    );
}

#[test]
fn an_image_whose_healthcheck_reports_unhealthy_is_rolled_back() {
    let env = DeployEnv::start("rb-sick").unwrap();
    let (name, old_id, port) = v1_container(&env, "web");
    let before = config_fingerprint(&inspect(&name).unwrap());
    let bad = Fixture::Unhealthy.image().unwrap();
    let run = env
        .deploy(&[
            "--container",
            &name,
            "--image",
            &bad,
            "--health-timeout",
            "30s",
        ])
        .unwrap();
    let shown = assert_rolled_back(
        &env,
        &run,
        &name,
        &old_id,
        port,
        &before,
        "app sick serving on 8080",
    );
    let err = shown["outcome"]["containers"][0]["error"]
        .as_str()
        .unwrap_or_default()
        .to_lowercase();
    assert!(err.contains("unhealthy"), "{err}");
    assert!(
        run.out.elapsed < Duration::from_secs(25),
        "an unhealthy container should fail before the timeout: {:?}",
        run.out.elapsed
    );
}

#[test]
fn keep_previous_then_rollback_brings_v1_back() {
    let env = DeployEnv::start("rb-keep").unwrap();
    let (name, old_id, port) = v1_container(&env, "web");
    let before = config_fingerprint(&inspect(&name).unwrap());
    let v2 = Fixture::V2.image().unwrap();
    let run = env
        .deploy(&["--container", &name, "--image", &v2, "--keep-previous"])
        .unwrap();
    assert!(run.out.success(), "{}\n{}", run.describe(), env.logs());
    wait_http(port, "version 2 mode custom", Duration::from_secs(10)).unwrap();
    let new_id = inspect(&name).unwrap()["Id"].as_str().unwrap().to_string();
    let previous = format!("{name}-nd-previous");
    let prev = inspect(&previous).unwrap();
    assert_eq!(
        prev["Id"],
        old_id.as_str(),
        "the kept container is not the old one"
    );
    assert_eq!(prev["State"]["Running"], false, "{}", prev["State"]);
    assert_eq!(
        prev["Config"]["Image"],
        Fixture::V1.image().unwrap().as_str()
    );

    let out = env
        .hub
        .cli(&[
            "agent",
            "rollback",
            "--server",
            env.server(),
            "--container",
            &name,
        ])
        .unwrap();
    assert!(out.success(), "{}\n{}", out.describe(), env.logs());
    let now = inspect(&name).unwrap();
    assert_eq!(
        now["Id"],
        old_id.as_str(),
        "{name} is not the v1 container again"
    );
    assert_eq!(now["State"]["Running"], true, "{}", now["State"]);
    assert_eq!(
        config_fingerprint(&now),
        before,
        "the configuration changed"
    );
    wait_http(port, "version 1 mode custom", Duration::from_secs(10)).unwrap();
    // The replaced v2 container is gone: a rollback goes back, not forth.
    assert!(!exists(&new_id), "the replaced v2 container is still there");
    assert!(!exists(&previous), "{previous} is still there");
    assert!(
        out.stdout.contains("the kept container swapped back in"),
        "{}",
        out.describe()
    );
}
