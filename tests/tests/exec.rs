#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `nextdeploy agent exec` against a real engine (issue 21), without a TTY:
//! exit codes as `docker exec` gives them, stdout and stderr apart, stdin to
//! its end-of-file, bytes that are not UTF-8 both ways, a gigabyte out with
//! bounded memory while pings to the same agent still answer, who may exec,
//! the agent's policy and scope, the audit log and the session list. The TTY
//! half is tests/tests/exec_tty.rs.

use std::io::{Read, Write};
use std::process::Stdio;
use std::time::{Duration, Instant};

use nextdeploy_tests::docker::*;
use nextdeploy_tests::procfs::rss_bytes;
use nextdeploy_tests::{json, wait_until, HubOpts};
use serde_json::Value;

/// `agent exec --server S --container C <flags> -- <cmd>` as `token`, with
/// `stdin` piped in: (exit code, stdout, stderr).
fn exec_as(
    env: &DockerEnv,
    token: &str,
    container: &str,
    flags: &[&str],
    cmd: &[&str],
    stdin: &[u8],
) -> (i32, Vec<u8>, String) {
    let mut c = env.hub.cli_command(token).unwrap();
    c.args([
        "agent",
        "exec",
        "--server",
        env.server(),
        "--container",
        container,
    ])
    .args(flags)
    .arg("--")
    .args(cmd)
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let feeder = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let out = wait_output(child, Duration::from_secs(60));
    feeder.join().unwrap();
    out
}

fn exec(env: &DockerEnv, container: &str, flags: &[&str], cmd: &[&str]) -> (i32, Vec<u8>, String) {
    exec_as(env, &env.hub.admin_token, container, flags, cmd, b"")
}

/// Wait for `child` (bounded), reading its output as it goes.
fn wait_output(mut child: std::process::Child, limit: Duration) -> (i32, Vec<u8>, String) {
    let mut so = child.stdout.take().unwrap();
    let mut se = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = so.read_to_end(&mut v);
        v
    });
    let err = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = se.read_to_end(&mut v);
        String::from_utf8_lossy(&v).into_owned()
    });
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if t0.elapsed() > limit {
            let _ = child.kill();
            panic!("exec did not end within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    (
        status.code().unwrap_or(-1),
        out.join().unwrap(),
        err.join().unwrap(),
    )
}

#[test]
fn exec_runs_commands_as_docker_exec_does() {
    let env = DockerEnv::start("exec", &[]).unwrap();
    let c = env.run("box", &[], &["idle"]).unwrap();
    let name = c.name.as_str();

    let (code, out, err) = exec(
        &env,
        name,
        &[],
        &["sh", "-c", "echo out; echo err >&2; exit 3"],
    );
    assert_eq!((code, out.as_slice()), (3, &b"out\n"[..]), "stderr: {err}");
    assert_eq!(err, "err\n");
    assert_eq!(exec(&env, name, &[], &["true"]).0, 0);
    assert_eq!(exec(&env, name, &[], &["sh", "-c", "nosuchcmd"]).0, 127);
    // The engine cannot start it: 126, with its message, as `docker exec`.
    let (code, out, err) = exec(&env, name, &[], &["nosuchcmd"]);
    let said = format!("{}{err}", String::from_utf8_lossy(&out));
    assert_eq!(code, 126, "{said}");
    assert!(said.contains("executable file not found"), "{said}");

    // Flags: user, working directory, environment.
    let (code, out, err) = exec(
        &env,
        name,
        &["-u", "1234", "-w", "/tmp", "-e", "GREETING=hi there"],
        &["sh", "-c", "echo $(id -u) $PWD $GREETING"],
    );
    assert_eq!(
        (code, String::from_utf8_lossy(&out).as_ref()),
        (0, "1234 /tmp hi there\n"),
        "{err}"
    );

    // Stdin to its end: 10 MB counted by wc; bytes that are not UTF-8 both ways.
    let ten = vec![b'x'; 10_000_000];
    let token = env.hub.admin_token.clone();
    let (code, out, err) = exec_as(&env, &token, name, &["-i"], &["wc", "-c"], &ten);
    assert_eq!(
        (code, String::from_utf8_lossy(&out).trim()),
        (0, "10000000"),
        "{err}"
    );
    let all: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();
    let (code, out, _) = exec_as(&env, &token, name, &["-i"], &["cat"], &all);
    assert_eq!(code, 0);
    assert!(
        out == all,
        "cat gave back {} bytes, not the 100,000 sent",
        out.len()
    );
    let (_, out, _) = exec(&env, name, &[], &["printf", "\\377\\376ok"]);
    assert_eq!(out, b"\xff\xfeok");

    // A container that does not exist, an agent that does not.
    let (code, _, err) = exec(&env, "no-such-container", &[], &["true"]);
    assert_eq!(code, 3, "{err}");
    let mut bad = env.hub.cli_command(&token).unwrap();
    bad.args([
        "agent",
        "exec",
        "--server",
        "nobody",
        "--container",
        name,
        "--",
        "true",
    ]);
    assert_eq!(bad.status().unwrap().code(), Some(3));

    // Every exec is audited and listed as a session.
    let audit = env.hub.cli_json(&["audit", "--limit", "50"]).unwrap();
    let execs: Vec<&Value> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "exec")
        .collect();
    assert!(execs.len() >= 8, "{audit}");
    assert!(
        execs.iter().any(|e| {
            let d = e["detail"].as_str().unwrap();
            d.contains("exit 3") && d.contains("echo out")
        }),
        "{audit}"
    );
    let wc = execs
        .iter()
        .find(|e| e["detail"].as_str().unwrap().contains("wc -c"))
        .unwrap();
    assert!(
        wc["detail"].as_str().unwrap().contains("10000000 bytes in"),
        "{wc}"
    );
    let sessions = env.hub.cli_json(&["exec-sessions", "list"]).unwrap();
    let first = &sessions[0];
    assert_eq!(first["server"], env.server());
    assert_eq!(first["tty"], false);
    assert_eq!(first["recording_bytes"], 0, "no TTY, no recording: {first}");
}

