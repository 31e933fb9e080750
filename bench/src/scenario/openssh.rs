//! The OpenSSH reference: a private sshd on a loopback port (temp config,
//! host key and client key), and `ssh ... 'head -c N /dev/zero'` against it.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::procfs;

/// A private sshd; killed when dropped.
pub struct Sshd {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn keygen(path: &std::path::Path) -> anyhow::Result<()> {
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .stdout(Stdio::null())
        .status()
        .context("ssh-keygen")?;
    anyhow::ensure!(st.success(), "ssh-keygen failed");
    Ok(())
}

impl Sshd {
    /// Start sshd offering only `cipher`.
    pub fn start(dir: PathBuf, cipher: &str) -> anyhow::Result<Sshd> {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        std::fs::create_dir_all("/run/sshd")?;
        keygen(&dir.join("host"))?;
        keygen(&dir.join("client"))?;
        std::fs::copy(dir.join("client.pub"), dir.join("authorized_keys"))?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let cfg = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host\nAuthorizedKeysFile {d}/authorized_keys\n\
             PidFile {d}/sshd.pid\nPermitRootLogin prohibit-password\nPubkeyAuthentication yes\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n\
             Ciphers {cipher}\nCompression no\n",
            d = dir.display()
        );
        std::fs::write(dir.join("sshd_config"), cfg)?;
        let child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(dir.join("sshd_config"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("start /usr/sbin/sshd")?;
        let sshd = Sshd { child, port, dir };
        let t0 = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if t0.elapsed() > Duration::from_secs(10) {
                bail!("sshd did not listen on {port}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(sshd)
    }

    /// Transfer `bytes` sshd -> ssh with `cipher`: (seconds, CPU seconds of sshd
    /// and its session processes, CPU seconds of the ssh client).
    pub fn transfer(&self, bytes: u64, cipher: &str) -> anyhow::Result<(f64, f64, f64)> {
        let pid = self.child.id();
        let before = procfs::cpu_ticks(pid) + procfs::children_ticks(pid);
        let ssh = format!(
            "ssh -F /dev/null -T -i {d}/client -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
             -o BatchMode=yes -o LogLevel=ERROR -c {cipher} -p {port} root@127.0.0.1 'head -c {bytes} /dev/zero' > /dev/null; times",
            d = self.dir.display(),
            port = self.port
        );
        let t0 = Instant::now();
        let out = Command::new("timeout")
            .args(["600", "bash", "-c", &ssh])
            .stderr(Stdio::inherit())
            .output()
            .context("run ssh")?;
        let secs = t0.elapsed().as_secs_f64();
        anyhow::ensure!(out.status.success(), "ssh failed: {}", out.status);
        // `times`: the shell's own line, then its children's "user sys".
        let text = String::from_utf8_lossy(&out.stdout);
        let client_cpu = text
            .lines()
            .nth(1)
            .map(|l| l.split_whitespace().map(parse_times).sum())
            .unwrap_or(0.0);
        // sshd reaps its session processes shortly after the client leaves.
        let mut server_cpu = 0.0;
        let t1 = Instant::now();
        while t1.elapsed() < Duration::from_secs(3) {
            std::thread::sleep(Duration::from_millis(100));
            let after = procfs::cpu_ticks(pid) + procfs::children_ticks(pid);
            let c = after.saturating_sub(before) as f64 / procfs::TICK_HZ;
            if c > 0.0 && (c - server_cpu).abs() < f64::EPSILON {
                break;
            }
            server_cpu = c;
        }
        Ok((secs, server_cpu, client_cpu))
    }
}

/// `0m1.234s` -> 1.234.
fn parse_times(s: &str) -> f64 {
    let s = s.trim_end_matches('s');
    match s.split_once('m') {
        Some((m, sec)) => {
            m.parse::<f64>().unwrap_or(0.0) * 60.0 + sec.parse::<f64>().unwrap_or(0.0)
        }
        None => 0.0,
    }
}
