#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The CLI as scripts use it: exit codes that tell failures apart (the
//! table of hub/src/cli/exit.rs), `events` waiting for agents that are not
//! online, selectors matching nothing, and one time format in every JSON
//! output.

use std::time::Duration;

use nextdeploy_tests::docker::{parse_rfc3339, DockerEnv, Streamer};
use nextdeploy_tests::*;
use serde_json::Value;

/// The exit code of a finished CLI run, with its output for messages.
fn code(out: &Output) -> (Option<i32>, String) {
    (out.status.code(), out.describe())
}

/// `nextdeploy <args>` as `token`, expecting exit code `want`.
fn expect_exit(hub: &Hub, token: &str, args: &[&str], want: i32) -> Output {
    let out = hub.cli_as(token, args).unwrap();
    let (got, text) = code(&out);
    assert_eq!(got, Some(want), "{args:?}\n{text}");
    out
}

#[test]
fn exit_codes_tell_failures_apart() {
    let hub = start_hub().unwrap();
    let _live = enroll_agent(&hub, "live", "team=a").unwrap();
    let jt = hub.join_token("sleeper", "team=b", "1h").unwrap();
    let _sleeper = Agent::enroll(&hub, "sleeper", &jt.token).unwrap();
    wait_online(&hub, &["live"], Duration::from_secs(20)).unwrap();
    let admin = hub.admin_token.clone();
    expect_exit(&hub, &admin, &["agent", "info", "--server", "live"], 0);

    // 2: usage, from clap and from a bad value found after parsing.
    expect_exit(&hub, &admin, &["agent", "stop", "web"], 2);
    let bad_res = ["--resolution", "2m"];
    let args = [
        &["agent", "history", "--server", "live", "--container", "x"][..],
        &bad_res,
    ]
    .concat();
    expect_exit(&hub, &admin, &args, 2);
    let out = expect_exit(
        &hub,
        &admin,
        &["agent", "logs", "--server", "live", "web", "--tail", "-5"],
        2,
    );
    assert!(out.stderr.contains("--tail -5"), "{}", out.describe());
    // 3: not found: an unknown agent, token, or a selector matching none.
    let out = expect_exit(&hub, &admin, &["agent", "info", "--server", "nobody"], 3);
    assert!(out.stderr.contains("nobody"), "{}", out.describe());
    expect_exit(&hub, &admin, &["token", "revoke", "nosuchtoken"], 3);
    let out = expect_exit(
        &hub,
        &admin,
        &["agent", "ping", "--selector", "nobody=here", "-c", "1"],
        3,
    );
    assert!(out.stderr.contains("matches"), "{}", out.describe());
    // 4: forbidden: a viewer stopping a container; a refused token.
    let v = hub
        .cli_json(&["token", "create", "--role", "viewer", "--name", "v"])
        .unwrap();
    let viewer = v["token"].as_str().unwrap().to_string();
    let out = expect_exit(
        &hub,
        &viewer,
        &["agent", "stop", "--server", "live", "web", "-o", "json"],
        4,
    );
    let err: Value = serde_json::from_str(out.stderr.trim()).unwrap();
    assert_eq!(err["error"]["code"], "forbidden", "{err}");
    let forged = "nda_000000000000_000000000000000000000000000000000000000000000000";
    expect_exit(&hub, forged, &["agent", "list"], 4);
    // 5: unreachable: an offline agent, a hub that does not answer.
    let out = expect_exit(&hub, &admin, &["agent", "info", "--server", "sleeper"], 5);
    assert!(out.stderr.contains("offline"), "{}", out.describe());
    let mut cmd = hub.cli_command(&admin).unwrap();
    cmd.args(["agent", "list"]).env(
        "NEXTDEPLOY_HUB",
        format!("http://127.0.0.1:{}", free_port().unwrap()),
    );
    let out = run_bounded(cmd, CLI_TIMEOUT).unwrap();
    assert_eq!(out.status.code(), Some(5), "{}", out.describe());
}

/// Spawn `nextdeploy agent events <args> -o json` as admin.
fn events(hub: &Hub, args: &[&str]) -> Streamer {
    let mut cmd = hub.cli_command(&hub.admin_token).unwrap();
    cmd.args(["agent", "events", "-o", "json"]).args(args);
    Streamer::spawn(cmd).unwrap()
}

