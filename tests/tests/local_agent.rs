#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `nextdeploy hub --local-agent`: the hub enrols and runs an agent for this
//! machine through its own SSH port, saves a CLI login (0600) that the CLI
//! then uses without NEXTDEPLOY_HUB/TOKEN, reuses the enrolment on a restart,
//! reports Docker as unavailable when it is, and takes its agent down with it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use nextdeploy_tests::*;
use serde_json::Value;

/// HOME and NEXTDEPLOY_CONFIG_DIR of the "local user".
struct UserEnv {
    _dir: TempDir,
    home: PathBuf,
    config_dir: PathBuf,
}

impl UserEnv {
    fn new() -> UserEnv {
        let dir = TempDir::new("local-user").unwrap();
        let home = dir.path().join("home");
        std::fs::create_dir_all(&home).unwrap();
        let config_dir = dir.path().join("config");
        UserEnv {
            _dir: dir,
            home,
            config_dir,
        }
    }

    fn hub_env(&self) -> Vec<(String, String)> {
        vec![
            ("HOME".into(), self.home.to_string_lossy().into_owned()),
            (
                "NEXTDEPLOY_CONFIG_DIR".into(),
                self.config_dir.to_string_lossy().into_owned(),
            ),
        ]
    }

    /// `nextdeploy <args>` as this user: the saved login only, no
    /// NEXTDEPLOY_HUB / NEXTDEPLOY_TOKEN.
    fn cli(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(hub_bin().unwrap());
        cmd.args(args)
            .env_remove("NEXTDEPLOY_HUB")
            .env_remove("NEXTDEPLOY_TOKEN")
            .env_remove("XDG_CONFIG_HOME")
            .env("HOME", &self.home)
            .env("NEXTDEPLOY_CONFIG_DIR", &self.config_dir);
        run_bounded(cmd, CLI_TIMEOUT).unwrap()
    }

    fn cli_json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.extend(["--output", "json"]);
        self.cli(&a).ok().unwrap().json().unwrap()
    }
}

