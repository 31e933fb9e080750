//! Assertions the booted-systemd suite shares: the agent's credentials, the
//! units' scores against the README, secrets out of the `adm` group's reach,
//! the install layout of the scripts before 2026-12.

use nextdeploy_tests::booted::*;
use nextdeploy_tests::nspawn::Machine;

/// The agent runs unprivileged under the unit's hardening.
pub fn assert_hardened_agent(m: &Machine, docker_gid: Option<u32>) {
    let pid = main_pid(m, "nextdeploy-agent.service").unwrap();
    let uid = m.sh_ok("id -u nextdeploy-agent").unwrap();
    assert!(proc_field(m, pid, "Uid")
        .unwrap()
        .starts_with(&format!("{uid}\t")));
    assert_eq!(proc_field(m, pid, "CapEff").unwrap(), "0000000000000000");
    assert_eq!(proc_field(m, pid, "CapBnd").unwrap(), "0000000000000000");
    assert_eq!(proc_field(m, pid, "NoNewPrivs").unwrap(), "1");
    assert_eq!(proc_field(m, pid, "Seccomp").unwrap(), "2");
    let groups = proc_field(m, pid, "Groups").unwrap();
    match docker_gid {
        Some(g) => assert!(
            groups.split_whitespace().any(|x| x == g.to_string()),
            "{groups}"
        ),
        None => assert!(groups.is_empty() || !groups.contains(' '), "{groups}"),
    }
}

pub fn assert_scores_within_readme(m: &Machine, unit: &str, which: &str) {
    let score = exposure(m, unit).unwrap();
    let bound = readme_exposure(which).unwrap();
    eprintln!("{unit}: systemd-analyze security {score} (README: {bound})");
    assert!(
        score <= bound,
        "{unit}: exposure {score} > README's {bound}"
    );
}

/// The hub's first admin token, as the install left it.
pub fn initial_token(m: &Machine) -> String {
    std::fs::read_to_string(m.path("/var/lib/nextdeploy/initial-admin-token"))
        .unwrap()
        .trim()
        .to_string()
}

/// The base64 body of an OpenSSH private key file inside (its secret part).
pub fn key_secret(m: &Machine, path: &str) -> String {
    let text = std::fs::read_to_string(m.path(path)).unwrap();
    text.lines().nth(2).unwrap().to_string()
}

/// A user in `adm` reads the journal but no secret: not `secrets`, not the
/// files that hold them.
pub fn assert_adm_reads_no_secret(m: &Machine, secrets: &[(&str, String)], dirs: &[&str]) {
    m.sh_ok("id auditor >/dev/null 2>&1 || useradd -M -G adm auditor")
        .unwrap();
    assert!(
        journal_readable_by(m, "auditor", "Host key fingerprint").unwrap(),
        "a member of adm should read the journal (else the check below proves nothing)"
    );
    for (what, secret) in secrets {
        let found = secret_readable_by(m, "auditor", secret).unwrap();
        assert!(found.is_empty(), "{what} readable by adm: {found:?}");
    }
    for d in dirs {
        assert!(
            sh_as(m, "auditor", &format!("ls {d}"))
                .unwrap()
                .failed()
                .is_ok(),
            "{d}"
        );
    }
}

/// Put a one-host install back into the layout of the scripts before
/// 2026-12 (everything in /etc/nextdeploy, the agent's user owning it 0700,
/// units pointing there) and check it runs that way.
pub fn make_old_layout(m: &Machine) {
    m.sh_ok(
        "set -e; systemctl stop nextdeploy-agent nextdeploy-hub; cd /etc/nextdeploy; \
         mv agent/* . && rmdir agent; mv hub/hub.env . && rmdir hub; \
         sed -i 's#^key_path = .*#key_path = \"/etc/nextdeploy/agent_ed25519\"#' agent.toml; \
         chown -R nextdeploy-agent:nextdeploy-agent /etc/nextdeploy; chmod 0700 /etc/nextdeploy; \
         cd /etc/systemd/system; \
         sed -i 's#/etc/nextdeploy/agent/agent.toml#/etc/nextdeploy/agent.toml#; \
                 s#^ReadWritePaths=/etc/nextdeploy/agent#ReadWritePaths=/etc/nextdeploy#' nextdeploy-agent.service; \
         sed -i 's#/etc/nextdeploy/hub/hub.env#/etc/nextdeploy/hub.env#' nextdeploy-hub.service; \
         systemctl daemon-reload; systemctl start nextdeploy-hub nextdeploy-agent",
    )
    .unwrap();
}

pub fn agent_online_inside(m: &Machine, http: u16, token: &str, name: &str) -> bool {
    cli_inside(m, http, token, "agent list --output json")
        .ok()
        .and_then(|o| o.json().ok())
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
        .iter()
        .any(|a| a["name"] == name && a["online"] == true)
}
