#![allow(clippy::unwrap_used, clippy::expect_used)]
//! What a token may see and for how long: a viewer's inspect hides
//! environment values; a revoked or expired token's open WebSocket is
//! closed within a second and serves nothing more; the initial admin token's
//! file goes at its first login; the store's files are 0600; strings from an
//! agent cannot drive the terminal a table is printed on.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::{Duration, Instant};

use nextdeploy_tests::docker::DockerEnv;
use nextdeploy_tests::*;
use serde_json::Value;

/// How fast a revoked or expired token's connection must be closed.
const CLOSE_WITHIN: Duration = Duration::from_secs(1);

fn create_token(hub: &Hub, role: &str, name: &str, extra: &[&str]) -> Value {
    let mut args = vec!["token", "create", "--role", role, "--name", name];
    args.extend(extra);
    hub.cli_json(&args).unwrap()
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn a_viewer_reads_env_names_but_not_values_an_operator_reads_both() {
    let env = DockerEnv::start("authz-inspect", &[]).unwrap();
    let c = env
        .run("web", &["-e", "DB_PASSWORD=hunter2"], &["idle"])
        .unwrap();
    let viewer = create_token(&env.hub, "viewer", "v", &[])["token"]
        .as_str()
        .unwrap()
        .to_string();
    let operator = create_token(&env.hub, "operator", "o", &[])["token"]
        .as_str()
        .unwrap()
        .to_string();
    let inspect = ["agent", "inspect", "--server", env.server(), "--container"];
    let args: Vec<&str> = inspect.iter().copied().chain([c.name.as_str()]).collect();

    // The CLI's default output and --output json, as a viewer.
    let out = env.hub.cli_as(&viewer, &args).unwrap().ok().unwrap();
    assert!(
        out.stdout.contains("DB_PASSWORD=<redacted>"),
        "{}",
        out.describe()
    );
    assert!(!out.mentions("hunter2"), "{}", out.describe());
    let doc = env.hub.cli_json_as(&viewer, &args).unwrap();
    let envs = doc["Config"]["Env"].as_array().unwrap();
    assert!(envs.contains(&json!("DB_PASSWORD=<redacted>")), "{doc}");
    assert!(!doc.to_string().contains("hunter2"), "{doc}");
    // Everything else is the engine's document as it is.
    assert_eq!(doc["Name"], json!(format!("/{}", c.name)), "{doc}");

    // A selector fan-out (another path through the hub) is redacted too.
    let sel = json!({"id": 7, "action": "inspect", "selector": "test=authz-inspect",
                     "payload": {"container": c.name}});
    let part = ws_request(&env.hub, &viewer, sel).unwrap();
    assert_eq!(part["type"], "result", "{part}");
    assert!(
        part.to_string().contains("DB_PASSWORD=<redacted>"),
        "{part}"
    );
    assert!(!part.to_string().contains("hunter2"), "{part}");

    // Operators and admins see the values.
    let out = env.hub.cli_as(&operator, &args).unwrap().ok().unwrap();
    assert!(
        out.stdout.contains("DB_PASSWORD=hunter2"),
        "{}",
        out.describe()
    );
    let doc = env.hub.cli_json(&args).unwrap();
    assert!(
        doc["Config"]["Env"]
            .as_array()
            .unwrap()
            .contains(&json!("DB_PASSWORD=hunter2")),
        "{doc}"
    );
}

/// Send `whoami` with `id`; true if it was answered with a result.
async fn whoami_answered(ws: &mut Ws, id: u64) -> bool {
    let req = json!({"id": id, "action": "whoami", "payload": {}});
    matches!(ws.request(&req, Duration::from_secs(10)).await, Ok(r) if r["type"] == "result")
}

/// Read until the socket closes, at most until `deadline`. Returns how it
/// ended, and fails if a `result` for `forbidden_id` arrives.
async fn wait_closed(ws: &mut Ws, deadline: Instant, forbidden_id: u64) -> WsEvent {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match ws.next_event(left).await {
            WsEvent::Text(t) => {
                let v: Value = serde_json::from_str(&t).unwrap();
                assert!(
                    !(v["id"] == json!(forbidden_id) && v["type"] == "result"),
                    "a request on a dead token was served: {v}"
                );
            }
            other => return other,
        }
    }
}

#[test]
fn revoking_a_token_closes_its_open_websocket_within_a_second() {
    let hub = start_hub().unwrap();
    let created = create_token(&hub, "operator", "short-lived", &[]);
    let (id, token) = (
        created["id"].as_str().unwrap(),
        created["token"].as_str().unwrap(),
    );
    let other = create_token(&hub, "operator", "bystander", &[]);
    rt().block_on(async {
        let mut ws = ws_connect(&hub, Some(token), None).await.unwrap();
        let mut bystander = ws_connect(&hub, other["token"].as_str(), None)
            .await
            .unwrap();
        assert!(whoami_answered(&mut ws, 1).await, "{}", hub.log_tail());

        let out = hub.cli(&["token", "revoke", id]).unwrap();
        out.ok().unwrap();
        let revoked = Instant::now();
        // Sent after the revocation: must not be served.
        let _ = ws
            .send_json(&json!({"id": 2, "action": "whoami", "payload": {}}))
            .await;
        let end = wait_closed(&mut ws, revoked + CLOSE_WITHIN, 2).await;
        assert!(
            matches!(end, WsEvent::Close | WsEvent::End | WsEvent::Error(_)),
            "not closed within {CLOSE_WITHIN:?} of the revocation: {end:?}\n{}",
            hub.log_tail()
        );
        // Another token's connection is untouched.
        assert!(whoami_answered(&mut bystander, 3).await);
    });
    let log = hub.log_text();
    assert!(
        log.contains("token revoked"),
        "no close reason logged\n{log}"
    );
    assert!(!log.contains(token), "the token is in the hub log");
}

