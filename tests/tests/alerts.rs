#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Alerts end to end: real hub, agent and Docker, and a webhook receiver on
//! loopback written here (std `TcpListener`, one request per connection)
//! that records what it gets and can be told to answer 500 for a while.
//! A container that exits 3 fires `container_died` once (exit code 3, body
//! signed) and resolves once after `docker start`; a receiver down for about
//! 10 s still gets each notification once; a hub killed with SIGKILL before
//! delivery delivers once after its restart; an agent killed fires
//! `agent_offline` once and resolves once when it is back.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nextdeploy_tests::docker::*;
use nextdeploy_tests::{wait_online, wait_until};
use serde_json::Value;

const SECRET: &str = "s3cret-for-tests";
/// Fire, deliver, or resolve: events arrive within a second; a retry after
/// a 10 s outage within 16 s of backoff.
const ALERT_WAIT: Duration = Duration::from_secs(60);

/// One request the receiver took.
#[derive(Debug, Clone)]
struct Received {
    headers: HashMap<String, String>,
    body: Vec<u8>,
    answered: u16,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// The webhook receiver.
struct Receiver {
    port: u16,
    got: Arc<Mutex<Vec<Received>>>,
    status: Arc<AtomicU16>,
}

fn read_request(s: &mut TcpStream) -> Option<(HashMap<String, String>, Vec<u8>)> {
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = s.read(&mut chunk).ok()?;
        if n == 0 || buf.len() > 1 << 20 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let headers: HashMap<String, String> = head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let len: usize = headers.get("content-length")?.parse().ok()?;
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < len {
        let n = s.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some((headers, body))
}

impl Receiver {
    fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let got: Arc<Mutex<Vec<Received>>> = Arc::default();
        let status = Arc::new(AtomicU16::new(200));
        let (g, st) = (got.clone(), status.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut s) = conn else { continue };
                let Some((headers, body)) = read_request(&mut s) else {
                    continue;
                };
                let answered = st.load(Ordering::SeqCst);
                let reply = format!(
                    "HTTP/1.1 {answered} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
                let _ = s.write_all(reply.as_bytes());
                g.lock().unwrap().push(Received {
                    headers,
                    body,
                    answered,
                });
            }
        });
        Receiver { port, got, status }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook/abc", self.port)
    }

    fn answer(&self, code: u16) {
        self.status.store(code, Ordering::SeqCst);
    }

    /// Requests answered 2xx: what was delivered.
    fn delivered(&self) -> Vec<Received> {
        let got = self.got.lock().unwrap();
        got.iter()
            .filter(|r| (200..300).contains(&r.answered))
            .cloned()
            .collect()
    }

    fn refused(&self) -> usize {
        self.got
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.answered >= 500)
            .count()
    }

    /// Delivered notifications whose body matches, once at least `n` are there.
    fn wait_for(&self, what: &str, n: usize, f: impl Fn(&Value) -> bool) -> Vec<Value> {
        wait_until(what, ALERT_WAIT, Duration::from_millis(200), || {
            let hits: Vec<Value> = self
                .delivered()
                .iter()
                .map(Received::json)
                .filter(|v| f(v))
                .collect();
            Ok((hits.len() >= n).then_some(hits))
        })
        .unwrap()
    }
}

/// HMAC-SHA256 by Python's standard library: a check that owes nothing to
/// the hub's code.
fn python_hmac(secret: &str, body: &[u8]) -> String {
    let script = "import hmac,hashlib,sys; k=sys.argv[1].encode(); \
                  print(hmac.new(k, sys.stdin.buffer.read(), hashlib.sha256).hexdigest())";
    let mut child = std::process::Command::new("python3")
        .args(["-c", script, secret])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(body).unwrap();
    let out = child.wait_with_output().unwrap();
    format!("sha256={}", String::from_utf8_lossy(&out.stdout).trim())
}

