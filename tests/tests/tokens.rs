#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Join tokens: used, expired, forged and concurrently reused ones are
//! refused. API tokens: the viewer role cannot act. No token is readable
//! from the store or the hub's log.

use std::time::Duration;

use nextdeploy_tests::*;

fn enroll_fresh(hub: &Hub, token: &str) -> (TempDir, Output) {
    let dir = TempDir::new("enrol").unwrap();
    let out = agent_enroll(&hub.ssh_addr(), token, &dir.path().join("agent.toml")).unwrap();
    (dir, out)
}

fn agent_names(hub: &Hub) -> Vec<String> {
    hub.agent_list()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn used_token_is_refused() {
    let hub = start_hub().unwrap();
    let jt = hub.join_token("once", "env=dev", "1h").unwrap();
    let (_d1, first) = enroll_fresh(&hub, &jt.token);
    first.ok().unwrap();
    let (d2, second) = enroll_fresh(&hub, &jt.token);
    let second = second.failed().unwrap();
    assert!(second.mentions("used"), "{}", second.describe());
    assert!(
        !d2.path().join("agent.toml").exists(),
        "a refused enrolment must not leave a config"
    );
    assert_eq!(agent_names(&hub), vec!["once".to_string()]);
}

#[test]
fn expired_token_is_refused() {
    let hub = start_hub().unwrap();
    let jt = hub.join_token("late", "env=dev", "1s").unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let (_d, out) = enroll_fresh(&hub, &jt.token);
    let out = out.failed().unwrap();
    assert!(out.mentions("expired"), "{}", out.describe());
    assert!(agent_names(&hub).is_empty());
}

#[test]
fn forged_token_is_refused() {
    let hub = start_hub().unwrap();
    let jt = hub.join_token("forged", "env=dev", "1h").unwrap();
    let mut parts: Vec<String> = jt.token.split('_').map(str::to_string).collect();
    assert!(parts.len() >= 3, "unexpected token shape: {}", jt.token);
    let secret = &mut parts[2];
    let first = secret.chars().next().unwrap();
    let flipped = if first == '0' { '1' } else { '0' };
    secret.replace_range(0..1, &flipped.to_string());
    let forged = parts.join("_");
    assert_ne!(forged, jt.token);
    let (_d, out) = enroll_fresh(&hub, &forged);
    let out = out.failed().unwrap();

    // an unknown id gets the same answer as a wrong secret
    let mut parts2: Vec<String> = jt.token.split('_').map(str::to_string).collect();
    let id = &mut parts2[1];
    let c = id.chars().next().unwrap();
    id.replace_range(0..1, if c == '0' { "1" } else { "0" });
    let (_d2, out2) = enroll_fresh(&hub, &parts2.join("_"));
    let out2 = out2.failed().unwrap();
    assert!(agent_names(&hub).is_empty());
    assert!(
        !out2.stderr.contains(&jt.token) && !out.stderr.contains(&forged),
        "errors must not echo tokens"
    );

    // the real token still works afterwards
    let (_d3, ok) = enroll_fresh(&hub, &jt.token);
    ok.ok().unwrap();
}

#[test]
fn fifty_concurrent_uses_make_one_agent() {
    let hub = start_hub().unwrap();
    let jt = hub.join_token("race", "env=dev", "1h").unwrap();
    let before = agent_names(&hub);
    let results: Vec<(TempDir, Output)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..50)
            .map(|_| s.spawn(|| enroll_fresh(&hub, &jt.token)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let ok: Vec<_> = results.iter().filter(|(_, o)| o.success()).collect();
    assert_eq!(
        ok.len(),
        1,
        "exactly one enrolment must succeed; successes:\n{}",
        ok.iter()
            .map(|(_, o)| o.describe())
            .collect::<Vec<_>>()
            .join("\n")
    );
    for (_, o) in results.iter().filter(|(_, o)| !o.success()) {
        assert!(
            !o.stderr.trim().is_empty(),
            "refusal without a message: {}",
            o.describe()
        );
    }
    let after = agent_names(&hub);
    assert_eq!(after.len(), before.len() + 1, "{after:?}");
    assert!(after.contains(&"race".to_string()));
    // the winner can run
    let (dir, _) = ok[0];
    let cfg = dir.path().join("agent.toml");
    assert!(cfg.is_file());
}

#[test]
fn viewer_cannot_revoke_but_can_list() {
    let hub = start_hub().unwrap();
    let _agent = enroll_agent(&hub, "precious", "env=prod").unwrap();
    wait_online(&hub, &["precious"], Duration::from_secs(15)).unwrap();
    let v = hub
        .cli_json(&["token", "create", "--role", "viewer", "--name", "v"])
        .unwrap();
    assert_eq!(v["role"], json!("viewer"), "{v}");
    assert_eq!(v["name"], json!("v"), "{v}");
    let viewer = v["token"].as_str().unwrap().to_string();
    assert!(viewer.starts_with("nda_"), "{viewer}");

    let out = hub
        .cli_as(&viewer, &["agent", "revoke", "precious"])
        .unwrap()
        .failed()
        .unwrap();
    assert!(
        out.mentions("permission") || out.mentions("forbidden"),
        "{}",
        out.describe()
    );
    let list = hub.cli_json_as(&viewer, &["agent", "list"]).unwrap();
    let e = list
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "precious")
        .unwrap();
    assert_eq!(
        e["online"],
        json!(true),
        "the viewer's revoke must not act: {e}"
    );
    // a viewer cannot mint tokens either
    hub.cli_as(
        &viewer,
        &["join-token", "create", "--name", "x", "--ttl", "1h"],
    )
    .unwrap()
    .failed()
    .unwrap();
    hub.cli_as(
        &viewer,
        &["token", "create", "--role", "admin", "--name", "x"],
    )
    .unwrap()
    .failed()
    .unwrap();
    // a bad token is refused
    let out = hub
        .cli_as(
            "nda_000000000000_000000000000000000000000000000000000000000000000",
            &["agent", "list"],
        )
        .unwrap()
        .failed()
        .unwrap();
    assert!(!out.stderr.trim().is_empty());
}

#[test]
fn tokens_are_not_readable_from_store_or_log() {
    let hub = start_hub().unwrap();
    let jt_unused = hub.join_token("unused", "env=dev", "1h").unwrap();
    let jt_used = hub.join_token("used", "env=dev", "1h").unwrap();
    let _agent = Agent::enroll(&hub, "used", &jt_used.token).unwrap();
    let viewer = hub
        .cli_json(&["token", "create", "--role", "viewer", "--name", "v"])
        .unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let operator = hub
        .cli_json(&["token", "create", "--role", "operator", "--name", "o"])
        .unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    // use the tokens once so any lazy write has happened
    hub.cli_json_as(&viewer, &["agent", "list"]).unwrap();
    hub.cli_json_as(&operator, &["agent", "list"]).unwrap();

    let db = hub.data_dir.join("nextdeploy.db");
    assert!(db.is_file(), "store not at {}", db.display());
    let mut secrets: Vec<(String, String)> = Vec::new();
    for (label, t) in [
        ("join (unused)", &jt_unused.token),
        ("join (used)", &jt_used.token),
        ("viewer", &viewer),
        ("operator", &operator),
        ("admin", &hub.admin_token),
    ] {
        secrets.push((format!("{label} token"), t.clone()));
        let secret = t.split('_').nth(2).unwrap().to_string();
        assert!(secret.len() >= 32, "secret shorter than 128 bits: {label}");
        secrets.push((format!("{label} secret"), secret));
    }
    let files = read_tree(&hub.data_dir).unwrap();
    assert!(files.iter().any(|(p, _)| p == &db));
    for (path, bytes) in &files {
        if path.ends_with("initial-admin-token") {
            continue; // written for scripts on purpose
        }
        for (label, s) in &secrets {
            assert!(
                !contains_bytes(bytes, s.as_bytes()),
                "{label} readable in {}",
                path.display()
            );
        }
    }
    // the hub log never shows join or non-initial API tokens
    let log = hub.log_text();
    for (label, s) in &secrets {
        if label.starts_with("admin") {
            continue; // printed once at first start, by design
        }
        assert!(!log.contains(s.as_str()), "{label} in the hub log");
    }
}

/// The hub knows how it is reached: `join-token create` prints the enrol
/// command with the hub's real SSH port (a random one here), and
/// `--ssh-public-address` / `--api-public-url` override the listen addresses
/// in it and in `whoami`; the printed command enrols as it stands.
#[test]
fn join_token_command_names_the_hubs_own_ssh_address() {
    let hub = start_hub().unwrap();
    let me = hub.cli_json(&["whoami"]).unwrap();
    assert_eq!(me["ssh_port"], json!(hub.ssh_port), "{me}");
    assert_eq!(me["ssh_public_address"], json!(hub.ssh_addr()), "{me}");
    assert_eq!(me["api_public_url"], json!(hub.url()), "{me}");

    let out = hub
        .cli(&["join-token", "create", "--name", "pub-1"])
        .unwrap()
        .ok()
        .unwrap();
    let want = format!(
        "nextdeploy-agent enroll --hub {} --token ndj_",
        hub.ssh_addr()
    );
    assert!(out.stdout.contains(&want), "{}", out.stdout);
    assert!(
        !out.stdout.contains("2222") || hub.ssh_port == 2222,
        "{}",
        out.stdout
    );

    // The printed command, run as printed (with a config path), enrols.
    let line = out
        .stdout
        .lines()
        .find(|l| l.contains(&want))
        .unwrap()
        .trim();
    let tok = line.rsplit(' ').next().unwrap();
    let (_dir, enrolled) = enroll_fresh(&hub, tok);
    assert!(enrolled.success(), "{}", enrolled.describe());

    // Told explicitly: used in whoami and in the command (JSON too).
    let pubhub = Hub::start(HubOpts::args([
        "--ssh-public-address",
        "bastion.example:2200",
        "--api-public-url",
        "https://hub.example",
    ]))
    .unwrap();
    let me = pubhub.cli_json(&["whoami"]).unwrap();
    assert_eq!(me["ssh_public_address"], "bastion.example:2200", "{me}");
    assert_eq!(me["api_public_url"], "https://hub.example", "{me}");
    let v = pubhub
        .cli_json(&["join-token", "create", "--name", "pub-2"])
        .unwrap();
    assert_eq!(v["ssh_address"], "bastion.example:2200", "{v}");
    assert!(
        v["command"]
            .as_str()
            .unwrap()
            .starts_with("nextdeploy-agent enroll --hub bastion.example:2200 --token ndj_"),
        "{v}"
    );
    // An explicit --ssh-address still wins.
    let v = pubhub
        .cli_json(&[
            "join-token",
            "create",
            "--name",
            "pub-3",
            "--ssh-address",
            "other:1",
        ])
        .unwrap();
    assert_eq!(v["ssh_address"], "other:1", "{v}");
    // A malformed one is refused at start.
    let mut cmd = std::process::Command::new(hub_bin().unwrap());
    cmd.args(["hub", "--ssh-public-address", "nohost", "--data-dir"])
        .arg(pubhub.dir().join("never"));
    let out = run_bounded(cmd, CLI_TIMEOUT).unwrap();
    assert!(
        !out.success() && out.stderr.contains("HOST:PORT"),
        "{}",
        out.describe()
    );
}

/// `--output json` on `logout`, and errors as `{"error": {"code", "message"}}`
/// on stderr: the hub's code when the hub refused, `cli_error` otherwise.
#[test]
fn logout_and_errors_speak_json() {
    let hub = start_hub().unwrap();
    let login = hub
        .cli(&["login", "--hub", &hub.url(), "--token", &hub.admin_token])
        .unwrap();
    assert!(login.success(), "{}", login.describe());
    let v = hub.cli_json(&["logout"]).unwrap();
    assert_eq!(v["logged_out"], true, "{v}");
    assert!(
        v["removed"].as_str().unwrap().ends_with("login.json"),
        "{v}"
    );
    let v = hub.cli_json(&["logout"]).unwrap();
    assert_eq!(v, json!({"logged_out": false, "removed": null}));

    // The hub's code: an unknown agent.
    let out = hub
        .cli(&["agent", "info", "--server", "nobody", "-o", "json"])
        .unwrap();
    assert!(!out.success());
    let err: serde_json::Value = serde_json::from_str(out.stderr.trim())
        .unwrap_or_else(|e| panic!("{e}: {}", out.describe()));
    assert_eq!(err["error"]["code"], "unknown_agent", "{err}");
    assert!(
        err["error"]["message"].as_str().unwrap().contains("nobody"),
        "{err}"
    );
    // A viewer may not create tokens: forbidden.
    let viewer = hub
        .cli_json(&["token", "create", "--role", "viewer", "--name", "v"])
        .unwrap();
    let vt = viewer["token"].as_str().unwrap();
    let out = hub
        .cli_as(vt, &["token", "create", "--role", "admin", "-o", "json"])
        .unwrap();
    let err: serde_json::Value = serde_json::from_str(out.stderr.trim()).unwrap();
    assert_eq!(err["error"]["code"], "forbidden", "{err}");
    // No hub to talk to: cli_error.
    let mut cmd = hub.cli_command(&hub.admin_token).unwrap();
    cmd.args(["agent", "list", "-o", "json"]).env(
        "NEXTDEPLOY_HUB",
        format!("http://127.0.0.1:{}", free_port().unwrap()),
    );
    let out = run_bounded(cmd, CLI_TIMEOUT).unwrap();
    let err: serde_json::Value = serde_json::from_str(out.stderr.trim()).unwrap();
    assert_eq!(err["error"]["code"], "cli_error", "{err}");
}

fn token_id(token: &str) -> String {
    token.split('_').nth(1).unwrap().to_string()
}

#[test]
fn api_tokens_expire_in_90_days_unless_never_and_the_audit_log_names_the_token_id() {
    let hub = start_hub().unwrap();
    let day = 86_400i64;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let dflt = hub
        .cli_json(&["token", "create", "--role", "viewer", "--name", "d"])
        .unwrap();
    let exp = chrono::DateTime::parse_from_rfc3339(dflt["expires_at"].as_str().unwrap())
        .unwrap()
        .timestamp();
    assert!(
        (exp - (now + 90 * day)).abs() <= 60,
        "default expiry is not 90 days away: {dflt}"
    );
    let never = hub
        .cli_json(&[
            "token", "create", "--role", "viewer", "--name", "n", "--ttl", "never",
        ])
        .unwrap();
    assert!(never["expires_at"].is_null(), "{never}");
    let week = hub
        .cli_json(&[
            "token", "create", "--role", "viewer", "--name", "w", "--ttl", "7d",
        ])
        .unwrap();
    let exp = chrono::DateTime::parse_from_rfc3339(week["expires_at"].as_str().unwrap())
        .unwrap()
        .timestamp();
    assert!((exp - (now + 7 * day)).abs() <= 60, "{week}");
    // Both at once is refused, not guessed.
    let both = json!({"id": 1, "action": "create_token",
                      "payload": {"role": "viewer", "ttl_s": 60, "no_expiry": true}});
    let r = ws_request(&hub, &hub.admin_token, both).unwrap();
    assert_eq!(r["data"]["code"], "bad_request", "{r}");

    // Two admin tokens with one name: the audit log tells them apart.
    let ops: Vec<String> = (0..2)
        .map(|_| {
            hub.cli_json(&["token", "create", "--role", "admin", "--name", "ops"])
                .unwrap()["token"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let mut made = Vec::new();
    for t in &ops {
        let v = hub
            .cli_json_as(t, &["token", "create", "--role", "viewer", "--name", "x"])
            .unwrap();
        made.push(v["id"].as_str().unwrap().to_string());
    }
    let db = rusqlite::Connection::open_with_flags(
        hub.data_dir.join("nextdeploy.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let by = |target: &str| -> (String, Option<String>) {
        db.query_row(
            "SELECT actor, actor_token FROM audit WHERE action = 'create_token' AND target = ?1",
            [target],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap()
    };
    for (t, target) in ops.iter().zip(&made) {
        assert_eq!(by(target), ("ops".to_string(), Some(token_id(t))));
    }
    // The first admin's own actions carry its id too.
    let first = by(dflt["id"].as_str().unwrap());
    assert_eq!(
        first,
        (
            "initial-admin".to_string(),
            Some(token_id(&hub.admin_token))
        )
    );
}
