#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `agent logs` through hub and agent: byte-exact with `docker logs` (stdout
//! to stdout, stderr to stderr, a non-UTF-8 line, a 70,000-byte line, --tail,
//! --timestamps, the local log driver, a TTY container), NDJSON chunks of
//! whole lines, --follow latency, and no engine stream left behind when the
//! CLI is killed.

use std::time::{Duration, Instant};

use nextdeploy_tests::contains_bytes;
use nextdeploy_tests::docker::*;

/// The fixture's `logs` mode has written everything.
fn wait_logged(c: &Container) {
    c.wait_log("stdout last", Duration::from_secs(20)).unwrap();
    c.wait_log("stderr last", Duration::from_secs(20)).unwrap();
}

/// `agent logs` with `opts` equals `docker logs` with `opts`, per stream.
fn same_as_docker(env: &DockerEnv, c: &Container, opts: &[&str]) {
    let mut dargs = vec!["logs"];
    dargs.extend(opts);
    dargs.push(&c.id);
    let want = docker_raw(&dargs).unwrap().ok().unwrap();
    let mut aargs = vec!["--container", c.name.as_str()];
    aargs.extend(opts);
    let got = env.agent_raw("logs", &aargs).unwrap().ok().unwrap();
    let what = format!("agent logs {opts:?} of {} ({})", c.name, got.cmdline);
    assert_bytes_eq(&format!("{what}: stdout"), &got.stdout, &want.stdout).unwrap();
    assert_bytes_eq(&format!("{what}: stderr"), &got.stderr, &want.stderr).unwrap();
}

/// `agent logs --output json`: `{stream, text}` or `{stream, b64}` chunks,
/// each whole lines of one stream, that put together equal `docker logs`.
/// Returns whether any chunk came as b64.
fn ndjson_same_as_docker(env: &DockerEnv, c: &Container) -> bool {
    let d = docker_raw(&["logs", &c.id]).unwrap().ok().unwrap();
    let got = env
        .agent_raw("logs", &["--container", &c.name, "--output", "json"])
        .unwrap()
        .ok()
        .unwrap();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let mut saw_b64 = false;
    for line in got.stdout.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let v: serde_json::Value = serde_json::from_slice(line).unwrap();
        let bytes = if let Some(t) = v["text"].as_str() {
            t.as_bytes().to_vec()
        } else {
            saw_b64 = true;
            b64_decode(v["b64"].as_str().unwrap_or_else(|| panic!("chunk {v}"))).unwrap()
        };
        assert!(
            bytes.ends_with(b"\n"),
            "a chunk of {} that is not whole lines ({} bytes): ...{:?}",
            c.name,
            bytes.len(),
            String::from_utf8_lossy(&bytes[bytes.len().saturating_sub(80)..])
        );
        match v["stream"].as_str() {
            Some("stdout") => out.extend(bytes),
            Some("stderr") => err.extend(bytes),
            other => panic!("stream {other:?} in {v}"),
        }
    }
    assert_bytes_eq(&format!("NDJSON stdout of {}", c.name), &out, &d.stdout).unwrap();
    assert_bytes_eq(&format!("NDJSON stderr of {}", c.name), &err, &d.stderr).unwrap();
    saw_b64
}

const LONG_LINE: usize = 70_000;

#[test]
fn logs_equal_docker_logs_byte_for_byte() {
    let env = DockerEnv::start("logs", &[]).unwrap();
    let c = env.run("app", &[], &["logs"]).unwrap();
    wait_logged(&c);

    // The fixture wrote what this test is about. (The json-file driver
    // itself stores the non-UTF-8 bytes as U+FFFD; the local driver keeps
    // them: see the next test.)
    let d = docker_raw(&["logs", &c.id]).unwrap().ok().unwrap();
    assert!(
        contains_bytes(&d.stdout, "\u{fffd}\u{fffd}binary\n".as_bytes()),
        "{}",
        d.describe()
    );
    let long = format!("{}\n", "x".repeat(LONG_LINE));
    assert!(contains_bytes(&d.stdout, long.as_bytes()));

    let started = Instant::now();
    for opts in [
        &[][..],
        &["--tail", "2"][..],
        &["--tail", "4"][..],
        &["--timestamps"][..],
        &["--tail", "3", "--timestamps"][..],
        &["--tail", "all"][..],
    ] {
        same_as_docker(&env, &c, opts);
    }
    eprintln!("six comparisons in {:?}", started.elapsed());
    ndjson_same_as_docker(&env, &c);
}

