#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Several hubs, one store (issue 23): real hub processes sharing one store
//! (a SQLite file in WAL mode; PostgreSQL for the presence test) and one
//! cluster secret, real agents.
//! Every hub presents the cluster's SSH host key and API pin; a wrong or
//! badly kept secret refuses to start; agents held by any hub show online
//! once, with their hub, through every hub's API; a killed hub's agents
//! show offline within the lease bound and come back through the next hub of
//! their list; `hub cluster status` lists the hubs; a token or agent revoked
//! on one hub is cut on another within a second; a hub cut off from the
//! store (its write lock held) cuts its agents and takes them back after.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use nextdeploy_tests::cluster::{hub_id, write_secret, Shared};
use nextdeploy_tests::*;
use serde_json::Value;

/// What the hub's lease bound promises (hub/src/limits.rs `AGENT_LEASE`,
/// 5 s), plus a heartbeat and the CLI's own time.
const LEASE_BOUND: Duration = Duration::from_secs(8);
/// An agent comes online within this.
const ONLINE_WAIT: Duration = Duration::from_secs(20);

/// `nextdeploy hub` that must refuse to start: its output.
fn refused_start(shared: &Shared, secret: &Path) -> Output {
    let data = shared.dir.path().join(format!("refused-{}", rand_tag()));
    let mut cmd = Command::new(hub_bin().unwrap());
    cmd.args([
        "hub",
        "--ssh-listen",
        "127.0.0.1:0",
        "--http-listen",
        "127.0.0.1:0",
    ])
    .arg("--data-dir")
    .arg(&data)
    .args(["--store", &shared.store, "--cluster-secret-file"])
    .arg(secret);
    let out = run_bounded(cmd, HUB_START_TIMEOUT).unwrap();
    assert!(!out.success(), "the hub started: {}", out.describe());
    out
}

fn rand_tag() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// The entry of `name` in `hub`'s agent list.
fn entry(hub: &Hub, name: &str) -> Value {
    let list = hub.agent_list().unwrap();
    let mine: Vec<&Value> = list.iter().filter(|a| a["name"] == name).collect();
    assert_eq!(
        mine.len(),
        1,
        "{name} listed {} times: {list:?}",
        mine.len()
    );
    mine[0].clone()
}

/// `hub cluster status --output json`, through `hub`.
fn status(hub: &Hub) -> Value {
    hub.cli_json(&["hub", "cluster", "status"]).unwrap()
}

#[test]
fn hubs_share_one_identity_and_refuse_a_wrong_or_open_secret() {
    let shared = Shared::new();
    let a = shared.first();
    let b = shared.join(&a);
    let c = shared.join(&a);
    for h in [&b, &c] {
        assert_eq!(h.fingerprint, a.fingerprint, "SSH host keys differ");
        assert!(a.tls_pin.is_some());
        assert_eq!(h.tls_pin, a.tls_pin, "API pins differ");
        // Only the first hub made an initial admin token.
        assert!(!h.data_dir.join("initial-admin-token").exists());
        // The first hub's token works on every hub.
        h.cli_json(&["whoami"]).unwrap();
    }
    // The store holds the keys sealed, never in clear (a run of the host
    // key's base64 is in neither the database nor its WAL).
    let key = std::fs::read_to_string(a.data_dir.join("ssh_host_ed25519_key")).unwrap();
    let run = &key.lines().nth(2).unwrap().as_bytes()[..32];
    for f in ["cluster.db", "cluster.db-wal"] {
        let bytes = std::fs::read(shared.dir.path().join(f)).unwrap_or_default();
        assert!(
            !contains_bytes(&bytes, run),
            "the host key is in {f} in clear"
        );
    }

    let wrong = write_secret(
        shared.dir.path(),
        "wrong.secret",
        "another-secret-of-enough-length-0123456789",
        0o600,
    );
    let out = refused_start(&shared, &wrong);
    assert!(
        out.stderr.contains("does not open the cluster's keys"),
        "{}",
        out.describe()
    );
    let open = write_secret(
        shared.dir.path(),
        "open.secret",
        "9f2c1be47a0d8e6c5b3a29f10e7d4c6b8a5f3e2d",
        0o644,
    );
    let out = refused_start(&shared, &open);
    assert!(out.stderr.contains("chmod 600"), "{}", out.describe());
    // The cluster's store without a secret: refused too.
    let data = shared.dir.path().join("no-secret");
    let mut cmd = Command::new(hub_bin().unwrap());
    cmd.args([
        "hub",
        "--ssh-listen",
        "127.0.0.1:0",
        "--http-listen",
        "127.0.0.1:0",
    ])
    .arg("--data-dir")
    .arg(&data)
    .args(["--store", &shared.store]);
    let out = run_bounded(cmd, HUB_START_TIMEOUT).unwrap();
    assert!(
        !out.success() && out.stderr.contains("belongs to a cluster"),
        "{}",
        out.describe()
    );
    let short = write_secret(shared.dir.path(), "short.secret", "tooshort", 0o600);
    let out = refused_start(&shared, &short);
    assert!(out.stderr.contains("at least 32"), "{}", out.describe());
}

