#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `agent start|stop|restart|kill` through hub and agent do what docker does;
//! a viewer may not, an operator may.

use std::time::Duration;

use nextdeploy_tests::docker::*;
use nextdeploy_tests::json;

fn started_at(c: &Container) -> String {
    c.inspect("{{.State.StartedAt}}").unwrap()
}

#[test]
fn restart_stop_start_kill_do_what_docker_does() {
    let env = DockerEnv::start("life", &[]).unwrap();
    let c = env.run("web", &[], &["idle"]).unwrap();
    assert_eq!(c.state().unwrap(), "running");
    let before = started_at(&c);

    // restart: a new StartedAt, still running; the agent's inspect agrees.
    let v = env
        .agent_json("restart", &["--container", &c.name, "--timeout", "5"])
        .unwrap();
    assert_eq!(v["id"], json!(c.id), "{v}");
    assert_eq!(v["name"], json!(c.name), "{v}");
    assert_eq!(v["action"], json!("restart"), "{v}");
    let after = started_at(&c);
    assert_ne!(after, before, "restart did not change .State.StartedAt");
    assert!(parse_rfc3339(&after).unwrap() > parse_rfc3339(&before).unwrap());
    assert_eq!(c.state().unwrap(), "running");
    let doc = env
        .agent_json("inspect", &["--container", &c.name])
        .unwrap();
    assert_eq!(doc["State"]["StartedAt"], json!(after));

    // stop: exited (the fixture exits 0 on SIGTERM).
    let v = env
        .agent_json("stop", &["--container", &c.name, "--timeout", "5"])
        .unwrap();
    assert_eq!(v["action"], json!("stop"), "{v}");
    assert_eq!(c.state().unwrap(), "exited");
    assert_eq!(c.inspect("{{.State.ExitCode}}").unwrap(), "0");

    // start: running again, by id prefix this time.
    let v = env
        .agent_json("start", &["--container", &c.id[..12]])
        .unwrap();
    assert_eq!(v["action"], json!("start"), "{v}");
    assert_eq!(v["name"], json!(c.name), "{v}");
    assert_eq!(c.state().unwrap(), "running");
    assert_ne!(started_at(&c), after);

    // kill with SIGKILL: exit code 137, as docker kill -s SIGKILL gives.
    let v = env
        .agent_json("kill", &["--container", &c.name, "--signal", "SIGKILL"])
        .unwrap();
    assert_eq!(v["action"], json!("kill"), "{v}");
    wait_until_ok(
        "the killed container to be exited",
        Duration::from_secs(10),
        Duration::from_millis(50),
        || Ok(c.state()? == "exited"),
    )
    .unwrap();
    assert_eq!(c.inspect("{{.State.ExitCode}}").unwrap(), "137");

    // kill with another signal is delivered as that signal: the fixture
    // exits 0 on SIGTERM.
    env.agent_json("start", &["--container", &c.name]).unwrap();
    env.agent_json("kill", &["--container", &c.name, "--signal", "TERM"])
        .unwrap();
    wait_until_ok(
        "the TERM-killed container to be exited",
        Duration::from_secs(10),
        Duration::from_millis(50),
        || Ok(c.state()? == "exited"),
    )
    .unwrap();
    assert_eq!(c.inspect("{{.State.ExitCode}}").unwrap(), "0");
}

#[test]
fn a_viewer_may_not_act_and_an_operator_may() {
    let env = DockerEnv::start("life-roles", &[]).unwrap();
    let c = env.run("web", &[], &["idle"]).unwrap();
    let token = |role: &str| {
        let v = env
            .hub
            .cli_json(&["token", "create", "--role", role, "--name", role])
            .unwrap();
        v["token"].as_str().unwrap().to_string()
    };
    let viewer = token("viewer");
    let operator = token("operator");
    let before = started_at(&c);

    for act in ["restart", "stop", "kill", "start"] {
        let out = env
            .hub
            .cli_as(
                &viewer,
                &[
                    "agent",
                    act,
                    "--server",
                    env.server(),
                    "--container",
                    &c.name,
                ],
            )
            .unwrap()
            .failed()
            .unwrap();
        let msg = out.stderr.to_lowercase();
        assert!(
            msg.contains("permission")
                || msg.contains("forbidden")
                || msg.contains("role")
                || msg.contains("operator"),
            "a viewer's {act} should fail with a permission error: {}",
            out.describe()
        );
        let r = ws_request(
            &env.hub,
            &viewer,
            json!({"id": 1, "action": act, "server": env.server(),
                   "payload": {"container": c.name}}),
        )
        .unwrap();
        assert_eq!(r["type"], json!("error"), "{r}");
        assert_eq!(r["data"]["code"], json!("forbidden"), "{r}");
    }
    assert_eq!(
        started_at(&c),
        before,
        "a viewer's request changed the container"
    );
    assert_eq!(c.state().unwrap(), "running");

    // A viewer may still read.
    let v = env
        .hub
        .cli_json_as(
            &viewer,
            &[
                "agent",
                "inspect",
                "--server",
                env.server(),
                "--container",
                &c.name,
            ],
        )
        .unwrap();
    assert_eq!(v["Id"], json!(c.id));

    // An operator may act.
    let v = env
        .hub
        .cli_json_as(
            &operator,
            &[
                "agent",
                "restart",
                "--server",
                env.server(),
                "--container",
                &c.name,
                "--timeout",
                "5",
            ],
        )
        .unwrap();
    assert_eq!(v["action"], json!("restart"), "{v}");
    assert_ne!(started_at(&c), before);
}