#[test]
fn who_may_exec_and_what_the_agent_allows() {
    let off = HubOpts {
        env: vec![("NEXTDEPLOY_HUB_POLICY_PRECHECK".into(), "off".into())],
        ..HubOpts::default()
    };
    let scope = ("scope_label", "\"nextdeploy.exec-scope=in\"");
    let mut env = DockerEnv::start_with("exec-who", off, &[scope]).unwrap();
    let inside = env
        .run("in", &["--label", "nextdeploy.exec-scope=in"], &["idle"])
        .unwrap();
    let outside = env.run("out", &[], &["idle"]).unwrap();
    let token = |role: &str, extra: &[&str]| {
        let mut a = vec!["token", "create", "--role", role, "--name", role];
        a.extend(extra);
        let v = env.hub.cli_json(&a).unwrap();
        v["token"].as_str().unwrap().to_string()
    };
    let (viewer, no_exec, operator) = (
        token("viewer", &[]),
        token("operator", &["--no-exec"]),
        token("operator", &[]),
    );
    let who = |t: &str, flags: &[&str]| exec_as(&env, t, &inside.name, flags, &["true"], b"");
    let (code, _, err) = who(&viewer, &[]);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("operator"), "{err}");
    let (code, _, err) = who(&no_exec, &[]);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("without exec"), "{err}");
    let (code, _, err) = who(&operator, &["--privileged"]);
    assert_eq!(code, 4, "{err}");
    assert_eq!(who(&operator, &[]).0, 0);
    // Outside the agent's scope the container does not exist.
    let (code, _, err) = exec(&env, &outside.name, &[], &["true"]);
    assert_eq!(code, 3, "{err}");

    // The agent's own policy, through a hub that forwards what it forbids.
    let rules = [
        ("exec = false", &[][..], "policy.exec"),
        ("exec_allow_root = false", &[][..], "policy.exec_allow_root"),
        (
            "exec_allow_root = false",
            &["-u", "0"][..],
            "policy.exec_allow_root",
        ),
        ("read_only = true", &["-u", "1000"][..], "policy.read_only"),
    ];
    for (rule, flags, named) in rules {
        set_policy(&mut env, rule);
        let (code, _, err) = exec(&env, &inside.name, flags, &["true"]);
        assert_eq!(code, 4, "{rule}: {err}");
        assert!(err.contains(&format!("{named}: ")), "{rule}: {err}");
    }
    set_policy(&mut env, "exec_allow_root = false");
    let (code, out, err) = exec(&env, &inside.name, &["-u", "1000"], &["id", "-u"]);
    assert_eq!(
        (code, String::from_utf8_lossy(&out).trim()),
        (0, "1000"),
        "{err}"
    );
    assert!(env.agent.log_text().contains("refused by policy"));
}