fn setup(env: &DockerEnv, rx: &Receiver, on: &str, extra: &[&str]) {
    env.hub
        .cli_json(&[
            "alert",
            "channel",
            "add",
            "ops",
            "--webhook",
            &rx.url(),
            "--secret",
            SECRET,
        ])
        .unwrap();
    let sel = format!("test={}", env.server().trim_start_matches("dk-"));
    let mut args = vec!["alert", "rule", "add", "r1", "--on", on, "--selector", &sel];
    args.extend(extra);
    args.extend(["--channel", "ops"]);
    env.hub.cli_json(&args).unwrap();
}

fn count(rx: &Receiver, status: &str) -> usize {
    rx.delivered()
        .iter()
        .filter(|r| r.json()["status"] == status && r.json()["rule"] == "r1")
        .count()
}

#[test]
fn a_container_that_exits_3_fires_once_signed_survives_an_outage_and_resolves_once() {
    let env = DockerEnv::start("alerts-died", &[]).unwrap();
    let rx = Receiver::start();
    let glob = format!("{}*", env.names.prefix);
    setup(&env, &rx, "container-died", &["--container", &glob]);
    let test = env
        .hub
        .cli_json(&["alert", "channel", "test", "ops"])
        .unwrap();
    assert_eq!(test["delivered"], true, "{test}");
    let baseline = rx.delivered().len();

    // The receiver is down while the container dies.
    rx.answer(500);
    let c = env.run("exit3", &[], &["exit", "3", "1"]).unwrap();
    wait_until(
        "a refused attempt",
        ALERT_WAIT,
        Duration::from_millis(200),
        || Ok((rx.refused() > 0).then_some(())),
    )
    .unwrap();
    std::thread::sleep(Duration::from_secs(10));
    rx.answer(200);
    let fired = rx.wait_for("the firing notification", 1, |v| {
        v["status"] == "firing" && v["rule"] == "r1"
    });
    let f = &fired[0];
    assert_eq!(f["condition"], "container_died", "{f}");
    assert_eq!(f["rule"], "r1", "{f}");
    assert_eq!(f["server"], env.server(), "{f}");
    assert_eq!(f["container"], c.name.as_str(), "{f}");
    assert_eq!(f["value"]["exit_code"], 3, "{f}");
    assert_eq!(f["labels"]["suite"], "docker", "{f}");
    assert!(f["resolved_at"].is_null(), "{f}");
    for k in ["id", "summary", "started_at", "severity"] {
        assert!(f[k].is_string(), "{k} in {f}");
    }
    // Signed, and the signature is HMAC-SHA256 of the exact body.
    for r in rx.delivered().iter().skip(baseline) {
        let sig = r.headers.get("x-nextdeploy-signature").expect("signed");
        assert_eq!(sig, &python_hmac(SECRET, &r.body));
    }
    let firing = env.hub.cli_json(&["alert", "list"]).unwrap();
    assert_eq!(firing.as_array().unwrap().len(), 1, "{firing}");

    docker(&["start", &c.id]).unwrap();
    let resolved = rx.wait_for("the resolved notification", 1, |v| {
        v["status"] == "resolved"
    });
    assert_eq!(
        resolved[0]["id"].as_str().unwrap(),
        format!("{}-resolved", f["alert_id"].as_str().unwrap())
    );
    assert!(resolved[0]["resolved_at"].is_string());
    // It exits 3 again a second later: inside the warning cooldown, so it
    // fires quietly. Nothing more reaches the receiver.
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(count(&rx, "firing"), 1, "{:?}", rx.delivered());
    assert_eq!(count(&rx, "resolved"), 1);
    let history = env
        .hub
        .cli_json(&["alert", "history", "--since", "1h"])
        .unwrap();
    let first = history
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == f["alert_id"])
        .cloned()
        .unwrap();
    assert_eq!(first["status"], "resolved", "{first}");
    let n = &first["notifications"][0];
    assert_eq!(n["state"], "delivered", "{first}");
    assert!(n["attempts"].as_u64().unwrap() >= 2, "{first}");
}