/// Wait (bounded) until the streamer's stderr holds `needle`.
fn wait_stderr(s: &Streamer, needle: &str) {
    wait_until_ok(
        &format!("{needle:?} on stderr"),
        Duration::from_secs(15),
        Duration::from_millis(50),
        || Ok(s.stderr_text().contains(needle)),
    )
    .unwrap_or_else(|e| panic!("{e:#}\n{}", s.describe()));
}

#[test]
fn events_wait_for_agents_to_come_online_and_ctrl_c_exits_130() {
    let hub = start_hub().unwrap();
    let jt = hub.join_token("sleeper", "team=b", "1h").unwrap();
    let _sleeper = Agent::enroll(&hub, "sleeper", &jt.token).unwrap();

    // A selector matching no agent: it says so, and keeps waiting.
    let mut late = events(&hub, &["--selector", "team=late"]);
    wait_stderr(&late, "waiting for matching agents to come online");
    // An enrolled agent that is offline: the same.
    let mut one = events(&hub, &["--server", "sleeper"]);
    wait_stderr(&one, "sleeper is offline; waiting for it to come online");
    late.collect_for(Duration::from_millis(300));
    assert!(late.exit_status().is_none(), "{}", late.describe());
    assert!(one.exit_status().is_none(), "{}", one.describe());

    // An agent matching it comes online: its events stream.
    let _agent = enroll_agent(&hub, "late-1", "team=late").unwrap();
    let on = late
        .wait_json("late-1 online", Duration::from_secs(20), |v| {
            v["kind"] == "agent" && v["action"] == "online"
        })
        .unwrap();
    assert_eq!(on["server"], "late-1", "{on}");
    assert!(late.exit_status().is_none(), "{}", late.describe());

    // Ctrl-C: 130, as a shell reports an interrupted command.
    for s in [&mut late, &mut one] {
        send_signal(s.pid().unwrap(), "INT").unwrap();
        let status = wait_until(
            "events to exit on SIGINT",
            Duration::from_secs(10),
            Duration::from_millis(20),
            || Ok(s.exit_status()),
        )
        .unwrap();
        assert_eq!(status.code(), Some(130), "{}", s.describe());
    }

    // A listing whose selector matches nothing: empty, and success.
    let v = hub
        .cli_json(&["agent", "status", "--selector", "nobody=here"])
        .unwrap();
    assert_eq!(v, json!([]));
    // An unknown server: not a wait, a failure (3), with the same code
    // from each of the hub's own views.
    for args in [
        &["agent", "events", "--server", "nobody"][..],
        &["agent", "status", "--server", "nobody"],
        &[
            "agent",
            "history",
            "--server",
            "nobody",
            "--container",
            "web",
        ],
    ] {
        let out = hub.cli(&[args, &["-o", "json"]].concat()).unwrap();
        assert_eq!(out.status.code(), Some(3), "{}", out.describe());
        let err: Value = serde_json::from_str(out.stderr.trim()).unwrap();
        assert_eq!(err["error"]["code"], "unknown_agent", "{err}");
    }
}

/// Every field of `v` (recursively) that holds a time: RFC 3339 text, or a
/// number under a name ending in `_s`/`_ms`. A time is told by its name, or
/// by a number within a day of `now` (Unix seconds or milliseconds).
fn check_times(what: &str, v: &Value, now_s: f64, bad: &mut Vec<String>) {
    let named_time = |k: &str| {
        k.ends_with("_at") || ["created", "last_seen", "t", "at", "time", "expires"].contains(&k)
    };
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let suffixed = k.ends_with("_s") || k.ends_with("_ms");
                let near =
                    |n: f64| (n - now_s).abs() < 86_400.0 || (n / 1000.0 - now_s).abs() < 86_400.0;
                match x {
                    Value::Number(n)
                        if !suffixed && (named_time(k) || near(n.as_f64().unwrap())) =>
                    {
                        bad.push(format!("{what}: {k} = {n} is a bare number"))
                    }
                    Value::String(s) if named_time(k) && parse_rfc3339(s).is_none() => {
                        bad.push(format!("{what}: {k} = {s:?} is not RFC 3339"))
                    }
                    _ => check_times(what, x, now_s, bad),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| check_times(what, x, now_s, bad)),
        _ => {}
    }
}

