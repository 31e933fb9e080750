#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The CLI where a docker user's hands expect it: the container as a
//! positional argument, docker's short flags, several containers per
//! lifecycle call, docker's `ps` columns and `-q`, flags that do not apply
//! refused, and clear messages for a bad `--tail` and a missing target.

use nextdeploy_tests::docker::*;
use nextdeploy_tests::json;
use serde_json::Value;

#[test]
fn positional_containers_short_flags_and_docker_columns() {
    let env = DockerEnv::start("shape", &[]).unwrap();
    let a = env.run("a", &[], &["idle"]).unwrap();
    let b = env.run("b", &["-p", "127.0.0.1::8080"], &["idle"]).unwrap();

    // ps: docker's columns, the published port as docker prints it, and -q.
    let out = env.agent_cli("ps", &["-a"]).unwrap().ok().unwrap();
    let header = out.stdout.lines().next().unwrap_or("").to_string();
    for col in [
        "CONTAINER ID",
        "IMAGE",
        "COMMAND",
        "CREATED",
        "STATUS",
        "PORTS",
        "NAMES",
    ] {
        assert!(header.contains(col), "ps header lacks {col}: {header}");
    }
    let port = docker(&["port", &b.name, "8080/tcp"]).unwrap();
    let host_port = port.trim().rsplit(':').next().unwrap().to_string();
    let row_b = out
        .stdout
        .lines()
        .find(|l| l.contains(&b.name))
        .unwrap_or_else(|| panic!("no row for {}: {}", b.name, out.stdout));
    assert!(
        row_b.contains(&format!("127.0.0.1:{host_port}->8080/tcp")),
        "{row_b}"
    );
    let rows = env.agent_json("ps", &["-a"]).unwrap();
    let rb = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == json!(b.name))
        .unwrap();
    assert_eq!(
        rb["command"].as_str().unwrap(),
        docker(&["inspect", "-f", "{{.Path}} {{join .Args \" \"}}", &b.name])
            .unwrap()
            .trim(),
        "{rb}"
    );
    let quiet = env.agent_cli("ps", &["-a", "-q"]).unwrap().ok().unwrap();
    let ids: Vec<&str> = quiet.stdout.lines().collect();
    assert!(
        ids.contains(&&a.id[..12]) && ids.contains(&&b.id[..12]),
        "{ids:?}"
    );
    assert!(ids.iter().all(|l| l.len() == 12), "{ids:?}");

    // Several containers per call, positional, docker's -t.
    let out = env
        .agent_cli("stop", &["-t", "5", &a.name, &b.name])
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!(
        out.stdout.lines().collect::<Vec<_>>(),
        vec![a.name.as_str(), b.name.as_str()]
    );
    assert_eq!(a.state().unwrap(), "exited");
    assert_eq!(b.state().unwrap(), "exited");
    env.agent_cli("start", &[&a.name, &b.name])
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!(a.state().unwrap(), "running");
    // One unknown among them: the others still done, a failure status, the
    // unknown one named.
    env.agent_cli("stop", &[&a.name]).unwrap().ok().unwrap();
    let out = env
        .agent_cli("start", &[&a.name, "no-such-container-xyz"])
        .unwrap()
        .failed()
        .unwrap();
    assert!(
        out.stderr.contains("no-such-container-xyz"),
        "{}",
        out.describe()
    );
    assert_eq!(a.state().unwrap(), "running");

    // kill -s, positional.
    let v = env.agent_json("kill", &["-s", "SIGKILL", &b.name]).unwrap();
    assert_eq!(v["action"], json!("kill"), "{v}");

    // logs with the container positional and -n.
    let out = env
        .agent_cli("logs", &[&a.name, "-n", "1"])
        .unwrap()
        .ok()
        .unwrap();
    assert!(out.stdout.lines().count() <= 1, "{}", out.describe());
    // inspect positional, --container still accepted.
    let doc = env.agent_json("inspect", &[&a.name]).unwrap();
    assert_eq!(doc["Id"], json!(a.id));
    let doc = env
        .agent_json("inspect", &["--container", &a.name])
        .unwrap();
    assert_eq!(doc["Id"], json!(a.id));

    // Flags that do not apply are refused, not ignored.
    let out = env
        .agent_cli("start", &["--signal", "KILL", &a.name])
        .unwrap()
        .failed()
        .unwrap();
    assert!(out.stderr.contains("--signal"), "{}", out.describe());
    let out = env
        .agent_cli("kill", &["--timeout", "5", &a.name])
        .unwrap()
        .failed()
        .unwrap();
    assert!(out.stderr.contains("--timeout"), "{}", out.describe());
    // A negative --tail: a clear message, not a parser's "unexpected argument".
    let out = env
        .agent_cli("logs", &[&a.name, "--tail", "-5"])
        .unwrap()
        .failed()
        .unwrap();
    assert!(
        out.stderr.contains("--tail -5") && out.stderr.contains("number of lines"),
        "{}",
        out.describe()
    );
}