#[test]
fn agents_show_online_once_with_their_hub_and_offline_when_it_dies() {
    agents_online_once(Shared::new());
}

/// The same on PostgreSQL: hubs on one database share the identity sealed
/// there, and agents show online once, with their hub, through any hub.
#[test]
fn on_postgresql_agents_show_online_once_with_their_hub_and_offline_when_it_dies() {
    agents_online_once(Shared::on_postgres());
}

/// A join token made on C names every live hub, C first; `hub cluster
/// status` lists the three hubs, alive, with the agents each holds.
fn join_tokens_and_status_name_every_hub(a: &Hub, b: &Hub, c: &Hub, ida: &str, idb: &str) {
    // A join token made on C names every live hub, C first.
    let jt = c.join_token("cl-later", "", "1h").unwrap();
    let named: Vec<&str> = jt.raw["ssh_address"].as_str().unwrap().split(',').collect();
    let mut others = named[1..].to_vec();
    others.sort();
    let mut want = [a.ssh_addr(), b.ssh_addr()];
    want.sort();
    assert_eq!(
        (named[0], others),
        (
            c.ssh_addr().as_str(),
            want.iter().map(String::as_str).collect()
        ),
        "{}",
        jt.raw
    );
    let s = status(c);
    let hubs = s["hubs"].as_array().unwrap();
    assert_eq!(hubs.len(), 3, "{s}");
    assert!(hubs.iter().all(|h| h["alive"] == true), "{s}");
    let held =
        |id: &str| -> Value { hubs.iter().find(|h| h["id"] == id).unwrap()["agents"].clone() };
    assert_eq!(held(ida), serde_json::json!(["cl-a"]), "{s}");
    assert_eq!(held(idb), serde_json::json!(["cl-b"]), "{s}");
    let table = c.cli(&["hub", "cluster", "status"]).unwrap().ok().unwrap();
    assert!(
        table.stdout.contains("(this hub)") && table.stdout.contains("cl-b"),
        "{}",
        table.stdout
    );
}

