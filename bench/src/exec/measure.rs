//! The three measurements, each run on one side at a time (`nextdeploy
//! agent exec` or `docker exec`, a child process with pipes): a keystroke's
//! round trip through `cat`, bytes out of `yes | head -c`, bytes into
//! `wc -c`. Every child runs under a [`Watchdog`] that kills it past its
//! limit, so a stuck side fails the run instead of hanging it.

use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use super::setup::{Hub, CONTAINER};

/// Read buffer for the output stream (as large as a pipe's default
/// capacity times four: one read drains what the writer queued).
const READ_CHUNK: usize = 256 << 10;
/// Write chunk for the input stream.
const WRITE_CHUNK: usize = 64 << 10;
/// The line `yes` repeats (37 bytes with its newline).
pub const LINE: &str = "abcdefghijklmnopqrstuvwxyz0123456789";

/// Kills a process if not disarmed (dropped) within its limit.
pub struct Watchdog {
    _disarm: mpsc::Sender<()>,
    fired: Arc<AtomicBool>,
}

impl Watchdog {
    /// Watch `pid` for `limit`.
    pub fn arm(pid: u32, limit: Duration) -> Watchdog {
        let (tx, rx) = mpsc::channel::<()>();
        let fired = Arc::new(AtomicBool::new(false));
        let f = fired.clone();
        std::thread::spawn(move || {
            if rx.recv_timeout(limit) == Err(mpsc::RecvTimeoutError::Timeout) {
                f.store(true, Ordering::SeqCst);
                if let Ok(p) = i32::try_from(pid) {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(p),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
            }
        });
        Watchdog { _disarm: tx, fired }
    }

    /// Whether it killed the process.
    pub fn fired(&self) -> bool {
        self.fired.load(Ordering::SeqCst)
    }
}

/// Which `exec` runs the command.
#[derive(Clone, Copy, Debug)]
pub enum Side {
    /// `nextdeploy agent exec` through the hub and the agent's tunnel.
    NextDeploy,
    /// `docker exec` on the same engine.
    Docker,
}

impl Side {
    pub fn name(self) -> &'static str {
        match self {
            Side::NextDeploy => "nextdeploy",
            Side::Docker => "docker",
        }
    }

    /// The exec of `cmd` in the container, stdin kept open when `interactive`.
    fn command(self, hub: &Hub, interactive: bool, cmd: &[&str]) -> Command {
        let mut c = match self {
            Side::NextDeploy => {
                let mut c = hub.cli(&["agent", "exec"]);
                c.args(["--container", CONTAINER]);
                c
            }
            Side::Docker => {
                let mut c = Command::new("docker");
                c.arg("exec");
                c
            }
        };
        if interactive {
            c.arg("-i");
        }
        if let Side::NextDeploy = self {
            c.arg("--");
        } else {
            c.arg(CONTAINER);
        }
        c.args(cmd);
        c
    }

