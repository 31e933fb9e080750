//! A host of its own on this machine for a process that must vanish from
//! the network while it keeps running: a network namespace joined to the
//! test's by one veth pair with a /30 of its own. [`Netns::cut`] takes the
//! host side of the pair down (nothing crosses, in either direction; the
//! process inside sees its peer go silent), [`Netns::restore`] brings it
//! back. Removed on drop. Its helpers panic on a failed `ip` call: that
//! fails the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// Tells namespaces of one test process apart.
static NEXT: AtomicU32 = AtomicU32::new(0);

/// A namespace and its link to the test's.
#[derive(Debug)]
pub struct Netns {
    /// The namespace's name.
    pub name: String,
    /// The host side's address (reachable from inside).
    pub host_ip: String,
    /// The namespace side's address (what a process inside listens on).
    pub ns_ip: String,
    veth: String,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .expect("run ip (iproute2)");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Netns {
    /// Make one, with its link up.
    pub fn new() -> Netns {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let name = format!("ndns-{pid}-{n}");
        // 10.232.x.y/30 from the pid and the counter: apart between test
        // processes running at once.
        let block = (pid % 4096) * 16 + (n % 16);
        let (b, c) = (block / 64 % 256, (block % 64) * 4);
        let (host_ip, ns_ip) = (
            format!("10.232.{b}.{}", c + 1),
            format!("10.232.{b}.{}", c + 2),
        );
        let veth = format!("ndv{}x{n}", pid % 100_000);
        let peer = format!("{veth}p");
        ip(&["netns", "add", &name]);
        ip(&["link", "add", &veth, "type", "veth", "peer", "name", &peer]);
        ip(&["link", "set", &peer, "netns", &name]);
        ip(&["addr", "add", &format!("{host_ip}/30"), "dev", &veth]);
        ip(&["link", "set", &veth, "up"]);
        let inside = |args: &[&str]| {
            let mut a = vec!["netns", "exec", &name, "ip"];
            a.extend_from_slice(args);
            ip(&a);
        };
        inside(&["addr", "add", &format!("{ns_ip}/30"), "dev", &peer]);
        inside(&["link", "set", &peer, "up"]);
        inside(&["link", "set", "lo", "up"]);
        Netns {
            name,
            host_ip,
            ns_ip,
            veth,
        }
    }

    /// Nothing crosses the link any more.
    pub fn cut(&self) {
        ip(&["link", "set", &self.veth, "down"]);
    }

    /// The link works again.
    pub fn restore(&self) {
        ip(&["link", "set", &self.veth, "up"]);
    }
}

impl Default for Netns {
    fn default() -> Self {
        Netns::new()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.veth])
            .output();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}
