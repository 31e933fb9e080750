//! HAProxy from Debian's packages in front of several hubs, as users deploy
//! a cluster: one TCP frontend for the agents' SSH, one for the API (TLS
//! passes through: every hub presents the cluster's certificate), round
//! robin with health checks every 200 ms so a dead hub leaves the rotation
//! within a second. Runs in the foreground (`-db`); killed on drop. Never
//! assumed installed: scripts/test.sh installs it, and a start that fails
//! panics with HAProxy's own words.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::paths::{free_port, TempDir};

/// How long HAProxy may take to listen.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A running HAProxy.
pub struct HaProxy {
    child: Child,
    _dir: TempDir,
    /// The agents' address (`127.0.0.1:port`).
    pub ssh_port: u16,
    /// The API's port (TLS passed through).
    pub http_port: u16,
}

impl HaProxy {
    /// Frontends on two free ports, to `ssh` and `http` backends (`host:port`).
    pub fn start(ssh: &[String], http: &[String]) -> HaProxy {
        let dir = TempDir::new("haproxy").unwrap();
        let (ssh_port, http_port) = (free_port().unwrap(), free_port().unwrap());
        let servers = |v: &[String]| -> String {
            v.iter()
                .enumerate()
                .map(|(i, a)| format!("    server h{i} {a} check inter 200ms fall 1 rise 1\n"))
                .collect()
        };
        let cfg = format!(
            "global\n    maxconn 4096\n\
             defaults\n    mode tcp\n    timeout connect 2s\n    timeout client 1h\n    timeout server 1h\n\
             frontend ssh\n    bind 127.0.0.1:{ssh_port}\n    default_backend hubs_ssh\n\
             frontend api\n    bind 127.0.0.1:{http_port}\n    default_backend hubs_api\n\
             backend hubs_ssh\n    balance roundrobin\n{}\
             backend hubs_api\n    balance roundrobin\n{}",
            servers(ssh),
            servers(http)
        );
        let path = dir.path().join("haproxy.cfg");
        std::fs::write(&path, cfg).unwrap();
        let bin = ["/usr/sbin/haproxy", "haproxy"]
            .into_iter()
            .find(|b| Command::new(b).arg("-v").output().is_ok())
            .expect("HAProxy is not installed; scripts/test.sh installs it");
        let log = std::fs::File::create(dir.path().join("haproxy.log")).unwrap();
        let child = Command::new(bin)
            .args(["-db", "-f"])
            .arg(&path)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let lb = HaProxy {
            child,
            _dir: dir,
            ssh_port,
            http_port,
        };
        let t0 = Instant::now();
        while TcpStream::connect(("127.0.0.1", http_port)).is_err() {
            assert!(
                t0.elapsed() < START_TIMEOUT,
                "HAProxy did not listen within {START_TIMEOUT:?}: {}",
                lb.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        lb
    }

    /// The agents' address.
    pub fn ssh_addr(&self) -> String {
        format!("127.0.0.1:{}", self.ssh_port)
    }

    /// The API's URL.
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.http_port)
    }

    /// What HAProxy printed.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("haproxy.log")).unwrap_or_default()
    }
}

impl Drop for HaProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
