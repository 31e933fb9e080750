#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Fleet rollouts: every target is checked online before the first change.
//! With one of two agents offline the deploy is refused, naming it, and
//! nothing changes; with `--skip-offline` the online one is updated.
//! `--max-parallel 0` is refused. `--canary SELECTOR` deploys those targets
//! first (and watches them for `--canary-wait`), the rest after.

use std::time::Duration;

use nextdeploy_tests::agent::{wait_offline, wait_online};
use nextdeploy_tests::deploy::{deploy_as, inspect, DeployEnv, Fixture};

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
