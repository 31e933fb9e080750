#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The systemd units in deploy/systemd pass `systemd-analyze verify` and score
//! within the issue's bounds on `systemd-analyze security --offline=true`
//! (hub at most 2.0, agent at most 3.0).

use std::path::{Path, PathBuf};
use std::process::Command;

use nextdeploy_tests::*;

fn unit(name: &str) -> PathBuf {
    workspace_root().join("deploy/systemd").join(name)
}

fn analyze(args: &[&str]) -> Output {
    let mut cmd = Command::new("systemd-analyze");
    cmd.args(args);
    run_bounded(cmd, CLI_TIMEOUT).expect("systemd-analyze (apt-get install systemd)")
}

/// The "Overall exposure level" figure of `systemd-analyze security`.
fn exposure(path: &Path) -> f64 {
    let out = analyze(&["security", "--offline=true", path.to_str().unwrap()]);
    let text = format!("{}{}", out.stdout, out.stderr);
    let line = text
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("no exposure level: {}", out.describe()));
    let figure = line
        .rsplit(':')
        .next()
        .and_then(|s| s.split_whitespace().next())
        .unwrap_or_else(|| panic!("cannot parse {line:?}"));
    figure
        .parse()
        .unwrap_or_else(|_| panic!("cannot parse {line:?}"))
}

#[test]
fn hub_unit_scores_at_most_2() {
    let score = exposure(&unit("nextdeploy-hub.service"));
    assert!(score <= 2.0, "hub unit exposure {score} > 2.0");
}

#[test]
fn agent_unit_scores_at_most_3() {
    let score = exposure(&unit("nextdeploy-agent.service"));
    assert!(score <= 3.0, "agent unit exposure {score} > 3.0");
}

#[test]
fn units_pass_verify() {
    // verify checks that ExecStart exists, so the units are checked inside a
    // scratch root holding stand-in binaries and the system's own units.
    let root = TempDir::new("units").unwrap();
    let r = root.path();
    std::fs::create_dir_all(r.join("usr/local/bin")).unwrap();
    std::fs::create_dir_all(r.join("etc/systemd/system")).unwrap();
    std::fs::create_dir_all(r.join("usr/lib/systemd")).unwrap();
    for b in ["nextdeploy", "nextdeploy-agent"] {
        std::fs::copy("/bin/true", r.join("usr/local/bin").join(b)).unwrap();
    }
    for u in ["nextdeploy-hub.service", "nextdeploy-agent.service"] {
        std::fs::copy(unit(u), r.join("etc/systemd/system").join(u)).unwrap();
    }
    let mut cp = Command::new("cp");
    cp.args(["-r", "/usr/lib/systemd/system"])
        .arg(r.join("usr/lib/systemd/"));
    run_bounded(cp, CLI_TIMEOUT).unwrap().ok().unwrap();
    let root_arg = format!("--root={}", r.display());
    let out = analyze(&[
        "verify",
        &root_arg,
        "nextdeploy-hub.service",
        "nextdeploy-agent.service",
    ]);
    assert!(out.success(), "{}", out.describe());
    // Unknown keys are only warnings to verify; we want none.
    assert!(
        !out.mentions("Unknown key") && !out.mentions("ignoring"),
        "{}",
        out.describe()
    );
}