    /// Spawn the exec of `cmd` with piped stdout (and stdin when
    /// `interactive`), stderr collected by a thread.
    fn spawn(self, hub: &Hub, interactive: bool, cmd: &[&str]) -> anyhow::Result<Running> {
        let mut child = self
            .command(hub, interactive, cmd)
            .stdin(if interactive {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("start the {} exec", self.name()))?;
        let mut err = child.stderr.take().context("no stderr")?;
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        Ok(Running {
            side: self,
            child,
            stderr,
        })
    }
}

/// A spawned exec.
struct Running {
    side: Side,
    child: Child,
    stderr: JoinHandle<String>,
}

impl Running {
    /// Wait for its end (bounded by `dog`); fail unless it exited 0.
    fn finish(mut self, dog: &Watchdog, limit: Duration) -> anyhow::Result<()> {
        let status = self.child.wait()?;
        let err = self.stderr.join().unwrap_or_default();
        if dog.fired() {
            bail!("the {} exec took over {limit:?}", self.side.name());
        }
        if !status.success() {
            bail!(
                "the {} exec failed ({status}): {}",
                self.side.name(),
                err.trim()
            );
        }
        Ok(())
    }
}

/// `warmup + rounds` one-byte round trips through `cat` in one exec; the
/// last `rounds`, in ms.
pub fn keystrokes(
    side: Side,
    hub: &Hub,
    warmup: usize,
    rounds: usize,
    limit: Duration,
) -> anyhow::Result<Vec<f64>> {
    let mut run = side.spawn(hub, true, &["cat"])?;
    let dog = Watchdog::arm(run.child.id(), limit);
    let mut stdin = run.child.stdin.take().context("no stdin")?;
    let mut stdout = run.child.stdout.take().context("no stdout")?;
    let mut ms = Vec::with_capacity(rounds);
    for i in 0..warmup + rounds {
        let key = b'a' + (i % 26) as u8;
        let t0 = Instant::now();
        stdin.write_all(&[key])?;
        let mut got = [0u8];
        if stdout.read_exact(&mut got).is_err() {
            drop(stdin);
            run.finish(&dog, limit)?;
            bail!("the {} exec's output ended at keystroke {i}", side.name());
        }
        let dt = t0.elapsed();
        if got[0] != key {
            bail!("keystroke {i}: sent {key:#x}, got {:#x} back", got[0]);
        }
        if i >= warmup {
            ms.push(dt.as_secs_f64() * 1e3);
        }
    }
    drop(stdin);
    run.finish(&dog, limit)?;
    Ok(ms)
}

/// Seconds for `bytes` out of `yes LINE | head -c bytes`, read and counted
/// here; from spawn to exit, as a user waits.
pub fn out(side: Side, hub: &Hub, bytes: u64, limit: Duration) -> anyhow::Result<f64> {
    let script = format!("yes {LINE} | head -c {bytes}");
    let t0 = Instant::now();
    let mut run = side.spawn(hub, false, &["sh", "-c", &script])?;
    let dog = Watchdog::arm(run.child.id(), limit);
    let mut stdout = run.child.stdout.take().context("no stdout")?;
    let mut buf = vec![0u8; READ_CHUNK];
    let mut got = 0u64;
    loop {
        match stdout.read(&mut buf)? {
            0 => break,
            n => got += n as u64,
        }
    }
    run.finish(&dog, limit)?;
    let secs = t0.elapsed().as_secs_f64();
    if got != bytes {
        bail!("the {} exec gave {got} bytes of {bytes}", side.name());
    }
    Ok(secs)
}

/// Seconds to pipe `bytes` into `wc -c` (its count checked); from spawn
/// to exit.
pub fn into(side: Side, hub: &Hub, bytes: u64, limit: Duration) -> anyhow::Result<f64> {
    let t0 = Instant::now();
    let mut run = side.spawn(hub, true, &["wc", "-c"])?;
    let dog = Watchdog::arm(run.child.id(), limit);
    let mut stdin = run.child.stdin.take().context("no stdin")?;
    let mut stdout = run.child.stdout.take().context("no stdout")?;
    let writer = std::thread::spawn(move || -> std::io::Result<()> {
        let chunk: Vec<u8> = format!("{LINE}\n")
            .bytes()
            .cycle()
            .take(WRITE_CHUNK)
            .collect();
        let mut left = bytes;
        while left > 0 {
            let n = left.min(WRITE_CHUNK as u64) as usize;
            stdin.write_all(&chunk[..n])?;
            left -= n as u64;
        }
        Ok(())
    });
    let mut text = String::new();
    stdout.read_to_string(&mut text)?;
    let wrote = writer
        .join()
        .map_err(|_| anyhow::anyhow!("writer panicked"))?;
    run.finish(&dog, limit)?;
    wrote.with_context(|| format!("write into the {} exec", side.name()))?;
    let secs = t0.elapsed().as_secs_f64();
    let counted: u64 = text.trim().parse().unwrap_or(0);
    if counted != bytes {
        bail!(
            "the {} exec's wc -c counted {counted} bytes of {bytes} ({text:?})",
            side.name()
        );
    }
    Ok(secs)
}