#[test]
fn every_time_in_json_output_is_rfc3339_or_named_s_or_ms() {
    let env = DockerEnv::start("scripts-times", &[("health_interval_s", "1")]).unwrap();
    let c = env.run("web", &[], &["idle"]).unwrap();
    let hub = &env.hub;
    hub.cli_json(&["token", "create", "--role", "viewer", "--ttl", "1d"])
        .unwrap();
    let gone = hub
        .cli_json(&["token", "create", "--role", "viewer"])
        .unwrap();
    hub.cli(&["token", "revoke", gone["id"].as_str().unwrap()])
        .unwrap()
        .ok()
        .unwrap();
    hub.cli_json(&["join-token", "create", "--name", "later", "--ttl", "1h"])
        .unwrap();
    let mut history = Value::Null;
    wait_until_ok(
        "history points",
        Duration::from_secs(30),
        Duration::from_millis(500),
        || {
            history = env.agent_json("history", &["--container", &c.name])?;
            Ok(history["points"].as_array().is_some_and(|p| !p.is_empty()))
        },
    )
    .unwrap();
    let server = env.server();
    let mut outputs = vec![("history", history)];
    let commands: [(&str, Vec<&str>); 9] = [
        ("ps", vec!["agent", "ps", "--server", server, "-a"]),
        ("status", vec!["agent", "status", "--server", server]),
        ("list", vec!["agent", "list"]),
        ("info", vec!["agent", "info", "--server", server]),
        ("images", vec!["agent", "images", "--server", server]),
        (
            "stats",
            vec!["agent", "stats", "--server", server, "--no-stream"],
        ),
        ("tokens", vec!["token", "list"]),
        ("join tokens", vec!["join-token", "list"]),
        ("whoami", vec!["whoami"]),
    ];
    for (what, args) in commands {
        outputs.push((what, hub.cli_json(&args).unwrap()));
    }
    let now = unix_now();
    let mut bad = Vec::new();
    for (what, v) in &outputs {
        check_times(what, v, now, &mut bad);
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
    // And the check bites: the old shapes fail it.
    let mut old = Vec::new();
    check_times("old ps", &json!([{"created": now as i64}]), now, &mut old);
    check_times(
        "old history",
        &json!({"points": [{"t": now as i64}]}),
        now,
        &mut old,
    );
    assert_eq!(old.len(), 2, "{old:?}");
    // What the fields say: ps created and status started_at as docker has them.
    let ps = &outputs.iter().find(|(w, _)| *w == "ps").unwrap().1;
    let row = ps
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == json!(c.name))
        .unwrap();
    let created = parse_rfc3339(&c.inspect("{{.Created}}").unwrap()).unwrap();
    let ours = parse_rfc3339(row["created"].as_str().unwrap()).unwrap();
    assert!((ours - created).abs() < 1.5, "{row}");
    let tokens = &outputs.iter().find(|(w, _)| *w == "tokens").unwrap().1;
    for field in ["revoked_at", "expires_at"] {
        let set = tokens
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t[field].is_string());
        assert!(set, "no token with {field}: {tokens}");
    }
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

#[test]
fn a_deploy_that_rolls_back_exits_7() {
    let env = DockerEnv::start("scripts-deploy", &[]).unwrap();
    // Never healthy, on the new container either: the deploy rolls back.
    let c = env
        .run(
            "web",
            &[
                "--health-cmd",
                "false",
                "--health-interval",
                "1s",
                "--health-retries",
                "1",
            ],
            &["idle"],
        )
        .unwrap();
    let out = env
        .agent_cli(
            "deploy",
            &[
                "--container",
                &c.name,
                "--image",
                &env.image,
                "--pull",
                "never",
                "--health-timeout",
                "6s",
            ],
        )
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(7),
        "{}\n{}",
        out.describe(),
        env.logs()
    );
    // A deploy refused before it ran is not a deploy failure: 3.
    let out = env
        .hub
        .cli(&[
            "agent",
            "deploy",
            "--selector",
            "nobody=here",
            "--image",
            &env.image,
        ])
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", out.describe());
}
