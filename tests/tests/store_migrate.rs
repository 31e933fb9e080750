#![allow(clippy::unwrap_used, clippy::expect_used)]
//! One hub on SQLite becomes a hub on PostgreSQL: a hub with an enrolled
//! agent, a container with history and a deploy is stopped; `hub migrate`
//! copies its store into an empty PostgreSQL database (printing rows per
//! table, refusing a second run into the now non-empty target); the hub
//! starts again with `--store postgres://...` on the same data dir (host key)
//! and ports: the agent reconnects without re-enrolment, and `agent ps`,
//! `agent history` and `deploys list` show what was there. The store's
//! password appears in no output or log line.

use std::process::Command;
use std::time::Duration;

use nextdeploy_tests::docker::DockerEnv;
use nextdeploy_tests::postgres::Postgres;
use nextdeploy_tests::*;

const PASSWORD: &str = "pw-never-shown";

fn history_points(env: &DockerEnv, container: &str) -> usize {
    let out = env
        .agent_cli("history", &["--container", container, "-o", "json"])
        .unwrap();
    if !out.success() {
        return 0;
    }
    out.json().unwrap()["points"]
        .as_array()
        .map_or(0, |p| p.len())
}

#[test]
fn a_sqlite_hub_migrates_to_postgresql_and_its_agent_reconnects() {
    let pg = Postgres::start();
    // Trust authentication: the password is not checked, only carried.
    let url = pg
        .create_db()
        .replace("postgres@", &format!("postgres:{PASSWORD}@"));
    let mut env = DockerEnv::start("pgmig", &[("health_interval_s", "1")]).unwrap();
    let web = env.run("web", &[], &[]).unwrap();
    let name = web.name.clone();
    wait_until(
        "history",
        Duration::from_secs(30),
        Duration::from_millis(500),
        || Ok((history_points(&env, &name) > 0).then_some(())),
    )
    .unwrap();
    // A deploy that fails (an image that is not there, never pulled): its
    // record is what matters here.
    let out = env
        .agent_cli(
            "deploy",
            &[
                "--container",
                &name,
                "--image",
                "nd-no-such-image:1",
                "--pull",
                "never",
            ],
        )
        .unwrap();
    assert!(!out.success(), "{}", out.describe());
    let deploys = env.hub.cli_json(&["deploys", "list"]).unwrap();
    let before = deploys.as_array().map(Vec::len).unwrap_or(0);
    assert_eq!(before, 1, "{deploys}");

    env.hub.signal("TERM").unwrap();
    env.hub.wait_exit(Duration::from_secs(20)).unwrap();
    let db = env.hub.data_dir.join("nextdeploy.db");
    let migrate = || {
        let mut cmd = Command::new(hub_bin().unwrap());
        cmd.args([
            "hub",
            "migrate",
            "--from",
            db.to_str().unwrap(),
            "--to",
            &url,
        ]);
        run_bounded(cmd, Duration::from_secs(60)).unwrap()
    };
    let out = migrate();
    assert!(out.success(), "{}", out.describe());
    for line in ["agents: 1", "deploys: 1", "api_tokens: 1", "join_tokens: 1"] {
        assert!(out.stdout.contains(line), "{line}\n{}", out.describe());
    }
    assert!(!out.stdout.contains("health_rows: 0") || !out.stdout.contains("health_blocks: 0"));
    let shown = |o: &Output| format!("{}{}", o.stdout, o.stderr);
    assert!(!shown(&out).contains(PASSWORD), "{}", out.describe());
    let again = migrate();
    assert!(
        !again.success() && again.stderr.contains("not empty"),
        "{}",
        again.describe()
    );
    assert!(!shown(&again).contains(PASSWORD));

    env.hub.restart_with(&["--store", &url]).unwrap();
    wait_online(&env.hub, &[env.server()], Duration::from_secs(65)).unwrap();
    let ps = env.agent_cli("ps", &["-o", "json"]).unwrap();
    assert!(
        ps.success() && ps.stdout.contains(&name),
        "{}",
        ps.describe()
    );
    assert!(history_points(&env, &name) > 0, "history lost");
    let deploys = env.hub.cli_json(&["deploys", "list"]).unwrap();
    assert_eq!(deploys.as_array().map(Vec::len), Some(1), "{deploys}");
    let agents = env.hub.agent_list().unwrap();
    assert_eq!(agents.len(), 1, "enrolled once: {agents:?}");
    assert!(env.hub.log_text().contains("store: PostgreSQL"));
    // The harness's own header line names the command; the hub's lines never.
    let log = env.hub.log_text();
    let leaked: Vec<&str> = log
        .lines()
        .filter(|l| !l.starts_with("=== start") && l.contains(PASSWORD))
        .collect();
    assert!(
        leaked.is_empty(),
        "the password is in the hub's log: {leaked:?}"
    );
}

/// `--store` naming a server that does not answer: the hub exits with an
/// error naming the URL without its password.
#[test]
fn a_hub_with_an_unreachable_store_says_which_without_the_password() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let dir = TempDir::new("pg-unreachable").unwrap();
    let url = format!("postgres://nd:{PASSWORD}@127.0.0.1:{port}/nextdeploy");
    let mut cmd = Command::new(hub_bin().unwrap());
    cmd.args(["hub", "--data-dir", dir.path().join("d").to_str().unwrap()])
        .args([
            "--ssh-listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
        ])
        .args(["--store", &url]);
    let out = run_bounded(cmd, Duration::from_secs(30)).unwrap();
    assert!(!out.success(), "{}", out.describe());
    assert!(
        out.stderr
            .contains(&format!("postgres://nd:****@127.0.0.1:{port}/nextdeploy")),
        "{}",
        out.describe()
    );
    assert!(!out.stderr.contains(PASSWORD), "{}", out.describe());
    assert!(
        out.stderr.contains("Connection refused"),
        "{}",
        out.describe()
    );
}
