//! The release binaries the scenarios run: built with exactly the README's
//! `cargo build --release --workspace`, so that after that build (and with
//! the features `cargo run -p nextdeploy-bench` resolves kept equal to it,
//! see `bench/Cargo.toml` and the test below) running the bench compiles
//! nothing; and located where that build put them, as cargo reports.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use anyhow::{bail, Context};

/// The binaries the bench runs.
pub const HUB: &str = "nextdeploy";
pub const AGENT: &str = "nextdeploy-agent";

static BIN_DIR: OnceLock<PathBuf> = OnceLock::new();

/// The directory holding the release hub and agent: where the last
/// [`build_binaries`] put them, else this binary's own directory (a release
/// build of the workspace puts the bench beside them).
pub fn bin_dir() -> PathBuf {
    BIN_DIR
        .get_or_init(|| {
            std::env::current_exe()
                .ok()
                .and_then(|e| e.parent().map(Path::to_path_buf))
                .unwrap_or_else(|| crate::hub::workspace().join("target/release"))
        })
        .clone()
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

/// Run `cargo build --release --workspace` (a no-op when that build is
/// current) and record where its `nextdeploy` and `nextdeploy-agent` are.
pub fn build_binaries() -> anyhow::Result<()> {
    let out = Command::new(cargo())
        .current_dir(crate::hub::workspace())
        .args(["build", "--release", "--workspace"])
        .args(["--message-format", "json-render-diagnostics"])
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .context("cargo build")?;
    anyhow::ensure!(
        out.status.success(),
        "cargo build --release --workspace failed"
    );
    let dir = bins_from_messages(&String::from_utf8_lossy(&out.stdout))?;
    // A second build in one process reports the same place.
    let _ = BIN_DIR.set(dir);
    Ok(())
}

/// The one directory holding both executables, from cargo's JSON messages.
fn bins_from_messages(stdout: &str) -> anyhow::Result<PathBuf> {
    let mut found: Vec<(String, PathBuf)> = Vec::new();
    for line in stdout.lines() {
        let Ok(m) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if m["reason"] != "compiler-artifact" {
            continue;
        }
        let (Some(name), Some(exe)) = (m["target"]["name"].as_str(), m["executable"].as_str())
        else {
            continue;
        };
        if name == HUB || name == AGENT {
            found.push((name.to_string(), PathBuf::from(exe)));
        }
    }
    let dir_of = |want: &str| {
        found
            .iter()
            .find(|(n, _)| n == want)
            .and_then(|(_, p)| p.parent().map(Path::to_path_buf))
            .with_context(|| format!("cargo build reported no `{want}` executable"))
    };
    let (hub, agent) = (dir_of(HUB)?, dir_of(AGENT)?);
    if hub != agent {
        bail!(
            "the hub ({}) and the agent ({}) were built into different directories",
            hub.display(),
            agent.display()
        );
    }
    Ok(hub)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_both_binaries_in_cargo_messages() {
        let msgs = [
            r#"{"reason":"compiler-artifact","target":{"name":"nextdeploy_hub"},"executable":null}"#,
            r#"{"reason":"compiler-artifact","target":{"name":"nextdeploy"},"executable":"/t/release/nextdeploy","fresh":true}"#,
            "not json",
            r#"{"reason":"compiler-artifact","target":{"name":"nextdeploy-agent"},"executable":"/t/release/nextdeploy-agent","fresh":true}"#,
            r#"{"reason":"build-finished","success":true}"#,
        ]
        .join("\n");
        assert_eq!(
            bins_from_messages(&msgs).unwrap(),
            PathBuf::from("/t/release")
        );
        let e = bins_from_messages(&msgs.replace("nextdeploy-agent\"", "other\"")).unwrap_err();
        assert!(e.to_string().contains("nextdeploy-agent"), "{e:#}");
    }

    /// Every package's features as `cargo tree` resolves them for `args`.
    fn features(args: &[&str]) -> std::collections::BTreeMap<String, String> {
        let out = Command::new(cargo())
            .current_dir(crate::hub::workspace())
            .args([
                "tree",
                "--locked",
                "--offline",
                "-e",
                "features,normal,build",
            ])
            .args(["--prefix", "none", "-f", "{p}|{f}"])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "cargo tree {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            // Package lines only (`name vX|features`), not the `feature "x"` nodes.
            .filter_map(|l| l.split_once('|'))
            .map(|(p, f)| {
                let p = p.split(" (").next().unwrap_or(p).trim().to_string();
                let f = f.split(" (").next().unwrap_or(f).trim().to_string();
                (p, f)
            })
            .collect()
    }

    /// `cargo run --release -p nextdeploy-bench` after `cargo build --release
    /// --workspace` compiles nothing only if every package in the bench's
    /// graph gets the features the workspace build gave it (feature
    /// unification follows the packages selected).
    #[test]
    fn features_match_the_workspace_build() {
        let ws = features(&["--workspace"]);
        let bench = features(&["-p", "nextdeploy-bench"]);
        assert!(bench.len() > 50, "cargo tree gave {} packages", bench.len());
        let differ: Vec<String> = bench
            .iter()
            .filter(|(p, f)| ws.get(*p) != Some(f))
            .map(|(p, f)| format!("{p}: bench [{f}] workspace [{:?}]", ws.get(p)))
            .collect();
        assert!(
            differ.is_empty(),
            "packages whose features differ between -p nextdeploy-bench and --workspace \
             (add the dependency that enables them to bench/Cargo.toml):\n{}",
            differ.join("\n")
        );
    }
}
