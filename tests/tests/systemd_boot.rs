#![allow(clippy::unwrap_used, clippy::expect_used)]
//! deploy/install-agent.sh and deploy/install-hub.sh under a booted systemd:
//! a minimal Debian bookworm root (scripts/systemd-root.sh, built once per
//! machine) booted with `systemd-nspawn -b --keep-unit` on the host's
//! network, the scripts run inside as deploy/README.md says, with the units'
//! full hardening. Agents enrol with a hub on the host's 127.0.0.1 (or one
//! installed in the same machine).

use std::time::{Duration, Instant};

use nextdeploy_tests::booted::*;
use nextdeploy_tests::nspawn::{Machine, MachineOpts};
use nextdeploy_tests::*;

#[path = "systemd_boot/checks.rs"]
mod checks;
use checks::*;

/// The agent's unit restarts 5 s after a crash (RestartSec); then it dials.
const BACK_AFTER_KILL: Duration = Duration::from_secs(15);
/// Bound for an agent to show online after its unit (re)starts.
const ONLINE: Duration = Duration::from_secs(15);
/// Bound for the hub to see a stopped agent go (its TCP connection closes).
const OFFLINE: Duration = Duration::from_secs(5);

const AGENT: &str = "nextdeploy-agent.service";
const HUB: &str = "nextdeploy-hub.service";

/// The host's docker group id: the socket bound into the machine keeps it.
fn host_docker_gid() -> u32 {
    let meta = std::fs::metadata("/run/docker.sock").expect("the host's /run/docker.sock");
    std::os::unix::fs::MetadataExt::gid(&meta)
}

fn agent_entry(hub: &Hub, name: &str) -> serde_json::Value {
    hub.agent_entry(name).unwrap().unwrap_or_default()
}

