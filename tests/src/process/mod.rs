//! The one way this harness runs a program: [`run_raw`] (bounded, stdin
//! closed, output kept as bytes) and [`run_bounded`] (the same, decoded);
//! long-running children in [`Proc`]; streaming commands in [`Streamer`];
//! bounded polling in [`wait_until`].

pub(crate) mod child;
mod stream;

pub use child::{parse_signal, send_signal, ContOnDrop, Proc};
pub use stream::{Line, Streamer};

use std::io::Read;
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;

/// A finished command's output, as bytes.
#[derive(Debug, Clone)]
pub struct RawOutput {
    /// Command line, for messages.
    pub cmdline: String,
    /// Exit status.
    pub status: ExitStatus,
    /// Standard output bytes.
    pub stdout: Vec<u8>,
    /// Standard error bytes.
    pub stderr: Vec<u8>,
    /// How long it ran.
    pub elapsed: Duration,
}

impl RawOutput {
    /// Fail unless the exit status is 0.
    pub fn ok(self) -> Result<RawOutput> {
        if self.status.success() {
            Ok(self)
        } else {
            bail!("command failed: {}", self.describe())
        }
    }

    /// Status and (lossy, shortened) output, for messages.
    pub fn describe(&self) -> String {
        format!(
            "`{}` -> {}\n--- stdout ({} bytes) ---\n{}\n--- stderr ({} bytes) ---\n{}",
            self.cmdline,
            self.status,
            self.stdout.len(),
            shorten(&self.stdout, 2000),
            self.stderr.len(),
            shorten(&self.stderr, 2000)
        )
    }
}

/// A finished command's output, lossily decoded.
#[derive(Debug, Clone)]
pub struct Output {
    /// Human-readable command line (for messages).
    pub cmdline: String,
    /// Exit status.
    pub status: ExitStatus,
    /// Standard output, lossily decoded.
    pub stdout: String,
    /// Standard error, lossily decoded.
    pub stderr: String,
    /// How long the command ran.
    pub elapsed: Duration,
}

impl From<RawOutput> for Output {
    fn from(r: RawOutput) -> Output {
        Output {
            cmdline: r.cmdline,
            status: r.status,
            stdout: String::from_utf8_lossy(&r.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&r.stderr).into_owned(),
            elapsed: r.elapsed,
        }
    }
}

impl Output {
    /// Exit status 0.
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// Stdout parsed as one JSON document.
    pub fn json(&self) -> Result<Value> {
        serde_json::from_str(self.stdout.trim()).with_context(|| {
            format!(
                "stdout of `{}` is not JSON\n{}",
                self.cmdline,
                self.describe()
            )
        })
    }

    /// Fail unless the exit status is 0.
    pub fn ok(self) -> Result<Output> {
        if self.success() {
            Ok(self)
        } else {
            bail!("command failed: {}", self.describe())
        }
    }

    /// Fail if the exit status is 0.
    pub fn failed(self) -> Result<Output> {
        if self.success() {
            bail!("command unexpectedly succeeded: {}", self.describe())
        } else {
            Ok(self)
        }
    }

    /// Status, stdout and stderr, for assertion messages.
    pub fn describe(&self) -> String {
        format!(
            "`{}` -> {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.cmdline, self.status, self.stdout, self.stderr
        )
    }

    /// Whether stdout or stderr contain `needle`, case-insensitively.
    pub fn mentions(&self, needle: &str) -> bool {
        let n = needle.to_lowercase();
        self.stderr.to_lowercase().contains(&n) || self.stdout.to_lowercase().contains(&n)
    }
}

/// At most `max` bytes of `b`, lossily decoded, with a note of the rest.
pub(crate) fn shorten(b: &[u8], max: usize) -> String {
    let s = String::from_utf8_lossy(&b[..b.len().min(max)]).into_owned();
    if b.len() > max {
        format!("{s}... ({} more bytes)", b.len() - max)
    } else {
        s
    }
}

/// A command line for messages.
pub fn cmdline(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Read a pipe to the end on its own thread (so a full pipe never blocks the child).
fn read_all<R: Read + Send + 'static>(r: Option<R>) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut r) = r {
            let _ = r.read_to_end(&mut buf);
        }
        buf
    })
}

/// Run a command to completion with stdin closed, keeping its output as
/// bytes; killed (and the run failed) after `timeout`.
pub fn run_raw(mut cmd: Command, timeout: Duration) -> Result<RawOutput> {
    let line = cmdline(&cmd);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = cmd.spawn().with_context(|| format!("spawn `{line}`"))?;
    let out = read_all(child.stdout.take());
    let err = read_all(child.stderr.take());
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break st;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            let stdout = out.join().unwrap_or_default();
            let stderr = err.join().unwrap_or_default();
            bail!(
                "`{line}` did not finish within {timeout:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
                shorten(&stdout, 8000),
                shorten(&stderr, 8000)
            );
        }
        thread::sleep(Duration::from_millis(5));
    };
    Ok(RawOutput {
        cmdline: line,
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
        elapsed: start.elapsed(),
    })
}

/// [`run_raw`], output decoded lossily.
pub fn run_bounded(cmd: Command, timeout: Duration) -> Result<Output> {
    run_raw(cmd, timeout).map(Output::from)
}

/// Poll `f` every `every` until it yields `Some`, or fail after `timeout` with
/// the last error / `what`.
pub fn wait_until<T>(
    what: &str,
    timeout: Duration,
    every: Duration,
    mut f: impl FnMut() -> Result<Option<T>>,
) -> Result<T> {
    let start = Instant::now();
    let mut last_err: Option<anyhow::Error> = None;
    loop {
        match f() {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) => last_err = Some(e),
        }
        if start.elapsed() > timeout {
            return Err(match last_err {
                Some(e) => e.context(format!("timed out after {timeout:?} waiting for {what}")),
                None => anyhow!("timed out after {timeout:?} waiting for {what}"),
            });
        }
        thread::sleep(every);
    }
}

/// [`wait_until`] for a boolean condition.
pub fn wait_until_ok(
    what: &str,
    timeout: Duration,
    every: Duration,
    mut f: impl FnMut() -> Result<bool>,
) -> Result<()> {
    wait_until(what, timeout, every, || Ok(f()?.then_some(())))
}