fn agents_online_once(shared: Shared) {
    let a = shared.first();
    let mut b = shared.join(&a);
    let c = shared.join(&a);
    for h in [&b, &c] {
        assert_eq!(h.fingerprint, a.fingerprint, "SSH host keys differ");
        assert_eq!(h.tls_pin, a.tls_pin, "API pins differ");
    }
    let (ida, idb) = (hub_id(&a), hub_id(&b));
    // One agent on A, one on B (the join token made on A works on B).
    let _on_a = enroll_agent(&a, "cl-a", "").unwrap();
    let jt = a.join_token("cl-b", "", "1h").unwrap();
    // Its list: a dead address, then B, then A (tried in that order).
    let dead = format!("127.0.0.1:{}", free_port().unwrap());
    let list = format!("{dead},{},{}", b.ssh_addr(), a.ssh_addr());
    let mut on_b = Agent::enroll_at(&b, &list, "cl-b", &jt.token).unwrap();
    on_b.start().unwrap();
    for h in [&a, &b, &c] {
        wait_online(h, &["cl-a", "cl-b"], ONLINE_WAIT).unwrap();
        assert_eq!(entry(h, "cl-a")["hub"]["id"], Value::from(ida.clone()));
        assert_eq!(entry(h, "cl-b")["hub"]["id"], Value::from(idb.clone()));
    }
    // `status` too: each row once, online, with its hub.
    let rows = c.cli_json(&["agent", "status"]).unwrap();
    let row = |n: &str| -> Value {
        let r: Vec<&Value> = rows
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["server"] == n)
            .collect();
        assert_eq!(r.len(), 1, "{rows}");
        r[0].clone()
    };
    assert_eq!(
        (row("cl-a")["online"].clone(), row("cl-a")["hub"].clone()),
        (Value::from(true), Value::from(ida.clone()))
    );
    assert_eq!(
        (row("cl-b")["online"].clone(), row("cl-b")["hub"].clone()),
        (Value::from(true), Value::from(idb.clone()))
    );
    join_tokens_and_status_name_every_hub(&a, &b, &c, &ida, &idb);

    // B dies without a word: its agent (stopped, so that it cannot move
    // yet) shows offline everywhere within the lease.
    on_b.signal("STOP").unwrap();
    let cont = ContOnDrop(on_b.pid().unwrap());
    b.kill9();
    let killed = Instant::now();
    wait_offline(&a, &["cl-b"], LEASE_BOUND).unwrap();
    wait_offline(&c, &["cl-b"], LEASE_BOUND).unwrap();
    eprintln!(
        "cl-b offline through A and C {:?} after B died",
        killed.elapsed()
    );
    assert_eq!(entry(&a, "cl-a")["online"], true);
    let s = status(&a);
    let dead = s["hubs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["id"] == idb.as_str())
        .cloned();
    assert_eq!(
        dead.as_ref().map(|h| h["alive"].clone()),
        Some(Value::from(false)),
        "{s}"
    );

    // Resumed, it finds B gone and moves to the next hub of its list: A.
    drop(cont);
    let resumed = Instant::now();
    wait_until(
        "cl-b online through A",
        ONLINE_WAIT,
        Duration::from_millis(100),
        || Ok((entry(&c, "cl-b")["hub"]["id"] == ida.as_str()).then_some(())),
    )
    .unwrap();
    eprintln!(
        "cl-b online through A {:?} after it resumed",
        resumed.elapsed()
    );
    assert_eq!(entry(&a, "cl-b")["online"], true);
    assert_eq!(entry(&a, "cl-b")["hub"]["id"], Value::from(ida.clone()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_on_one_hub_takes_effect_on_the_others_within_a_second() {
    let shared = Shared::new();
    let a = shared.first();
    let b = shared.join(&a);
    // A token made on A, a WebSocket on B.
    let t = a
        .cli_json(&["token", "create", "--role", "viewer", "--name", "cl-v"])
        .unwrap();
    let (id, token) = (t["id"].as_str().unwrap(), t["token"].as_str().unwrap());
    let mut ws = ws_connect(&b, Some(token), None).await.unwrap();
    let who = ws
        .request(
            &serde_json::json!({"id": 1, "action": "whoami"}),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    assert_eq!(who["type"], "result", "{who}");
    a.cli(&["token", "revoke", id]).unwrap().ok().unwrap();
    let revoked = Instant::now();
    let end = loop {
        match ws.next_event(Duration::from_secs(1)).await {
            WsEvent::Text(_) | WsEvent::Binary(_) => continue,
            other => break other,
        }
    };
    assert!(
        !matches!(end, WsEvent::Timeout),
        "B kept the revoked token's socket open\n{}",
        b.log_tail()
    );
    eprintln!(
        "B closed the WebSocket {:?} after A revoked its token",
        revoked.elapsed()
    );
    assert!(revoked.elapsed() < Duration::from_secs(1));

    // An agent held by B, revoked on A: B cuts it.
    let _agent = enroll_agent(&b, "cl-r", "").unwrap();
    wait_online(&a, &["cl-r"], ONLINE_WAIT).unwrap();
    let r = a.cli_json(&["agent", "revoke", "cl-r"]).unwrap();
    assert_eq!(r["was_online"], true, "online through B: {r}");
    let revoked = Instant::now();
    wait_until(
        "B cuts cl-r",
        Duration::from_secs(1),
        Duration::from_millis(20),
        || {
            Ok(b.log_text()
                .contains("agent revoked (on this or another hub): cut")
                .then_some(()))
        },
    )
    .unwrap();
    eprintln!("B cut the agent {:?} after A revoked it", revoked.elapsed());
    // Its lease goes with it: no hub holds it.
    wait_until(
        "cl-r released",
        LEASE_BOUND,
        Duration::from_millis(100),
        || {
            let s = status(&a);
            let held = s["hubs"]
                .as_array()
                .unwrap()
                .iter()
                .any(|h| h["agents"].as_array().unwrap().iter().any(|n| n == "cl-r"));
            Ok((!held).then_some(()))
        },
    )
    .unwrap();
}

#[test]
fn a_hub_cut_off_from_the_store_cuts_its_agents_and_takes_them_back_after() {
    let shared = Shared::new();
    let a = shared.first();
    let _agent = enroll_agent(&a, "cl-cut", "").unwrap();
    wait_online(&a, &["cl-cut"], ONLINE_WAIT).unwrap();
    // Hold the store's write lock: every heartbeat fails (reads still work,
    // WAL mode), as for a hub whose store went away.
    let path = shared.dir.path().join("cluster.db");
    let lock = rusqlite::Connection::open(&path).unwrap();
    lock.busy_timeout(Duration::from_secs(10)).unwrap();
    lock.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let locked = Instant::now();
    wait_until(
        "A cuts its agents",
        Duration::from_secs(8),
        Duration::from_millis(50),
        || {
            Ok(a.log_text()
                .contains("no heartbeat for longer than a lease")
                .then_some(()))
        },
    )
    .unwrap();
    eprintln!(
        "A cut off {:?} after the store was locked",
        locked.elapsed()
    );
    assert!(
        locked.elapsed() >= Duration::from_secs(3),
        "cut off too early"
    );
    // While cut off, A takes no agent: the agent is refused and keeps trying.
    wait_offline(&a, &["cl-cut"], Duration::from_secs(8)).unwrap();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(entry(&a, "cl-cut")["online"], false);
    lock.execute_batch("COMMIT").unwrap();
    drop(lock);
    let back = Instant::now();
    wait_online(&a, &["cl-cut"], Duration::from_secs(40)).unwrap();
    eprintln!(
        "cl-cut online again {:?} after the store came back",
        back.elapsed()
    );
    assert!(a.log_text().contains("the store answers again"));
}