#[test]
fn agent_lifecycle_under_systemd_with_a_docker_group() {
    let hub = start_hub().unwrap();
    let gid = host_docker_gid();
    let mut m = Machine::boot(
        "agent",
        MachineOpts {
            docker_socket: true,
        },
    )
    .unwrap();
    m.sh_ok(&format!("groupadd -g {gid} docker")).unwrap();
    assert_eq!(
        owner_mode(&m, "/run/docker.sock").unwrap(),
        "root:docker 660"
    );

    let jt = hub.join_token("sd-agent", "env=booted", "10m").unwrap();
    let out = install_agent(&m, &hub.ssh_addr(), &jt.token, "").unwrap();
    assert!(out.success(), "{}\n{}", out.describe(), m.journal());
    wait_online(&hub, &["sd-agent"], ONLINE).unwrap();
    assert_hardened_agent(&m, Some(gid));
    // Docker reached through the docker group only (root:docker 0660).
    wait_until_ok(
        "docker available",
        ONLINE,
        Duration::from_millis(200),
        || Ok(agent_entry(&hub, "sd-agent")["docker"]["available"] == true),
    )
    .unwrap();
    assert_eq!(owner_mode(&m, "/etc/nextdeploy").unwrap(), "root:root 755");
    assert_eq!(
        owner_mode(&m, "/etc/nextdeploy/agent").unwrap(),
        "nextdeploy-agent:nextdeploy-agent 700"
    );
    assert_eq!(
        owner_mode(&m, "/etc/nextdeploy/agent/agent.toml").unwrap(),
        "nextdeploy-agent:nextdeploy-agent 600"
    );
    assert_scores_within_readme(&m, AGENT, "agent");

    // restart: a new process, online again.
    let pid = main_pid(&m, AGENT).unwrap();
    m.sh_ok("systemctl restart nextdeploy-agent").unwrap();
    restarted_pid(&m, AGENT, pid).unwrap();
    wait_online(&hub, &["sd-agent"], ONLINE).unwrap();

    // stop: offline at once; start again.
    m.sh_ok("systemctl stop nextdeploy-agent").unwrap();
    let t = Instant::now();
    wait_offline(&hub, &["sd-agent"], OFFLINE).unwrap();
    eprintln!("stop -> offline on the hub in {:?}", t.elapsed());
    m.sh_ok("systemctl start nextdeploy-agent").unwrap();
    wait_online(&hub, &["sd-agent"], ONLINE).unwrap();

    // kill -9: systemd brings it back.
    let pid = main_pid(&m, AGENT).unwrap();
    // The main process only: `systemctl kill` also signals the cgroup's
    // auxiliary processes and can fail with EIO when one is exiting.
    m.sh_ok(&format!("kill -KILL {pid}")).unwrap();
    let t = Instant::now();
    wait_until_ok(
        "a new agent process",
        BACK_AFTER_KILL,
        Duration::from_millis(100),
        || Ok(main_pid(&m, AGENT).is_ok_and(|p| p != pid)),
    )
    .unwrap();
    wait_online(&hub, &["sd-agent"], ONLINE).unwrap();
    eprintln!("kill -9 -> online again in {:?}", t.elapsed());

    // rotate-key under ProtectSystem=strict: the new key is written, proven.
    let key = "/etc/nextdeploy/agent/agent_ed25519";
    let key_before = std::fs::read(m.path(key)).unwrap();
    hub.cli_json(&["agent", "rotate-key", "--server=sd-agent"])
        .unwrap();
    assert_ne!(std::fs::read(m.path(key)).unwrap(), key_before);
    wait_online(&hub, &["sd-agent"], ONLINE).unwrap();

    // reboot: enabled, online soon after boot.
    m.reboot().unwrap();
    let t = Instant::now();
    wait_online(&hub, &["sd-agent"], ONLINE).unwrap();
    eprintln!("reboot: online {:?} after the boot finished", t.elapsed());

    // upgrade: the same command again keeps key and config, restarts it.
    let conf = "/etc/nextdeploy/agent/agent.toml";
    let (conf_before, key_before) = (
        std::fs::read(m.path(conf)).unwrap(),
        std::fs::read(m.path(key)).unwrap(),
    );
    let pid = main_pid(&m, AGENT).unwrap();
    let out = install_agent(&m, "", "", "").unwrap();
    assert!(
        out.success() && out.mentions("already enrolled"),
        "{}",
        out.describe()
    );
    assert_eq!(std::fs::read(m.path(conf)).unwrap(), conf_before);
    assert_eq!(std::fs::read(m.path(key)).unwrap(), key_before);
    restarted_pid(&m, AGENT, pid).unwrap();
    wait_online(&hub, &["sd-agent"], ONLINE).unwrap();
    assert_hardened_agent(&m, Some(gid));

    // uninstall: nothing of it is left; the hub sees it go.
    let out = m
        .sh(&format!(
            "sh {}/install-agent.sh --uninstall",
            nextdeploy_tests::nspawn::DEPLOY_DIR
        ))
        .unwrap();
    assert!(
        out.success() && out.mentions("revoke"),
        "{}",
        out.describe()
    );
    wait_offline(&hub, &["sd-agent"], OFFLINE).unwrap();
    for p in [
        "/etc/nextdeploy",
        "/usr/local/bin/nextdeploy-agent",
        "/etc/systemd/system/nextdeploy-agent.service",
    ] {
        assert!(!m.path(p).exists(), "{p} left behind");
    }
    assert!(m.sh("id nextdeploy-agent").unwrap().failed().is_ok());
}

#[test]
fn agent_without_docker_group_and_a_failed_install_leaves_nothing() {
    let hub = start_hub().unwrap();
    let m = Machine::boot("nodocker", MachineOpts::default()).unwrap();
    assert!(m.sh("getent group docker").unwrap().failed().is_ok());
    let jt = hub.join_token("sd-bare", "", "10m").unwrap();

    // Make the unit fail at a setup step systemd logs, not the agent.
    m.sh_ok(
        "mkdir -p /etc/systemd/system/nextdeploy-agent.service.d && \
         printf '[Service]\\nSupplementaryGroups=no-such-group\\n' \
           >/etc/systemd/system/nextdeploy-agent.service.d/broken.conf",
    )
    .unwrap();
    let out = install_agent(&m, &hub.ssh_addr(), &jt.token, "").unwrap();
    assert!(!out.success(), "{}", out.describe());
    assert!(out.mentions("did not stay up"), "{}", out.describe());
    // The reason, from the whole journal: systemd's own line about the group.
    assert!(
        out.mentions("216/GROUP") || out.mentions("supplementary groups"),
        "no reason shown:\n{}\n{}",
        out.describe(),
        m.journal()
    );
    // Nothing left on the server...
    for p in [
        "/etc/nextdeploy",
        "/usr/local/bin/nextdeploy-agent",
        "/etc/systemd/system/nextdeploy-agent.service",
    ] {
        assert!(!m.path(p).exists(), "{p} left behind\n{}", out.describe());
    }
    assert!(m.sh("id nextdeploy-agent").unwrap().failed().is_ok());
    // ... nor on the hub: withdrawn, and the same join token works again.
    assert!(out.mentions("withdrew"), "{}", out.describe());
    assert!(
        hub.agent_list().unwrap().is_empty(),
        "{:?}",
        hub.agent_list()
    );

    m.sh_ok("rm -r /etc/systemd/system/nextdeploy-agent.service.d")
        .unwrap();
    let out = install_agent(&m, &hub.ssh_addr(), &jt.token, "").unwrap();
    assert!(out.success(), "{}\n{}", out.describe(), m.journal());
    assert!(out.mentions("no docker group"), "{}", out.describe());
    wait_online(&hub, &["sd-bare"], ONLINE).unwrap();
    assert_hardened_agent(&m, None);
    wait_until_ok(
        "docker unavailable",
        ONLINE,
        Duration::from_millis(200),
        || Ok(agent_entry(&hub, "sd-bare")["docker"]["available"] == false),
    )
    .unwrap();
}

