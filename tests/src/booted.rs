//! The install scripts run as deploy/README.md says, inside a booted
//! [`Machine`], and probes of what they left: unit pids, process
//! credentials, file owners and modes, `systemd-analyze security` scores.

use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};

use crate::nspawn::{Machine, BIN_DIR, DEPLOY_DIR};
use crate::paths::workspace_root;
use crate::process::Output;

/// Bound for one run of an install script (it waits 2 s for the unit to
/// stay up; the rest is useradd, systemctl and an enrolment).
pub const INSTALL_TIMEOUT: Duration = Duration::from_secs(120);

/// `install-agent.sh --hub HUB --binary ... ARGS` with the join token in
/// the environment (kept out of argv, as the README says).
pub fn install_agent(m: &Machine, hub: &str, token: &str, args: &str) -> Result<Output> {
    let hub_arg = if hub.is_empty() {
        String::new()
    } else {
        format!("--hub {hub}")
    };
    m.sh_timeout(
        &format!(
            "NEXTDEPLOY_JOIN_TOKEN='{token}' sh {DEPLOY_DIR}/install-agent.sh {hub_arg} \
             --binary {BIN_DIR}/nextdeploy-agent {args}"
        ),
        INSTALL_TIMEOUT,
    )
}

/// `install-hub.sh --binary ... --ssh-listen 127.0.0.1:SSH --http-listen 127.0.0.1:HTTP`.
pub fn install_hub(m: &Machine, ssh_port: u16, http_port: u16) -> Result<Output> {
    m.sh_timeout(
        &format!(
            "sh {DEPLOY_DIR}/install-hub.sh --binary {BIN_DIR}/nextdeploy \
             --ssh-listen 127.0.0.1:{ssh_port} --http-listen 127.0.0.1:{http_port}"
        ),
        INSTALL_TIMEOUT,
    )
}

/// The unit's main pid (in the machine's pid namespace); an error if it is
/// not running.
pub fn main_pid(m: &Machine, unit: &str) -> Result<u32> {
    let pid: u32 = m
        .sh_ok(&format!("systemctl show -p MainPID --value {unit}"))?
        .parse()
        .context("MainPID")?;
    if pid == 0 {
        bail!("{unit} is not running: {}", status(m, unit));
    }
    Ok(pid)
}

/// How long a restarted unit may take to run again: one failed attempt
/// and the unit's `RestartSec=5s` fit inside.
pub const RESTARTED: Duration = Duration::from_secs(20);

