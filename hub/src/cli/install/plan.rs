//! `agent install`'s inputs resolved from the flags before any network use:
//! the SSH target, key, agent binary, labels and host-key check.

use std::path::PathBuf;

use anyhow::{anyhow, bail, Context};
use nextdeploy_shared::labels::{parse_labels, Labels};

use super::remote::HostCheck;
use super::InstallArgs;

/// `[USER@]HOST[:PORT]` of `--ssh`.
pub(super) struct Target {
    pub user: String,
    pub host: String,
    pub port: u16,
}

pub(super) fn parse_target(s: &str) -> anyhow::Result<Target> {
    let (user, rest) = match s.split_once('@') {
        Some((u, r)) => (u.to_string(), r),
        None => ("root".to_string(), s),
    };
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') || h.starts_with('[') => (
            h.trim_start_matches('[').trim_end_matches(']').to_string(),
            p.parse().map_err(|_| anyhow!("bad port in --ssh {s}"))?,
        ),
        _ => (rest.to_string(), 22),
    };
    if user.is_empty() || host.is_empty() {
        bail!("--ssh must be [USER@]HOST[:PORT]");
    }
    Ok(Target { user, host, port })
}

fn home() -> PathBuf {
    PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| ".".into()))
}

/// The local inputs of an install, resolved from the flags before any network use.
pub(super) struct Plan {
    pub target: Target,
    pub identity: PathBuf,
    pub binary: PathBuf,
    pub labels: Labels,
    pub hub_ssh: String,
    pub check: HostCheck,
    pub prefix: String,
}

/// Resolve the flags: target, key, binary (must exist), labels, hub SSH address.
pub(super) fn plan(args: &InstallArgs) -> anyhow::Result<Plan> {
    let target = parse_target(&args.ssh)?;
    let identity = args
        .identity
        .clone()
        .unwrap_or_else(|| home().join(".ssh/id_ed25519"));
    let binary = match &args.binary {
        Some(b) => b.clone(),
        None => std::env::current_exe()
            .context("cannot locate this program")?
            .with_file_name("nextdeploy-agent"),
    };
    if !binary.is_file() {
        bail!(
            "no agent binary at {} (pass --binary PATH)",
            binary.display()
        );
    }
    let labels = parse_labels(&args.labels).map_err(anyhow::Error::msg)?;
    // Empty: learnt from the hub once connected (`learn_hub_ssh`).
    let hub_ssh = args.hub_ssh.clone().unwrap_or_default();
    let check = HostCheck {
        known_hosts: args
            .known_hosts
            .clone()
            .unwrap_or_else(|| home().join(".ssh/known_hosts")),
        accept_new: args.accept_new_host_key,
    };
    let prefix = args.remote_prefix.clone().unwrap_or_default();
    Ok(Plan {
        target,
        identity,
        binary,
        labels,
        hub_ssh,
        check,
        prefix,
    })
}