#[test]
fn hub_install_restart_backup_upgrade_under_systemd() {
    let m = Machine::boot("hub", MachineOpts::default()).unwrap();
    let (ssh, http) = (free_port().unwrap(), free_port().unwrap());
    let out = install_hub(&m, ssh, http).unwrap();
    assert!(out.success(), "{}\n{}", out.describe(), m.journal());
    assert!(out.mentions("first admin token"), "{}", out.describe());
    let token = initial_token(&m);
    assert!(
        !out.mentions(&token),
        "the install printed the token itself"
    );

    let pid = main_pid(&m, HUB).unwrap();
    let uid = m.sh_ok("id -u nextdeploy").unwrap();
    assert!(proc_field(&m, pid, "Uid")
        .unwrap()
        .starts_with(&format!("{uid}\t")));
    assert_eq!(proc_field(&m, pid, "CapEff").unwrap(), "0000000000000000");
    assert_eq!(proc_field(&m, pid, "NoNewPrivs").unwrap(), "1");
    // PrivateUsers: its user namespace maps only root and itself.
    let map = m.sh_ok(&format!("cat /proc/{pid}/uid_map")).unwrap();
    assert!(
        !map.contains("4294967295"),
        "not in a private user namespace: {map}"
    );
    assert_eq!(
        owner_mode(&m, "/var/lib/nextdeploy").unwrap(),
        "nextdeploy:nextdeploy 700"
    );
    let loose = m
        .sh_ok("find /var/lib/nextdeploy -mindepth 1 \\( -type f ! -perm 600 \\) -o \\( -type d ! -perm 700 \\)")
        .unwrap();
    assert!(loose.is_empty(), "state files not 0600/0700: {loose}");
    assert_eq!(owner_mode(&m, "/etc/nextdeploy").unwrap(), "root:root 755");
    assert_eq!(
        owner_mode(&m, "/etc/nextdeploy/hub").unwrap(),
        "nextdeploy:nextdeploy 700"
    );
    assert_eq!(health_inside(&m, http).unwrap(), 200);
    let fp = keyscan_fingerprint(ssh).unwrap();
    assert_scores_within_readme(&m, HUB, "hub");
    let host_key = key_secret(&m, "/var/lib/nextdeploy/ssh_host_ed25519_key");
    assert_adm_reads_no_secret(
        &m,
        &[("admin token", token.clone()), ("host key", host_key)],
        &["/var/lib/nextdeploy", "/etc/nextdeploy/hub"],
    );

    // restart: same host key.
    m.sh_ok("systemctl restart nextdeploy-hub").unwrap();
    restarted_pid(&m, HUB, pid).unwrap();
    wait_until_ok("hub back", ONLINE, Duration::from_millis(100), || {
        Ok(health_inside(&m, http).is_ok_and(|s| s == 200))
    })
    .unwrap();
    assert_eq!(keyscan_fingerprint(ssh).unwrap(), fp);

    // backup while it runs, as the README says.
    let out = m
        .sh("nextdeploy hub backup --to /root/hub.tar --data-dir /var/lib/nextdeploy && tar -tf /root/hub.tar")
        .unwrap();
    assert!(
        out.success() && out.mentions("ssh_host_ed25519_key"),
        "{}",
        out.describe()
    );
    assert_eq!(owner_mode(&m, "/root/hub.tar").unwrap(), "root:root 600");

    // a second admin token retires the initial one's file.
    let mine = cli_inside(
        &m,
        http,
        &token,
        "token create --role admin --name me --output json",
    )
    .unwrap()
    .ok()
    .unwrap()
    .json()
    .unwrap();
    let mine = mine["token"].as_str().unwrap().to_string();
    let file = m.path("/var/lib/nextdeploy/initial-admin-token");
    wait_until_ok(
        "initial-admin-token removed",
        Duration::from_secs(15),
        Duration::from_millis(200),
        || Ok(!file.exists()),
    )
    .unwrap();

    // upgrade: store and host key kept, no token shown again.
    let out = install_hub(&m, ssh, http).unwrap();
    assert!(out.success(), "{}\n{}", out.describe(), m.journal());
    assert!(
        out.mentions("keeping the existing store"),
        "{}",
        out.describe()
    );
    assert!(!out.mentions("first admin token"), "{}", out.describe());
    assert_eq!(keyscan_fingerprint(ssh).unwrap(), fp);
    cli_inside(&m, http, &mine, "agent list")
        .unwrap()
        .ok()
        .unwrap();
}