#[test]
fn logs_of_the_local_driver_and_of_tty_containers() {
    let env = DockerEnv::start("logs-drivers", &[]).unwrap();
    let local = env
        .run("local", &["--log-driver", "local"], &["logs"])
        .unwrap();
    let tty = env.run("tty", &["-t"], &["logs"]).unwrap();
    let tty_local = env
        .run("tty-local", &["-t", "--log-driver", "local"], &["logs"])
        .unwrap();
    for c in [&local, &tty, &tty_local] {
        wait_logged(c);
    }
    let d = docker_raw(&["logs", &local.id]).unwrap().ok().unwrap();
    assert!(
        contains_bytes(&d.stdout, b"\xff\xfebinary\n"),
        "{}",
        d.describe()
    );
    assert!(contains_bytes(&d.stderr, b"stderr \xff\xfe binary\n"));
    // (The local driver's own reading of a long line differs from
    // json-file's: what matters is that ours is the same as docker's.)
    let long = "x".repeat(LONG_LINE);
    assert!(contains_bytes(&d.stdout, long.as_bytes()));
    let t = docker_raw(&["logs", &tty_local.id]).unwrap().ok().unwrap();
    assert!(
        t.stderr.is_empty(),
        "a TTY has one stream: {}",
        t.describe()
    );
    assert!(
        contains_bytes(&t.stdout, b"\xff\xfebinary\r\n"),
        "{}",
        t.describe()
    );
    for c in [&local, &tty, &tty_local] {
        same_as_docker(&env, c, &[]);
        same_as_docker(&env, c, &["--timestamps"]);
        same_as_docker(&env, c, &["--tail", "2"]);
    }
    assert!(
        ndjson_same_as_docker(&env, &local),
        "the non-UTF-8 lines should come as b64"
    );
    ndjson_same_as_docker(&env, &tty_local);
}

#[test]
fn follow_sees_a_new_line_within_a_second() {
    let env = DockerEnv::start("logs-follow", &[]).unwrap();
    let c = env.run("tick", &[], &["tick"]).unwrap();
    c.wait_log("tick 2", Duration::from_secs(20)).unwrap();
    let mut f = env
        .agent_stream(
            "logs",
            &["--container", &c.name, "--follow", "--timestamps"],
        )
        .unwrap();
    let from = unix_secs(f.started_wall);
    // Lines written after the CLI started: how long after Docker stamped
    // them did they reach the CLI's stdout? (Arrival times are taken by a
    // reader thread as each line comes.)
    let lines = f.collect_for(Duration::from_secs(5)).to_vec();
    let mut lat = Vec::new();
    for l in &lines {
        let text = l.text();
        let (ts, rest) = text
            .split_once(' ')
            .unwrap_or_else(|| panic!("no timestamp on {text:?}"));
        let t = parse_rfc3339(ts).unwrap_or_else(|| panic!("bad timestamp on {text:?}"));
        assert!(rest.starts_with("tick "), "{text:?}");
        if t > from {
            lat.push(unix_secs(l.wall) - t);
        }
    }
    assert!(
        lat.len() >= 8,
        "follow delivered {} new lines in 5 s\n{}",
        lat.len(),
        f.describe()
    );
    let worst = lat.iter().cloned().fold(0.0, f64::max);
    eprintln!(
        "follow latency: worst {worst:.3} s over {} lines",
        lat.len()
    );
    assert!(
        worst < 1.0,
        "a followed line took {worst:.3} s to arrive: {lat:?}"
    );
    assert!(
        f.exit_status().is_none(),
        "follow ended by itself\n{}",
        f.describe()
    );
}

