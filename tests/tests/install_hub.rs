#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `deploy/install-hub.sh --no-systemd`, rooted in a temp prefix (as root:
//! it creates the `nextdeploy` user like a real install): the hub starts in
//! the background, its log is 0600, the first admin token reaches only its
//! 0600 file (never the log), and the script's stdout says where that file is.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nextdeploy_tests::*;

/// Copying a debug binary into the prefix, the hub's first start.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(120);
/// How long the hub may take to write its first lines to the log.
const LOG_WAIT: Duration = Duration::from_secs(20);

/// Stops the supervisor and the hub (one process group) on drop.
struct Started(PathBuf);

impl Drop for Started {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(self.0.join("run/nextdeploy-hub.pid")) {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", "--", &format!("-{}", pid.trim())])
                .status();
        }
    }
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn no_systemd_log_is_0600_and_never_holds_the_token() {
    let work = TempDir::new("install-hub").unwrap();
    // The hub runs as the nextdeploy user: it must reach the prefix.
    std::fs::set_permissions(work.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let prefix = work.path().join("root");
    std::fs::create_dir_all(&prefix).unwrap();
    let _started = Started(prefix.clone());
    let mut cmd = std::process::Command::new("sh");
    cmd.arg(workspace_root().join("deploy/install-hub.sh"))
        .arg("--binary")
        .arg(hub_bin().unwrap())
        .args(["--no-systemd", "--ssh-listen", "127.0.0.1:0"])
        .args(["--http-listen", "127.0.0.1:0", "--prefix"])
        .arg(&prefix);
    let out = run_bounded(cmd, INSTALL_TIMEOUT).unwrap();
    assert!(out.success(), "{}", out.describe());

    let token_file = prefix.join("var/lib/nextdeploy/initial-admin-token");
    let log = prefix.join("var/log/nextdeploy/hub.log");
    assert!(
        out.stdout.contains(&format!(
            "first admin token: {} (0600",
            token_file.display()
        )),
        "{}",
        out.describe()
    );
    assert_eq!(mode(&token_file), 0o600);
    assert_eq!(mode(&log), 0o600);
    let token = std::fs::read_to_string(&token_file).unwrap();
    let token = token.trim();
    assert!(token.starts_with("nda_"), "{token}");
    assert!(!out.stdout.contains(token) && !out.stderr.contains(token));

    // The hub told its log where the token is, and only that.
    let deadline = Instant::now() + LOG_WAIT;
    let text = loop {
        let text = std::fs::read_to_string(&log).unwrap();
        if text.contains("Initial admin token written to") || Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(text.contains("Initial admin token written to"), "{text}");
    assert!(!text.contains(token) && !text.contains("nda_"), "{text}");
}