#[test]
fn hub_and_agent_on_one_host_keep_apart_and_old_layout_moves() {
    let m = Machine::boot("both", MachineOpts::default()).unwrap();
    let (ssh, http) = (free_port().unwrap(), free_port().unwrap());
    install_hub(&m, ssh, http).unwrap().ok().unwrap();
    let admin = initial_token(&m);
    let jt = cli_inside(
        &m,
        http,
        &admin,
        "join-token create --name both --ttl 10m --output json",
    )
    .unwrap()
    .ok()
    .unwrap()
    .json()
    .unwrap();
    let jt = jt["token"].as_str().unwrap().to_string();
    let out = install_agent(&m, &format!("127.0.0.1:{ssh}"), &jt, "").unwrap();
    assert!(out.success(), "{}\n{}", out.describe(), m.journal());
    let online = || {
        wait_until_ok("agent online", ONLINE, Duration::from_millis(200), || {
            Ok(agent_online_inside(&m, http, &admin, "both"))
        })
    };
    online().unwrap();

    // Neither user can touch the other's directory.
    let check_apart = || {
        assert_eq!(owner_mode(&m, "/etc/nextdeploy").unwrap(), "root:root 755");
        assert_eq!(
            owner_mode(&m, "/etc/nextdeploy/hub").unwrap(),
            "nextdeploy:nextdeploy 700"
        );
        assert_eq!(
            owner_mode(&m, "/etc/nextdeploy/agent").unwrap(),
            "nextdeploy-agent:nextdeploy-agent 700"
        );
        for (user, other) in [
            ("nextdeploy-agent", "hub/hub.env"),
            ("nextdeploy", "agent/agent.toml"),
        ] {
            let out = sh_as(
                &m,
                user,
                &format!(
                    "echo x >>/etc/nextdeploy/{other} || mv /etc/nextdeploy/{} /tmp/x",
                    other.split('/').next().unwrap()
                ),
            )
            .unwrap();
            assert!(!out.success(), "{user} changed {other}: {}", out.describe());
        }
    };
    check_apart();
    let key = "/etc/nextdeploy/agent/agent_ed25519";
    assert_adm_reads_no_secret(
        &m,
        &[
            ("agent key", key_secret(&m, key)),
            ("admin token", admin.clone()),
            ("join token", jt.clone()),
        ],
        &[
            "/etc/nextdeploy/agent",
            "/etc/nextdeploy/hub",
            "/var/lib/nextdeploy",
        ],
    );
    let key_before = std::fs::read(m.path(key)).unwrap();

    // An install of the old layout runs, and re-running the scripts moves it.
    make_old_layout(&m);
    online().unwrap();
    let out = install_hub(&m, ssh, http).unwrap();
    assert!(out.success() && out.mentions("moved"), "{}", out.describe());
    let out = install_agent(&m, "", "", "").unwrap();
    assert!(
        out.success() && out.mentions("moved the agent's files"),
        "{}",
        out.describe()
    );
    assert!(out.mentions("already enrolled"), "{}", out.describe());
    assert_eq!(
        std::fs::read(m.path(key)).unwrap(),
        key_before,
        "key changed"
    );
    for gone in [
        "/etc/nextdeploy/hub.env",
        "/etc/nextdeploy/agent.toml",
        "/etc/nextdeploy/agent_ed25519",
    ] {
        assert!(!m.path(gone).exists(), "{gone} left in the old place");
    }
    let conf = std::fs::read_to_string(m.path("/etc/nextdeploy/agent/agent.toml")).unwrap();
    assert!(
        conf.contains("key_path = \"/etc/nextdeploy/agent/agent_ed25519\""),
        "{conf}"
    );
    check_apart();
    online().unwrap();
    assert_eq!(health_inside(&m, http).unwrap(), 200);
}
