#![allow(clippy::unwrap_used, clippy::expect_used)]
//! A CLI whose reader goes away (`nextdeploy agent ps -a | head -1`) ends
//! quietly with status 0, on every output path: tables (`println!`), JSON
//! documents, NDJSON streams and the byte-exact `logs`.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nextdeploy_tests::docker::*;
use nextdeploy_tests::{hub_bin, run_raw, CLI_TIMEOUT};

/// Run `nextdeploy <args> | head -1` in bash: the CLI's own exit status
/// (`PIPESTATUS[0]`), what head printed, the CLI's stderr.
fn piped_into_head(env: &DockerEnv, args: &[&str]) -> (i32, String, String) {
    let mut cmd = Command::new("bash");
    for (k, v) in env
        .hub
        .cli_command(&env.hub.admin_token)
        .unwrap()
        .get_envs()
    {
        if let Some(v) = v {
            cmd.env(k, v);
        }
    }
    cmd.arg("-c")
        .arg(r#""$0" "$@" | head -1; echo "cli_status=${PIPESTATUS[0]}" >&2"#)
        .arg(hub_bin().unwrap())
        .args(args);
    let out = run_raw(cmd, CLI_TIMEOUT).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let status = stderr
        .lines()
        .find_map(|l| l.strip_prefix("cli_status="))
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| panic!("no status from bash: {stderr}"));
    let cli_err = stderr
        .lines()
        .filter(|l| !l.starts_with("cli_status="))
        .collect::<Vec<_>>()
        .join("\n");
    (
        status,
        String::from_utf8_lossy(&out.stdout).to_string(),
        cli_err,
    )
}

/// Run `nextdeploy <args>` with a stdout whose reader is already closed, so
/// that its first write fails with EPIPE for sure: exit status and stderr.
fn into_closed_pipe(env: &DockerEnv, args: &[&str]) -> (Option<i32>, String) {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let mut cmd = env.hub.cli_command(&env.hub.admin_token).unwrap();
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if start.elapsed() > CLI_TIMEOUT {
            let _ = child.kill();
            panic!("nextdeploy {args:?} into a closed pipe did not exit");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        std::io::Read::read_to_string(&mut e, &mut err).unwrap();
    }
    (status.code(), err)
}

#[test]
fn every_output_path_ends_quietly_when_the_reader_goes_away() {
    let env = DockerEnv::start("epipe", &[]).unwrap();
    let _web = env.run("web", &[], &["idle"]).unwrap();
    let logs = env.run("logs", &[], &["logs"]).unwrap();
    logs.wait_log("stdout last", Duration::from_secs(20))
        .unwrap();
    let server = env.server().to_string();

    // Deterministic EPIPE: the reader is gone before the first write.
    let cases: Vec<Vec<&str>> = vec![
        vec!["agent", "ps", "--server", &server, "-a"],
        vec!["agent", "ps", "--server", &server, "-a", "-o", "json"],
        vec!["agent", "list"],
        vec![
            "agent",
            "logs",
            "--server",
            &server,
            "--container",
            &logs.name,
        ],
        vec!["agent", "stats", "--server", &server, "-o", "json"],
        vec!["agent", "stats", "--server", &server],
    ];
    for args in &cases {
        let (code, err) = into_closed_pipe(&env, args);
        assert_eq!(
            code,
            Some(0),
            "nextdeploy {args:?} into a closed pipe: stderr {err}"
        );
        // `logs` writes the container's own stderr to stderr, as docker does,
        // and Docker does not order it against stdout: those lines may come
        // before the closed stdout is seen. Nothing else may be printed.
        let ours: Vec<&str> = err
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with("stderr "))
            .collect();
        assert!(ours.is_empty(), "nextdeploy {args:?} printed: {err}");
    }

    // And as people type it, through `head -1`.
    for args in &cases {
        let (code, first, err) = piped_into_head(&env, args);
        assert_eq!(code, 0, "nextdeploy {args:?} | head -1: stderr {err}");
        assert!(
            !err.contains("Broken pipe") && !err.contains("panicked"),
            "{args:?}: {err}"
        );
        assert!(!first.trim().is_empty(), "{args:?}: head printed nothing");
    }
}
