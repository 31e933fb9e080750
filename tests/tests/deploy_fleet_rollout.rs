#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Fleet rollouts: every target is checked online before the first change.
//! With one of two agents offline the deploy is refused, naming it, and
//! nothing changes; with `--skip-offline` the online one is updated.
//! `--max-parallel 0` is refused. `--canary SELECTOR` deploys those targets
//! first (and watches them for `--canary-wait`), the rest after. Ctrl-C
//! names the deploys still running and the hub finishes them.

use std::time::Duration;

use nextdeploy_tests::agent::{wait_offline, wait_online};
use nextdeploy_tests::deploy::{deploy_as, inspect, DeployEnv, Fixture};
use nextdeploy_tests::process::{send_signal, Streamer};

/// Two agents (fr-a1 `role=web`, fr-a2 `role=web,ring=canary`), each seeing
/// one v1 container: (agent, container name, container id).
fn two_agents(env: &mut DeployEnv) -> Vec<(String, String, String)> {
    let v1 = Fixture::V1.image().unwrap();
    let mut out = Vec::new();
    for (i, (agent, labels)) in [("fr-a1", "role=web"), ("fr-a2", "role=web,ring=canary")]
        .iter()
        .enumerate()
    {
        let scope = format!("nextdeploy.agent={}-{agent}", env.names.prefix);
        env.add_agent(agent, labels, &scope).unwrap();
        let (name, id) = env
            .run(&format!("web{}", i + 1), &v1, &["--label", &scope])
            .unwrap();
        out.push((agent.to_string(), name, id));
    }
    out
}

fn fleet(env: &DeployEnv, extra: &[&str]) -> nextdeploy_tests::deploy::DeployRun {
    let v2 = Fixture::V2.image().unwrap();
    let mut args = vec!["--selector", "role=web", "--image", &v2];
    args.extend(extra);
    deploy_as(&env.hub, &env.hub.admin_token, &args).unwrap()
}

#[test]
fn an_offline_target_refuses_the_fleet_deploy_unless_skip_offline() {
    let mut env = DeployEnv::start("fr-off").unwrap();
    let v2 = Fixture::V2.image().unwrap();
    let c = two_agents(&mut env);
    env.agents[1].kill();
    wait_offline(&env.hub, &["fr-a2"], Duration::from_secs(20)).unwrap();

    // Refused before any change, naming the offline agent.
    let run = fleet(&env, &[]);
    assert!(!run.out.success(), "{}", run.describe());
    let text = format!("{}{}", run.out.stdout, run.out.stderr);
    assert!(
        text.contains("fr-a2") && text.contains("offline"),
        "{}",
        run.describe()
    );
    assert!(text.contains("--skip-offline"), "{}", run.describe());
    for (_, name, id) in &c {
        assert_eq!(
            inspect(name).unwrap()["Id"],
            id.as_str(),
            "{name} was touched"
        );
    }
    let list = env.hub.cli_json(&["deploys", "list"]).unwrap();
    assert_eq!(list, serde_json::json!([]), "{list}");

    // --max-parallel 0: refused with a clear message.
    let run = fleet(&env, &["--skip-offline", "--max-parallel", "0"]);
    assert!(!run.out.success(), "{}", run.describe());
    assert!(
        run.out.stderr.contains("max_parallel must be 1 to 100"),
        "{}",
        run.describe()
    );

    // --skip-offline: the online one is updated, the offline one skipped.
    let run = fleet(&env, &["--skip-offline"]);
    assert!(run.out.success(), "{}\n{}", run.describe(), env.logs());
    assert_eq!(
        run.doc["updated"],
        serde_json::json!(["fr-a1"]),
        "{}",
        run.doc
    );
    assert_eq!(
        run.doc["skipped"],
        serde_json::json!(["fr-a2"]),
        "{}",
        run.doc
    );
    assert_eq!(inspect(&c[0].1).unwrap()["Config"]["Image"], v2.as_str());
    assert_eq!(inspect(&c[1].1).unwrap()["Id"], c[1].2.as_str());
}