fn start_local_hub(user: &UserEnv, extra_env: &[(&str, &str)]) -> Hub {
    let mut env = user.hub_env();
    env.extend(
        extra_env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    Hub::start(HubOpts {
        extra_args: vec!["--local-agent".into()],
        env,
        ..HubOpts::default()
    })
    .unwrap()
}

/// Wait for the `nth` (1-based) "Local agent "NAME" is connecting over SSH"
/// hint in the hub's output, check the lines after it; the agent's name.
fn wait_hint(hub: &Hub, nth: usize) -> String {
    let marker = "is connecting over SSH";
    let text = wait_until(
        "the local agent hint",
        Duration::from_secs(30),
        Duration::from_millis(50),
        || {
            let t = hub.log_text();
            Ok(
                (t.matches(marker).count() >= nth && t.contains("agent ping --server="))
                    .then_some(t),
            )
        },
    )
    .unwrap_or_else(|e| panic!("{e:#}\n{}", hub.log_tail()));
    let line = text
        .lines()
        .filter(|l| l.contains(marker))
        .nth(nth - 1)
        .unwrap();
    let name = line
        .split('"')
        .nth(1)
        .unwrap_or_else(|| panic!("no quoted name in {line:?}"))
        .to_string();
    assert!(line.contains(&format!("Local agent \"{name}\"")), "{line}");
    for hint in [
        "nextdeploy agent list".to_string(),
        format!("nextdeploy agent info --server={name}"),
        format!("nextdeploy agent ping --server={name}"),
    ] {
        assert!(
            text.contains(&hint),
            "hint {hint:?} missing\n{}",
            hub.log_tail()
        );
    }
    name
}

fn local_config(hub: &Hub) -> PathBuf {
    hub.data_dir.join("local-agent").join("agent.toml")
}

/// The pid of the local agent child (`nextdeploy-agent run --config <...>`).
fn local_agent_pid(config: &Path) -> u32 {
    let needle = format!("run --config {}", config.display());
    wait_until(
        "the local agent process",
        Duration::from_secs(10),
        Duration::from_millis(50),
        || Ok(pids_matching(&needle).first().copied()),
    )
    .unwrap()
}

/// Poll `agent list` (as the local user) until exactly one agent is listed,
/// online; returns it.
fn wait_one_online(user: &UserEnv, hub: &Hub) -> Value {
    let mut last = Value::Null;
    wait_until(
        "the local agent online",
        Duration::from_secs(30),
        Duration::from_millis(100),
        || {
            let out = user.cli(&["agent", "list", "--output", "json"]);
            let v = out.ok()?.json()?;
            last = v.clone();
            let list = v.as_array().cloned().unwrap_or_default();
            assert!(list.len() <= 1, "more than one agent: {v}");
            Ok(list.first().filter(|a| a["online"] == json!(true)).cloned())
        },
    )
    .unwrap_or_else(|e| panic!("{e:#}\nlast list: {last}\n{}", hub.log_tail()))
}

/// SIGTERM the hub: it exits 0 within 10 s and its local agent is gone.
fn stop_hub_and_check_child_gone(hub: &mut Hub, config: &Path) {
    let needle = format!("run --config {}", config.display());
    assert!(
        !pids_matching(&needle).is_empty(),
        "no local agent process before SIGTERM"
    );
    hub.signal("TERM").unwrap();
    let st = hub.wait_exit(Duration::from_secs(10)).unwrap();
    assert!(st.success(), "hub exit status {st}\n{}", hub.log_tail());
    wait_until(
        "the local agent process to be gone",
        Duration::from_secs(5),
        Duration::from_millis(50),
        || Ok(pids_matching(&needle).is_empty().then_some(())),
    )
    .unwrap_or_else(|e| panic!("{e:#}: {:?}", pids_matching(&needle)));
}

fn docker_works() -> bool {
    let mut cmd = Command::new("docker");
    cmd.arg("info");
    run_bounded(cmd, Duration::from_secs(15))
        .map(|o| o.success())
        .unwrap_or(false)
}

#[test]
fn local_agent_enrols_over_ssh_saves_login_and_survives_restart() {
    let user = UserEnv::new();
    let mut hub = start_local_hub(&user, &[]);
    let name = wait_hint(&hub, 1);

    // The saved login: 0600, this hub, an API token.
    let login_path = user.config_dir.join("login.json");
    let meta = std::fs::metadata(&login_path)
        .unwrap_or_else(|e| panic!("{}: {e}\n{}", login_path.display(), hub.log_tail()));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(meta.permissions().mode() & 0o777, 0o600, "login.json mode");
    let login: Value = serde_json::from_slice(&std::fs::read(&login_path).unwrap()).unwrap();
    assert_eq!(login["hub"], json!(hub.url()), "{login}");
    assert!(
        login["token"].as_str().unwrap_or("").starts_with("nda_"),
        "no API token saved"
    );
    assert!(
        hub.log_text().contains("Saved a CLI login"),
        "{}",
        hub.log_tail()
    );

    // One agent, online, local=true, connected from a loopback socket: the
    // local agent process's own connection to the hub's SSH port.
    let a = wait_one_online(&user, &hub);
    assert_eq!(a["name"], json!(name), "{a}");
    assert_eq!(a["labels"], json!({"local": "true"}), "{a}");
    let addr: SocketAddr = a["address"]
        .as_str()
        .unwrap_or_default()
        .parse()
        .unwrap_or_else(|e| panic!("address is not a socket address ({e}): {a}"));
    assert_eq!(addr.ip().to_string(), "127.0.0.1", "{a}");
    let config = local_config(&hub);
    let pid = local_agent_pid(&config);
    let hub_ssh: SocketAddr = hub.ssh_addr().parse().unwrap();
    let conns = tcp_connections_of(pid).unwrap();
    assert!(
        conns.contains(&(addr, hub_ssh)),
        "listed address {addr} is not the local agent's SSH connection to {hub_ssh}: {conns:?}"
    );

    // agent info through the saved login
    let info = user.cli_json(&["agent", "info", &format!("--server={name}")]);
    assert!(
        !info["hostname"].as_str().unwrap_or("").is_empty(),
        "{info}"
    );
    assert!(info["cpus"].as_u64().unwrap_or(0) >= 1, "{info}");
    assert!(info["docker"]["available"].is_boolean(), "{info}");
    if docker_works() {
        assert_eq!(
            info["docker"]["available"],
            json!(true),
            "docker info works here: {info}"
        );
    }
    user.cli(&["agent", "ping", &format!("--server={name}"), "-c", "1"])
        .ok()
        .unwrap();
    let fingerprint = a["fingerprint"].clone();

    // SIGTERM: the hub exits and takes its agent with it.
    stop_hub_and_check_child_gone(&mut hub, &config);

    // Restart on the same data dir: the same enrolment, the same login.
    let t = Instant::now();
    hub.restart().unwrap();
    let name2 = wait_hint(&hub, 2);
    assert_eq!(name2, name);
    let a2 = wait_one_online(&user, &hub);
    eprintln!(
        "local agent back online {:?} after the restart",
        t.elapsed()
    );
    assert_eq!(a2["name"], json!(name), "{a2}");
    assert_eq!(a2["fingerprint"], fingerprint, "a new enrolment: {a2}");
    let login2: Value = serde_json::from_slice(&std::fs::read(&login_path).unwrap()).unwrap();
    assert_eq!(login2, login, "the working login was replaced");
    let all = user.cli_json(&["agent", "list"]);
    assert_eq!(all.as_array().map(Vec::len), Some(1), "{all}");

    stop_hub_and_check_child_gone(&mut hub, &config);
}

#[test]
fn local_agent_without_docker_reports_it_unavailable() {
    let user = UserEnv::new();
    let mut hub = start_local_hub(&user, &[("DOCKER_HOST", "unix:///nonexistent/docker.sock")]);
    let name = wait_hint(&hub, 1);
    let a = wait_one_online(&user, &hub);
    assert_eq!(a["name"], json!(name), "{a}");
    let info = user.cli_json(&["agent", "info", &format!("--server={name}")]);
    assert_eq!(info["docker"]["available"], json!(false), "{info}");
    let err = info["docker"]["error"].as_str().unwrap_or("");
    assert!(!err.is_empty(), "no docker.error: {info}");
    eprintln!("docker unavailable: {err}");
    let config = local_config(&hub);
    stop_hub_and_check_child_gone(&mut hub, &config);
}

#[test]
fn local_agent_dies_with_a_killed_hub_and_one_agent_after_restart() {
    let user = UserEnv::new();
    let mut hub = start_local_hub(&user, &[]);
    let name = wait_hint(&hub, 1);
    wait_one_online(&user, &hub);
    let config = local_config(&hub);
    let pid = local_agent_pid(&config);
    let needle = format!("run --config {}", config.display());

    // kill -9: no chance for the hub to stop its child; the agent notices.
    let t = Instant::now();
    hub.kill9();
    wait_until(
        "the orphaned local agent to exit",
        Duration::from_secs(5),
        Duration::from_millis(50),
        || Ok(pids_matching(&needle).is_empty().then_some(())),
    )
    .unwrap_or_else(|e| panic!("{e:#}: pid {pid} still there: {:?}", pids_matching(&needle)));
    eprintln!(
        "local agent gone {:?} after kill -9 of the hub",
        t.elapsed()
    );

    // The next start runs one agent, which stays put (no flapping).
    hub.restart().unwrap();
    assert_eq!(wait_hint(&hub, 2), name);
    let a = wait_one_online(&user, &hub);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        pids_matching(&needle).len(),
        1,
        "{:?}",
        pids_matching(&needle)
    );
    let again = wait_one_online(&user, &hub);
    assert_eq!(
        again["address"], a["address"],
        "the connection changed: {again}"
    );
    stop_hub_and_check_child_gone(&mut hub, &config);
}