#[test]
fn ping_takes_a_selector_and_info_names_both_targets() {
    let env = DockerEnv::start("shape-ping", &[]).unwrap();
    // The Docker suites' agents carry `suite=docker,test=<test>`.
    let sel = "test=shape-ping".to_string();
    let out = env
        .hub
        .cli(&[
            "agent",
            "ping",
            "--selector",
            &sel,
            "-c",
            "2",
            "--interval-ms",
            "10",
        ])
        .unwrap()
        .ok()
        .unwrap();
    assert!(
        out.stdout
            .contains(&format!("{}: seq=2 hub<->agent", env.server())),
        "{}",
        out.describe()
    );
    let v = env
        .hub
        .cli_json(&["agent", "ping", "--selector", &sel, "-c", "1"])
        .unwrap();
    assert!(
        v.as_array()
            .unwrap()
            .iter()
            .any(|r| r["server"] == json!(env.server())),
        "{v}"
    );

    let out = env.hub.cli(&["agent", "info"]).unwrap().failed().unwrap();
    assert!(
        out.stderr.contains("--server") && out.stderr.contains("--selector"),
        "{}",
        out.describe()
    );
}

#[test]
fn status_shows_image_and_restarts_and_an_empty_selector_lists_nothing() {
    let env = DockerEnv::start("shape-status", &[]).unwrap();
    let c = env.run("web", &[], &["idle"]).unwrap();
    // The first snapshot comes within the agent's health interval.
    let mut table = String::new();
    wait_until_ok(
        "a status row for the container",
        std::time::Duration::from_secs(30),
        std::time::Duration::from_millis(500),
        || {
            let out = env
                .hub
                .cli(&["agent", "status", "--server", env.server()])?
                .ok()?;
            table = out.stdout;
            Ok(table.contains(&c.name))
        },
    )
    .unwrap();
    let header = table.lines().next().unwrap_or("");
    for col in [
        "SERVER",
        "CONTAINER",
        "IMAGE",
        "STATE",
        "RESTARTS",
        "UPTIME",
    ] {
        assert!(header.contains(col), "status header lacks {col}: {header}");
    }
    let row = table.lines().find(|l| l.contains(&c.name)).unwrap();
    assert!(row.contains(&env.image), "{row}");
    // UPTIME, the last column: an age such as 3s or 2m.
    let uptime = row.split_whitespace().last().unwrap_or("");
    assert!(
        uptime.len() >= 2
            && uptime[..uptime.len() - 1]
                .chars()
                .all(|ch| ch.is_ascii_digit())
            && uptime.ends_with(['s', 'm', 'h', 'd']),
        "{row}"
    );
    // JSON: the start time, RFC 3339, as docker inspect has it.
    let v = env
        .hub
        .cli_json(&["agent", "status", "--server", env.server()])
        .unwrap();
    let ours = v[0]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == json!(c.name))
        .unwrap()
        .clone();
    let started = parse_rfc3339(ours["started_at"].as_str().unwrap_or("")).unwrap();
    let docker_started = parse_rfc3339(&c.inspect("{{.State.StartedAt}}").unwrap()).unwrap();
    assert!((started - docker_started).abs() < 1.5, "{ours}");
    // A selector matching no agent: an empty listing and success, not an error.
    let out = env
        .hub
        .cli(&["agent", "status", "--selector", "nobody=here"])
        .unwrap()
        .ok()
        .unwrap();
    assert!(!out.stdout.contains(&c.name), "{}", out.describe());
    // An action on it fails, saying so.
    let out = env
        .hub
        .cli(&["agent", "info", "--selector", "nobody=here"])
        .unwrap()
        .failed()
        .unwrap();
    assert!(out.stderr.contains("matches"), "{}", out.describe());
}

#[test]
fn a_deploys_own_containers_are_never_suggested() {
    let env = DockerEnv::start("shape-hint", &[]).unwrap();
    let web = env.run("web", &[], &["idle"]).unwrap();
    let kept = env.create("web-nd-previous", &[], &["idle"]).unwrap();
    let typo = format!("{}-nd-previou", web.name);
    let (code, msg) = env.ws_error("inspect", json!({"container": typo})).unwrap();
    assert_eq!(code, "no_such_container", "{msg}");
    assert!(
        msg.contains(&web.name),
        "the real container is not suggested: {msg}"
    );
    assert!(
        !msg.contains(&kept.name),
        "a deploy's own container is suggested: {msg}"
    );
}