#[test]
fn killing_the_cli_ends_the_engine_stream() {
    let env = DockerEnv::start("logs-kill", &[]).unwrap();
    let c = env.run("tick", &[], &["tick"]).unwrap();
    c.wait_log("tick 2", Duration::from_secs(20)).unwrap();
    let log_path = std::path::PathBuf::from(c.inspect("{{.LogPath}}").unwrap());
    // The dockerd that writes this log file (there may be other engines).
    let dockerd = dockerd_pids()
        .into_iter()
        .find(|&p| fds_open_on(p, &log_path).is_ok_and(|n| n > 0))
        .unwrap_or_else(|| panic!("no dockerd holds {} open", log_path.display()));
    let before = fds_open_on(dockerd, &log_path).unwrap();

    // While a follow runs, dockerd holds one more descriptor on the log file.
    let mut f = env
        .agent_stream("logs", &["--container", &c.name, "--follow"])
        .unwrap();
    f.wait_line("a tick", Duration::from_secs(10), |l| {
        l.text().starts_with("tick ")
    })
    .unwrap();
    wait_until_ok(
        "dockerd to open the log file for the follow",
        Duration::from_secs(5),
        Duration::from_millis(50),
        || Ok(fds_open_on(dockerd, &log_path)? > before),
    )
    .unwrap();
    let during = fds_open_on(dockerd, &log_path).unwrap();

    // SIGKILL the CLI: hub and agent must drop the engine's stream.
    f.kill();
    let t = Instant::now();
    let r = wait_until_ok(
        "dockerd to close the follow's log file",
        Duration::from_secs(5),
        Duration::from_millis(50),
        || Ok(fds_open_on(dockerd, &log_path)? <= before),
    );
    let now = fds_open_on(dockerd, &log_path).unwrap();
    assert!(
        r.is_ok(),
        "dockerd still holds {now} descriptors on {} (before the follow {before}, during {during}) \
         5 s after the CLI was killed: the agent's engine stream was left open\n{}",
        log_path.display(),
        env.logs()
    );
    eprintln!(
        "log descriptors: before {before}, during {during}, closed {:?} after the kill",
        t.elapsed()
    );
    // The agent is still fine and can follow again.
    let mut again = env
        .agent_stream("logs", &["--container", &c.name, "--follow", "--tail", "1"])
        .unwrap();
    again
        .wait_line("a tick", Duration::from_secs(10), |l| {
            l.text().starts_with("tick ")
        })
        .unwrap();
}

#[test]
fn since_and_until_select_what_docker_selects() {
    let env = DockerEnv::start("logs-since", &[]).unwrap();
    let c = env.run("tick", &[], &["tick"]).unwrap();
    c.wait_log("tick 3", Duration::from_secs(20)).unwrap();
    // A window of whole seconds that is over before the comparison.
    let d = docker_raw(&["logs", "--timestamps", &c.id])
        .unwrap()
        .ok()
        .unwrap();
    let first = String::from_utf8_lossy(&d.stdout)
        .lines()
        .next()
        .and_then(|l| parse_rfc3339(l.split(' ').next()?))
        .unwrap();
    let since = first.floor() as i64 + 1;
    let until = since + 2;
    while unix_secs(std::time::SystemTime::now()) < until as f64 + 0.5 {
        std::thread::sleep(Duration::from_millis(100));
    }
    let (s, u) = (since.to_string(), until.to_string());
    let window = docker_raw(&["logs", "--since", &s, "--until", &u, &c.id])
        .unwrap()
        .ok()
        .unwrap();
    let n = window.stdout.iter().filter(|&&b| b == b'\n').count();
    assert!(
        (4..=9).contains(&n),
        "a 2 s window holds {n} ticks?\n{}",
        window.describe()
    );
    same_as_docker(&env, &c, &["--since", &s, "--until", &u]);
    same_as_docker(&env, &c, &["--since", &s, "--until", &u, "--timestamps"]);
    same_as_docker(&env, &c, &["--since", &s, "--until", &u, "--tail", "2"]);
    same_as_docker(&env, &c, &["--until", &u]);
}
