//! Long-running children: killed and reaped on drop, their output drained
//! to a log file, signalled with `kill(2)`.

use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::str::FromStr;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::cmdline;

/// A signal by name: `TERM`, `INT`, `STOP`, `CONT`, ... (`SIG` prefix optional).
pub fn parse_signal(sig: &str) -> Result<Signal> {
    let name = if sig.starts_with("SIG") {
        sig.to_string()
    } else {
        format!("SIG{sig}")
    };
    Signal::from_str(&name).map_err(|e| anyhow!("unknown signal {sig:?}: {e}"))
}

/// Send `sig` (a name such as `TERM`, `INT`, `STOP`, `CONT`) to `pid`.
pub fn send_signal(pid: u32, sig: &str) -> Result<()> {
    let signal = parse_signal(sig)?;
    let raw = i32::try_from(pid).with_context(|| format!("pid {pid} out of range"))?;
    kill(Pid::from_raw(raw), signal).with_context(|| format!("kill -{sig} {pid}"))
}

/// Sends SIGCONT to a pid on drop, so a failing test never leaves a stopped process.
#[derive(Debug)]
pub struct ContOnDrop(pub u32);

impl Drop for ContOnDrop {
    fn drop(&mut self) {
        let _ = send_signal(self.0, "CONT");
    }
}

/// A child process, SIGKILLed and reaped on drop.
#[derive(Debug)]
pub struct Proc {
    child: Child,
}

impl Proc {
    /// Spawn `cmd` with the stdio the caller set up.
    pub fn spawn(mut cmd: Command) -> Result<Proc> {
        let child = cmd
            .spawn()
            .with_context(|| format!("spawn `{}`", cmdline(&cmd)))?;
        Ok(Proc { child })
    }

    /// Spawn `cmd` with stdin closed and every line of its stdout and stderr
    /// appended to `log` (prefixed `[out]`/`[err]`, after a line
    /// `=== <header>: <command line> ===`), and sent to `lines` while
    /// someone listens.
    pub fn spawn_logged(
        mut cmd: Command,
        log: &Path,
        header: &str,
        lines: Option<mpsc::Sender<String>>,
    ) -> Result<Proc> {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        {
            let mut f = open_append(log)?;
            writeln!(f, "=== {header}: {} ===", cmdline(&cmd))?;
        }
        let mut p = Proc::spawn(cmd)?;
        if let Some(out) = p.take_stdout() {
            drain_lines(out, log, "out", lines.clone())?;
        }
        if let Some(err) = p.take_stderr() {
            drain_lines(err, log, "err", lines)?;
        }
        Ok(p)
    }

    /// Its stdout, if piped and not yet taken.
    pub fn take_stdout(&mut self) -> Option<std::process::ChildStdout> {
        self.child.stdout.take()
    }

    /// Its stderr, if piped and not yet taken.
    pub fn take_stderr(&mut self) -> Option<std::process::ChildStderr> {
        self.child.stderr.take()
    }

    /// Its pid.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Send a signal by name (`TERM`, `STOP`, ...).
    pub fn signal(&self, sig: &str) -> Result<()> {
        send_signal(self.id(), sig)
    }

    /// Its exit status, if it has exited (reaped by this call).
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Wait at most `timeout` for it to exit.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Result<Option<ExitStatus>> {
        let start = Instant::now();
        loop {
            if let Some(st) = self.child.try_wait()? {
                return Ok(Some(st));
            }
            if start.elapsed() > timeout {
                return Ok(None);
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Wait without a bound (for a child that is known to be exiting).
    pub fn wait(&mut self) -> Result<ExitStatus> {
        Ok(self.child.wait()?)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Wait (bounded) for the child in `slot` to exit; on exit the slot is
/// emptied. `what` names it in errors.
pub(crate) fn wait_exit(
    slot: &mut Option<Proc>,
    what: &str,
    timeout: Duration,
) -> Result<ExitStatus> {
    let Some(p) = slot.as_mut() else {
        bail!("{what} is not running (never started, or already reaped)");
    };
    match p.wait_timeout(timeout)? {
        Some(st) => {
            *slot = None;
            Ok(st)
        }
        None => bail!("{what} still running {timeout:?} after it was told to stop"),
    }
}

/// Whether the child in `slot` is still running.
pub(crate) fn is_running(slot: &mut Option<Proc>) -> bool {
    slot.as_mut().is_some_and(|p| p.try_status().is_none())
}

pub(crate) fn open_append(path: &Path) -> Result<std::fs::File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("open {}", path.display()))
}

/// Copy each line of `r` to `log` (prefixed by `tag`) and, while someone
/// listens, to `tx`. Runs until EOF, so the child's pipe never fills.
fn drain_lines<R: Read + Send + 'static>(
    r: R,
    log: &Path,
    tag: &'static str,
    tx: Option<mpsc::Sender<String>>,
) -> Result<thread::JoinHandle<()>> {
    let mut file = open_append(log)?;
    Ok(thread::spawn(move || {
        let mut reader = BufReader::new(r);
        let mut buf = Vec::new();
        let mut tx = tx;
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&buf);
                    let line = line.trim_end_matches(['\n', '\r']);
                    let _ = file.write_all(format!("[{tag}] {line}\n").as_bytes());
                    if let Some(t) = &tx {
                        if t.send(line.to_string()).is_err() {
                            tx = None;
                        }
                    }
                }
            }
        }
    }))
}