/// Replace the agent's `[policy]` with `body`, restart it, wait until online.
fn set_policy(env: &mut DockerEnv, body: &str) {
    let text = std::fs::read_to_string(&env.agent.config).unwrap();
    let base = text
        .split("\n[policy]")
        .next()
        .unwrap()
        .trim_end()
        .to_string();
    std::fs::write(&env.agent.config, format!("{base}\n\n[policy]\n{body}\n")).unwrap();
    env.agent.start().unwrap();
    let mut want = json!({"read_only": false, "exec": true, "exec_allow_root": true,
                          "deploy_images": [], "lifecycle": true});
    let (k, v) = body.split_once(" = ").unwrap();
    want[k] = json!(v == "true");
    let (hub, name) = (&env.hub, env.agent.name.clone());
    let what = "the agent online with its new policy";
    wait_until(
        what,
        Duration::from_secs(20),
        Duration::from_millis(100),
        || {
            let e = hub.agent_entry(&name)?;
            Ok(e.filter(|e| e["online"] == true && e["policy"] == want))
        },
    )
    .unwrap();
}

#[test]
fn a_gigabyte_out_keeps_memory_bounded_and_the_agent_answering() {
    let env = DockerEnv::start("exec-gig", &[]).unwrap();
    let c = env.run("box", &[], &["idle"]).unwrap();
    let gib: u64 = 1 << 30;
    let mut cmd = env.hub.cli_command(&env.hub.admin_token).unwrap();
    let script = format!("yes abcdefghijklmnopqrstuvwxyz0123456789 | head -c {gib}");
    cmd.args([
        "agent",
        "exec",
        "--server",
        env.server(),
        "--container",
        &c.name,
        "--",
        "sh",
        "-c",
        &script,
    ])
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::inherit());
    let mut child = cmd.spawn().unwrap();
    let mut so = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let (mut n, mut buf) = (0u64, vec![0u8; 1 << 16]);
        while let Ok(k) = so.read(&mut buf) {
            if k == 0 {
                break;
            }
            n += k as u64;
        }
        n
    });
    let hub_pid = env.hub.pid().unwrap();
    let agent_pid = env.agent.pid().unwrap();
    let (hub0, agent0) = (rss_bytes(hub_pid).unwrap(), rss_bytes(agent_pid).unwrap());
    let (mut worst_ms, mut pings, mut hub_max, mut agent_max) = (0.0f64, 0, hub0, agent0);
    let t0 = Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(
            t0.elapsed() < Duration::from_secs(240),
            "a gigabyte took over 4 minutes"
        );
        let v = env.agent_json("ping", &["-c", "1"]).unwrap();
        let ms = v["max_ms"]
            .as_f64()
            .unwrap_or_else(|| panic!("no rtt in {v}"));
        worst_ms = worst_ms.max(ms);
        pings += 1;
        hub_max = hub_max.max(rss_bytes(hub_pid).unwrap());
        agent_max = agent_max.max(rss_bytes(agent_pid).unwrap());
        std::thread::sleep(Duration::from_millis(200));
    }
    let got = reader.join().unwrap();
    assert_eq!(got, gib);
    assert_eq!(child.wait().unwrap().code(), Some(0));
    let mib = |b: u64| b as f64 / 1048576.0;
    eprintln!(
        "1 GiB in {:.1}s; {pings} pings, worst {worst_ms:.1} ms; hub RSS {:.1} -> max {:.1} MiB, agent {:.1} -> max {:.1} MiB",
        t0.elapsed().as_secs_f64(), mib(hub0), mib(hub_max), mib(agent0), mib(agent_max)
    );
    assert!(pings >= 3, "too few pings during the transfer");
    assert!(
        worst_ms < 100.0,
        "a ping took {worst_ms} ms while the exec streamed"
    );
    assert!(
        hub_max < hub0 + 64 * 1048576,
        "hub RSS grew {:.1} MiB",
        mib(hub_max - hub0)
    );
    assert!(
        agent_max < agent0 + 64 * 1048576,
        "agent RSS grew {:.1} MiB",
        mib(agent_max - agent0)
    );
}