#[test]
fn canaries_go_first_and_the_rest_after() {
    let mut env = DeployEnv::start("fr-can").unwrap();
    let v2 = Fixture::V2.image().unwrap();
    let c = two_agents(&mut env);
    wait_online(&env.hub, &["fr-a1", "fr-a2"], Duration::from_secs(20)).unwrap();
    let run = fleet(&env, &["--canary", "ring=canary", "--canary-wait", "2s"]);
    assert!(run.out.success(), "{}\n{}", run.describe(), env.logs());
    assert_eq!(
        run.doc["canaries"],
        serde_json::json!(["fr-a2"]),
        "{}",
        run.doc
    );
    let order: Vec<&str> = run.doc["deploys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["server"].as_str().unwrap())
        .collect();
    assert_eq!(order, vec!["fr-a2", "fr-a1"], "{}", run.doc);
    // Every progress line of the canary comes before the first of the rest.
    let servers: Vec<&str> = run
        .progress()
        .iter()
        .filter_map(|p| p["server"].as_str())
        .collect();
    let last_canary = servers.iter().rposition(|s| *s == "fr-a2").unwrap();
    let first_rest = servers.iter().position(|s| *s == "fr-a1").unwrap();
    assert!(last_canary < first_rest, "{servers:?}");
    // The canary was watched for its health window; the rest were not.
    let watched: Vec<&str> = run
        .progress()
        .iter()
        .filter(|p| p["step"] == "canary_wait" && p["status"] == "done")
        .filter_map(|p| p["server"].as_str())
        .collect();
    assert_eq!(watched, vec!["fr-a2"], "{}", run.describe());
    for (_, name, _) in &c {
        assert_eq!(inspect(name).unwrap()["Config"]["Image"], v2.as_str());
    }
    // A canary selector that matches no target is refused before any change.
    let run = fleet(&env, &["--canary", "ring=nowhere"]);
    assert!(!run.out.success(), "{}", run.describe());
    assert!(
        run.out.stderr.contains("matches none"),
        "{}",
        run.describe()
    );
}

/// Start `agent deploy --selector role=web --image v2 --max-parallel N`
/// (table output); the CLI and (agent, deploy id) for each `accepted` line
/// of `agents`.
fn fleet_stream(
    env: &DeployEnv,
    parallel: &str,
    agents: &[&str],
) -> (Streamer, Vec<(String, String)>) {
    let v2 = Fixture::V2.image().unwrap();
    let mut cmd = env.hub.cli_command(&env.hub.admin_token).unwrap();
    cmd.args([
        "agent",
        "deploy",
        "--selector",
        "role=web",
        "--image",
        &v2,
        "--max-parallel",
        parallel,
    ]);
    let mut cli = Streamer::spawn(cmd).unwrap();
    let mut ids = Vec::new();
    for agent in agents {
        let line = cli
            .wait_line(
                &format!("{agent}'s accepted line"),
                Duration::from_secs(30),
                |l| l.text().contains(&format!(" on {agent}: recorded")),
            )
            .unwrap()
            .text();
        let id = line
            .split("] deploy ")
            .nth(1)
            .and_then(|t| t.split_whitespace().next())
            .unwrap()
            .to_string();
        ids.push((agent.to_string(), id));
    }
    (cli, ids)
}

/// SIGINT to the CLI; its exit status (bounded wait) and stderr.
fn interrupt(cli: &mut Streamer) -> (std::process::ExitStatus, String) {
    send_signal(cli.pid().unwrap(), "INT").unwrap();
    let status = nextdeploy_tests::wait_until(
        "the CLI to exit after Ctrl-C",
        Duration::from_secs(10),
        Duration::from_millis(50),
        || Ok(cli.exit_status()),
    )
    .unwrap();
    (status, cli.stderr_text())
}

fn follow_line(agent: &str, id: &str) -> String {
    format!("{agent}: deploy {id} still finishing; follow it with: nextdeploy deploys show {id} --follow")
}

/// Ctrl-C during a fleet rollout: the CLI says which deploy still runs on
/// which server and how to follow each, and exits 130; the hub finishes
/// every deploy already started (recorded `succeeded`, the containers on v2).
#[test]
fn ctrl_c_names_what_still_runs_where_and_the_hub_finishes_it() {
    let mut env = DeployEnv::start("fr-int").unwrap();
    let v2 = Fixture::V2.image().unwrap();
    let c = two_agents(&mut env);
    wait_online(&env.hub, &["fr-a1", "fr-a2"], Duration::from_secs(20)).unwrap();
    // No healthcheck: each new container must stay up 5 s (the settle
    // window), the slow health gate during which the CLI is interrupted.
    let (mut cli, ids) = fleet_stream(&env, "2", &["fr-a1", "fr-a2"]);
    for agent in ["fr-a1", "fr-a2"] {
        cli.wait_line(
            &format!("{agent}'s health wait"),
            Duration::from_secs(30),
            |l| l.text().contains(agent) && l.text().contains("health started"),
        )
        .unwrap();
    }
    let (status, err) = interrupt(&mut cli);
    assert_eq!(status.code(), Some(130), "{}", cli.describe());
    for (agent, id) in &ids {
        let want = follow_line(agent, id);
        assert!(err.contains(&want), "no {want:?} in\n{}", cli.describe());
    }
    // The hub carries both deploys to their end.
    for (_, id) in &ids {
        let shown = env
            .wait_status(id, "succeeded", Duration::from_secs(40))
            .unwrap();
        assert_eq!(shown["outcome"]["outcome"], "succeeded", "{shown}");
    }
    for (_, name, _) in &c {
        assert_eq!(inspect(name).unwrap()["Config"]["Image"], v2.as_str());
    }
}

/// One server at a time: Ctrl-C while the second runs names only that one
/// (the first said `finished`), and the hub still finishes it.
#[test]
fn ctrl_c_names_only_the_deploys_not_finished() {
    let mut env = DeployEnv::start("fr-int1").unwrap();
    let _ = two_agents(&mut env);
    wait_online(&env.hub, &["fr-a1", "fr-a2"], Duration::from_secs(20)).unwrap();
    let (mut cli, ids) = fleet_stream(&env, "1", &["fr-a1", "fr-a2"]);
    cli.wait_line("fr-a1's end", Duration::from_secs(5), |l| {
        l.text().contains(&format!(
            "deploy {} on fr-a1: finished: succeeded",
            ids[0].1
        ))
    })
    .unwrap();
    cli.wait_line("fr-a2's health wait", Duration::from_secs(30), |l| {
        l.text().contains("fr-a2") && l.text().contains("health started")
    })
    .unwrap();
    let (status, err) = interrupt(&mut cli);
    assert_eq!(status.code(), Some(130), "{}", cli.describe());
    assert!(
        err.contains(&follow_line("fr-a2", &ids[1].1)),
        "{}",
        cli.describe()
    );
    assert!(
        !err.contains(&ids[0].1),
        "the finished fr-a1 deploy named\n{}",
        cli.describe()
    );
    env.wait_status(&ids[1].1, "succeeded", Duration::from_secs(40))
        .unwrap();
}