/// The main PID of UNIT once it runs again with a PID other than `old`.
/// An attempt that failed on the way (seen once inside nspawn as
/// `status=219/CGROUP` right after `systemctl restart`) is printed with
/// the journal, and systemd's `Restart=on-failure` must bring it back.
pub fn restarted_pid(m: &Machine, unit: &str, old: u32) -> Result<u32> {
    let deadline = std::time::Instant::now() + RESTARTED;
    let mut failed_seen = false;
    loop {
        if let Ok(pid) = main_pid(m, unit) {
            if pid != old {
                return Ok(pid);
            }
        } else if !failed_seen {
            failed_seen = true;
            eprintln!(
                "{unit}: not running right after the restart (systemd retries):\n{}",
                status(m, unit)
            );
        }
        if std::time::Instant::now() > deadline {
            bail!(
                "{unit} not running again within {RESTARTED:?}: {}",
                status(m, unit)
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `systemctl status UNIT` (for messages).
pub fn status(m: &Machine, unit: &str) -> String {
    m.sh(&format!("systemctl status --no-pager -n 20 {unit}"))
        .map(|o| o.stdout)
        .unwrap_or_default()
}

/// A field of `/proc/PID/status` inside the machine (`Uid`, `CapEff`, ...).
pub fn proc_field(m: &Machine, pid: u32, field: &str) -> Result<String> {
    let text = m.sh_ok(&format!("cat /proc/{pid}/status"))?;
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .map(|v| v.trim().to_string())
        .ok_or_else(|| anyhow!("no {field} in /proc/{pid}/status"))
}

/// `owner:group mode` of a path inside (`stat -c '%U:%G %a'`).
pub fn owner_mode(m: &Machine, path: &str) -> Result<String> {
    m.sh_ok(&format!("stat -c '%U:%G %a' {path}"))
}

/// The machine's `systemd-analyze security UNIT` overall exposure.
pub fn exposure(m: &Machine, unit: &str) -> Result<f64> {
    let out = m.sh(&format!("systemd-analyze security --no-pager {unit}"))?;
    let line = out
        .stdout
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .ok_or_else(|| anyhow!("no exposure level: {}", out.describe()))?;
    // "→ Overall exposure level for nextdeploy-agent.service: 1.4 OK :-)"
    figure_after(line, &format!("{unit}:")).with_context(|| format!("cannot parse {line:?}"))
}

/// The first number after `marker` in `line`.
fn figure_after(line: &str, marker: &str) -> Result<f64> {
    let at = line.find(marker).ok_or_else(|| anyhow!("no {marker:?}"))?;
    let word = line[at + marker.len()..]
        .split_whitespace()
        .next()
        .ok_or_else(|| anyhow!("no figure"))?;
    Ok(word.trim_end_matches([',', ';', ')']).parse()?)
}

/// The booted-systemd exposure figure deploy/README.md gives for `which`
/// (`hub` or `agent`), from its line "booted ...: hub X, agent Y".
pub fn readme_exposure(which: &str) -> Result<f64> {
    let path = workspace_root().join("deploy/README.md");
    let text = std::fs::read_to_string(&path)?;
    let joined = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let start = joined
        .find("under a booted systemd")
        .ok_or_else(|| anyhow!("{} has no 'under a booted systemd' figures", path.display()))?;
    let rest = &joined[start..];
    let at = rest
        .find(&format!("{which} "))
        .ok_or_else(|| anyhow!("no {which} figure after 'under a booted systemd'"))?;
    let word = rest[at + which.len() + 1..]
        .split_whitespace()
        .next()
        .unwrap_or_default();
    word.trim_end_matches([',', ';', ')'])
        .parse()
        .with_context(|| format!("cannot parse the {which} figure {word:?}"))
}

/// `nextdeploy ARGS` inside, as root, against the hub's API on
/// 127.0.0.1:`http_port` with `token`, trusting the hub's certificate pin.
pub fn cli_inside(m: &Machine, http_port: u16, token: &str, args: &str) -> Result<Output> {
    let pin = api_pin(m)?;
    m.sh(&format!(
        "NEXTDEPLOY_HUB=https://127.0.0.1:{http_port} NEXTDEPLOY_TOKEN='{token}' \
         NEXTDEPLOY_TLS_PIN={pin} /usr/local/bin/nextdeploy {args}"
    ))
}

/// The pin of the installed hub's API certificate (read from inside).
pub fn api_pin(m: &Machine) -> Result<String> {
    use base64::Engine;
    let pem = m.sh_ok("cat /var/lib/nextdeploy/api-cert.pem")?;
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD.decode(b64.trim())?;
    nextdeploy_shared::tls::spki_pin(&der).map_err(anyhow::Error::msg)
}

/// `GET /health` of the installed hub over TLS: its status.
pub fn health_inside(m: &Machine, http_port: u16) -> Result<u16> {
    Ok(crate::http::https_get(http_port, &api_pin(m)?, "/health", &[])?.0)
}

/// `script` run by /bin/sh as `user` (its own groups, no privileges).
pub fn sh_as(m: &Machine, user: &str, script: &str) -> Result<Output> {
    let quoted = script.replace('\'', r"'\''");
    m.sh(&format!(
        "setpriv --reuid={user} --regid={user} --init-groups -- sh -c '{quoted}'"
    ))
}

/// Where `user` can read `secret`: files under / (not /proc, /sys, /dev,
/// or the read-only binaries in /opt) and the journal, as `journal` or paths.
pub fn secret_readable_by(m: &Machine, user: &str, secret: &str) -> Result<Vec<String>> {
    let files = sh_as(
        m,
        user,
        &format!(
            "grep -rlsF -e '{secret}' / --exclude-dir=proc --exclude-dir=sys \
             --exclude-dir=dev --exclude-dir=opt; true"
        ),
    )?
    .ok()?;
    let mut found: Vec<String> = files.stdout.lines().map(str::to_string).collect();
    let journal = sh_as(
        m,
        user,
        &format!("journalctl --no-pager -q -o cat | grep -cF -e '{secret}'; true"),
    )?
    .ok()?;
    if journal.stdout.trim() != "0" {
        found.push(format!("journal ({} lines)", journal.stdout.trim()));
    }
    Ok(found)
}

/// Whether `user` reads the journal at all (so [`secret_readable_by`]'s
/// journal check can fail): it sees the line containing `needle`.
pub fn journal_readable_by(m: &Machine, user: &str, needle: &str) -> Result<bool> {
    let out = sh_as(
        m,
        user,
        &format!("journalctl --no-pager -q -o cat | grep -cF -e '{needle}'; true"),
    )?;
    Ok(out.stdout.trim().parse::<u32>().unwrap_or(0) > 0)
}