#[test]
fn an_expiring_token_closes_its_open_websocket_within_a_second() {
    let hub = start_hub().unwrap();
    let created = create_token(&hub, "viewer", "ttl", &["--ttl", "2s"]);
    let token = created["token"].as_str().unwrap();
    let expires = created["expires_at"].as_str().unwrap().to_string();
    let made = Instant::now();
    rt().block_on(async {
        let mut ws = ws_connect(&hub, Some(token), None).await.unwrap();
        assert!(whoami_answered(&mut ws, 1).await, "{}", hub.log_tail());
        // expires_at has one-second resolution: at most 2 s from creation,
        // plus the second allowed for closing.
        let end = wait_closed(&mut ws, made + Duration::from_secs(2) + CLOSE_WITHIN, 0).await;
        assert!(
            matches!(end, WsEvent::Close | WsEvent::End | WsEvent::Error(_)),
            "not closed within {CLOSE_WITHIN:?} of expiry ({expires}): {end:?}\n{}",
            hub.log_tail()
        );
        // Not before its expiry (by the wall clock expires_at is written in).
        let at = chrono::DateTime::parse_from_rfc3339(&expires).unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(
            now >= at.timestamp() as f64 - 0.05,
            "closed before expiry ({expires})"
        );
        // And a new connection with it is refused.
        let err = ws_connect(&hub, Some(token), None).await.err().unwrap();
        assert_eq!(ws_refusal_status(&err), Some(401), "{err}");
    });
    assert!(
        hub.log_text().contains("token expired"),
        "{}",
        hub.log_tail()
    );
}

#[test]
fn the_initial_admin_token_file_goes_at_its_first_login() {
    let mut hub = start_hub().unwrap();
    let file = hub.data_dir.join("initial-admin-token");
    assert!(file.exists(), "written at the first start");
    // Only the WebSocket login of that token removes it: a health check does not.
    hub.http_get("/health").unwrap();
    assert!(file.exists());
    let who = hub.cli_json(&["whoami"]).unwrap();
    assert_eq!(who["name"], "initial-admin", "{who}");
    assert!(!file.exists(), "still there after the first login");
    let log = hub.log_text();
    assert!(
        log.contains("removed the initial admin token file"),
        "{log}"
    );
    assert!(
        !log.lines()
            .any(|l| l.contains("removed") && l.contains(&hub.admin_token)),
        "the token is in the removal's log line"
    );
    // The token itself keeps working, and a restart does not write it again.
    hub.restart().unwrap();
    assert!(!file.exists(), "written again on restart");
    hub.cli_json(&["agent", "list"]).unwrap();
}

#[test]
fn the_store_files_are_private_whatever_the_umask() {
    let hub = start_hub().unwrap();
    // Writes: tokens, an audit entry, a revocation (the WAL grows).
    for i in 0..5 {
        let t = create_token(&hub, "viewer", &format!("w{i}"), &[]);
        hub.cli(&["token", "revoke", t["id"].as_str().unwrap()])
            .unwrap()
            .ok()
            .unwrap();
    }
    for suffix in ["", "-wal", "-shm"] {
        let path = hub.data_dir.join(format!("nextdeploy.db{suffix}"));
        let mode = std::fs::metadata(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o777,
            0o600,
            "{} is {:o}",
            path.display(),
            mode & 0o777
        );
    }
}

#[test]
fn an_agent_hostname_with_escape_sequences_is_printed_inert() {
    let hub = start_hub().unwrap();
    let jt = hub.join_token("odd-host", "", "1h").unwrap();
    let agent = Agent::enroll(&hub, "odd-host", &jt.token).unwrap();
    // Retitle the terminal, clear the screen: what a hostile host could send.
    let hostname = "h\u{1b}]0;owned\u{7}\u{1b}[2J\u{9b}x";
    // The agent in a UTS namespace of its own, with that hostname.
    let mut cmd = Command::new("unshare");
    cmd.args(["--uts", "--", "sh", "-c"])
        .arg(r#"printf '%s' "$1" > /proc/sys/kernel/hostname && exec "$2" run --config "$3""#)
        .arg("sh")
        .arg(hostname)
        .arg(agent_bin().unwrap())
        .arg(&agent.config);
    let _run = Proc::spawn_logged(cmd, &agent.log, "unshare run", None).unwrap();
    wait_online(&hub, &["odd-host"], Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("{e:#}\n{}", agent.log_tail()));

    // It really travelled: the JSON carries it as it is.
    let info = hub
        .cli_json(&["agent", "info", "--server", "odd-host"])
        .unwrap();
    let info = if info.is_array() {
        info[0].clone()
    } else {
        info
    };
    assert!(info.to_string().contains("owned"), "{info}");
    assert!(
        info.to_string().contains(r"\u001b]0;owned"),
        "hostname did not travel raw: {info}"
    );

    let out = hub
        .cli(&["agent", "info", "--server", "odd-host"])
        .unwrap()
        .ok()
        .unwrap();
    assert!(
        !out.stdout.chars().any(|c| c.is_control() && c != '\n'),
        "a control character reached the terminal: {:?}",
        out.stdout
    );
    assert!(
        out.stdout.contains(r"h\u{1b}]0;owned\u{7}\u{1b}[2J\u{9b}x"),
        "{}",
        out.stdout
    );
}