#[test]
fn a_hub_killed_before_delivery_delivers_once_after_its_restart() {
    let mut env = DockerEnv::start("alerts-kill9", &[]).unwrap();
    let rx = Receiver::start();
    let glob = format!("{}*", env.names.prefix);
    setup(&env, &rx, "container-died", &["--container", &glob]);
    rx.answer(500);
    let c = env.run("exit3", &[], &["exit", "3", "1"]).unwrap();
    wait_until(
        "a refused attempt",
        ALERT_WAIT,
        Duration::from_millis(200),
        || Ok((rx.refused() > 0).then_some(())),
    )
    .unwrap();
    env.hub.kill9();
    rx.answer(200);
    env.hub.restart().unwrap();
    let fired = rx.wait_for("the firing notification", 1, |v| {
        v["status"] == "firing" && v["rule"] == "r1"
    });
    assert_eq!(fired[0]["container"], c.name.as_str());
    wait_online(&env.hub, &[env.server()], Duration::from_secs(30)).unwrap();
    // The restarted hub kept the alert firing: it does not fire it again.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(count(&rx, "firing"), 1, "{:?}", rx.delivered());
    let firing = env.hub.cli_json(&["alert", "list"]).unwrap();
    assert_eq!(firing.as_array().unwrap().len(), 1, "{firing}");
}

#[test]
fn an_agent_killed_fires_offline_once_and_resolves_once_when_back() {
    let mut env = DockerEnv::start("alerts-offline", &[]).unwrap();
    let rx = Receiver::start();
    setup(
        &env,
        &rx,
        "agent-offline",
        &["--for", "2s", "--severity", "critical"],
    );
    env.agent.kill();
    let fired = rx.wait_for("agent offline", 1, |v| {
        v["status"] == "firing" && v["rule"] == "r1"
    });
    assert_eq!(fired[0]["condition"], "agent_offline");
    assert_eq!(fired[0]["server"], env.server());
    assert!(fired[0]["container"].is_null());
    assert_eq!(fired[0]["severity"], "critical");
    assert!(fired[0]["value"]["offline_s"].as_i64().unwrap() >= 2);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(count(&rx, "firing"), 1);
    env.agent.start().unwrap();
    wait_online(&env.hub, &[env.server()], Duration::from_secs(30)).unwrap();
    rx.wait_for("agent back", 1, |v| v["status"] == "resolved");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!((count(&rx, "firing"), count(&rx, "resolved")), (1, 1));
    assert!(env
        .hub
        .cli_json(&["alert", "list"])
        .unwrap()
        .as_array()
        .unwrap()
        .is_empty());
}

#[test]
fn channels_and_rules_are_managed_by_admins_and_refused_kinds_say_so() {
    let hub = nextdeploy_tests::start_hub().unwrap();
    let rx = Receiver::start();
    let out = hub
        .cli(&[
            "alert",
            "channel",
            "add",
            "d",
            "--other",
            "discord=https://x.example/y",
        ])
        .unwrap();
    assert!(!out.status.success());
    assert!(out.stderr.contains("not supported yet"), "{}", out.stderr);
    hub.cli_json(&["alert", "channel", "add", "ops", "--webhook", &rx.url()])
        .unwrap();
    let list = hub.cli_json(&["alert", "channel", "list"]).unwrap();
    assert_eq!(
        list[0]["target"],
        format!("http://127.0.0.1:{}/…", rx.port),
        "{list}"
    );
    let rule = [
        "alert",
        "rule",
        "add",
        "sick",
        "--on",
        "unhealthy",
        "--for",
        "30s",
        "--channel",
        "ops",
    ];
    let r = hub.cli_json(&rule).unwrap();
    assert_eq!(
        (r["for_s"].as_u64(), r["severity"].as_str()),
        (Some(30), Some("warning"))
    );
    let out = hub.cli(&["alert", "channel", "remove", "ops"]).unwrap();
    assert!(!out.status.success(), "a used channel stays");
    let viewer = hub
        .cli_json(&["token", "create", "--name", "v", "--role", "viewer"])
        .unwrap();
    let vt = viewer["token"].as_str().unwrap();
    assert!(hub.cli_json_as(vt, &["alert", "list"]).unwrap().is_array());
    let out = hub.cli_as(vt, &["alert", "rule", "list"]).unwrap();
    assert!(out.stderr.contains("admin"), "{}", out.stderr);
    hub.cli_json(&["alert", "rule", "remove", "sick"]).unwrap();
    hub.cli_json(&["alert", "channel", "remove", "ops"])
        .unwrap();
}