/// Containers whose ids start with the same hex digit: created until two of
/// this test's share one (17 make it certain).
fn two_with_one_first_digit(env: &DockerEnv) -> (Vec<Container>, String) {
    let mut made: Vec<Container> = Vec::new();
    for i in 0..17 {
        let c = env.create(&format!("twin{i}"), &[], &["idle"]).unwrap();
        let digit = c.id[..1].to_string();
        made.push(c);
        if made.iter().filter(|m| m.id.starts_with(&digit)).count() == 2 {
            return (made, digit);
        }
    }
    unreachable!("17 ids over 16 digits always share one")
}

#[test]
fn a_container_is_its_name_its_id_or_a_unique_id_prefix_everywhere() {
    let env = DockerEnv::start("shape-ids", &[("health_interval_s", "1")]).unwrap();
    let c = env.run("web", &[], &["idle"]).unwrap();
    let prefix = &c.id[..12];
    // history: answered by the hub from its store, by name, id or prefix.
    for key in [c.name.as_str(), c.id.as_str(), prefix] {
        let mut last = Value::Null;
        wait_until_ok(
            "history by name, id and prefix",
            std::time::Duration::from_secs(30),
            std::time::Duration::from_millis(500),
            || {
                let out = env.agent_cli("history", &["--container", key, "-o", "json"])?;
                last = if out.success() {
                    out.json()?
                } else {
                    json!(out.stderr)
                };
                Ok(last["points"].as_array().is_some_and(|p| !p.is_empty()))
            },
        )
        .unwrap_or_else(|e| panic!("{key}: {e:#}: {last}"));
        assert_eq!(last["container"], json!(c.name), "{key}: {last}");
    }
    // The agent's actions, by full id and by prefix.
    let doc = env.agent_json("inspect", &[prefix]).unwrap();
    assert_eq!(doc["Id"], json!(c.id));
    env.agent_cli("logs", &[prefix, "-n", "1"])
        .unwrap()
        .ok()
        .unwrap();
    let s = env.agent_json("stats", &[prefix, "--no-stream"]).unwrap();
    assert_eq!(s[0]["name"], json!(c.name), "{s}");
    // events --container by prefix (the hub's filter): a kill by prefix is
    // seen; repeated until the stream has subscribed.
    let mut ev = env
        .agent_stream("events", &["--container", prefix, "-o", "json"])
        .unwrap();
    wait_until_ok(
        "a die event for the container named by prefix",
        std::time::Duration::from_secs(30),
        std::time::Duration::from_millis(10),
        || {
            env.agent_cli("start", &[prefix])?.ok()?;
            env.agent_cli("kill", &[prefix])?.ok()?;
            let wait = std::time::Duration::from_secs(2);
            Ok(ev
                .wait_json("die", wait, |v| {
                    v["action"] == "die" && v["container_id"] == json!(c.id)
                })
                .is_ok())
        },
    )
    .unwrap();
    env.agent_cli("start", &[prefix]).unwrap().ok().unwrap();
    assert_eq!(c.state().unwrap(), "running");
    env.agent_cli("stop", &["-t", "1", &c.id])
        .unwrap()
        .ok()
        .unwrap();
    assert_eq!(c.state().unwrap(), "exited");

    // A prefix matching two: refused, both named, "not found" (3), by the
    // agent (inspect) and by the hub (history) alike.
    let (twins, digit) = two_with_one_first_digit(&env);
    let pair: Vec<&str> = twins
        .iter()
        .filter(|t| t.id.starts_with(&digit))
        .map(|t| t.name.as_str())
        .collect();
    let out = env.agent_cli("inspect", &[&digit]).unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", out.describe());
    assert!(
        pair.iter().all(|n| out.stderr.contains(n)),
        "{}",
        out.describe()
    );
    let mut last = String::new();
    wait_until_ok(
        "history refusing an ambiguous prefix",
        std::time::Duration::from_secs(15),
        std::time::Duration::from_millis(300),
        || {
            let out = env.agent_cli("history", &["--container", &digit, "-o", "json"])?;
            last = out.describe();
            Ok(out.status.code() == Some(3)
                && out.stderr.contains("ambiguous_container")
                && pair.iter().all(|n| out.stderr.contains(n)))
        },
    )
    .unwrap_or_else(|e| panic!("{e:#}\n{last}"));
}
