//! A command whose stdout is read line by line as it arrives (with arrival
//! times) and whose stderr is kept; killed on drop.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;

use super::Proc;

/// One line of a streaming command's stdout, with when it arrived.
#[derive(Debug, Clone)]
pub struct Line {
    /// Monotonic arrival time.
    pub at: Instant,
    /// Wall-clock arrival time.
    pub wall: SystemTime,
    /// The bytes, newline included when there was one.
    pub bytes: Vec<u8>,
}

impl Line {
    /// Lossy text without the line end.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes)
            .trim_end_matches(['\n', '\r'])
            .to_string()
    }

    /// The line as JSON.
    pub fn json(&self) -> Result<Value> {
        serde_json::from_slice(&self.bytes)
            .with_context(|| format!("line is not JSON: {}", self.text()))
    }
}

/// A running command whose stdout is read line by line (with arrival
/// times) and whose stderr is kept; killed on drop.
pub struct Streamer {
    /// Command line, for messages.
    pub cmdline: String,
    child: Option<Proc>,
    rx: mpsc::Receiver<Line>,
    seen: Vec<Line>,
    stderr: Arc<Mutex<Vec<u8>>>,
    /// When it was spawned.
    pub started: Instant,
    /// Wall clock when it was spawned.
    pub started_wall: SystemTime,
}

impl std::fmt::Debug for Streamer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Streamer({})", self.cmdline)
    }
}

impl Streamer {
    /// Spawn `cmd` with stdin closed.
    pub fn spawn(mut cmd: Command) -> Result<Streamer> {
        let cmdline = super::cmdline(&cmd);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let started = Instant::now();
        let started_wall = SystemTime::now();
        let mut child = Proc::spawn(cmd)?;
        let out = child.take_stdout().ok_or_else(|| anyhow!("no stdout"))?;
        let err = child.take_stderr().ok_or_else(|| anyhow!("no stderr"))?;
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut r = BufReader::new(out);
            loop {
                let mut buf = Vec::new();
                match r.read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let line = Line {
                            at: Instant::now(),
                            wall: SystemTime::now(),
                            bytes: buf,
                        };
                        if tx.send(line).is_err() {
                            break;
                        }
                    }
                }
            }
        });
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&stderr);
        thread::spawn(move || {
            let mut r = err;
            let mut buf = [0u8; 8192];
            loop {
                match r.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if let Ok(mut s) = sink.lock() {
                            s.extend_from_slice(&buf[..n]);
                        }
                    }
                }
            }
        });
        Ok(Streamer {
            cmdline,
            child: Some(child),
            rx,
            seen: Vec::new(),
            stderr,
            started,
            started_wall,
        })
    }

    /// Pid of the command.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Proc::id)
    }

    /// Take the lines that arrived so far into [`Streamer::lines`], waiting
    /// at most `wait` for the first new one.
    fn pump(&mut self, wait: Duration) -> bool {
        let mut got = false;
        if let Ok(l) = self.rx.recv_timeout(wait) {
            self.seen.push(l);
            got = true;
        }
        while let Ok(l) = self.rx.try_recv() {
            self.seen.push(l);
            got = true;
        }
        got
    }

    /// Every line received so far.
    pub fn lines(&mut self) -> &[Line] {
        self.pump(Duration::ZERO);
        &self.seen
    }

    /// Collect lines for `d`, then return everything received so far.
    pub fn collect_for(&mut self, d: Duration) -> &[Line] {
        let end = Instant::now() + d;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            self.pump(left.min(Duration::from_millis(50)));
        }
        &self.seen
    }

    /// The first line (already received or arriving within `timeout`)
    /// for which `pred` holds.
    pub fn wait_line(
        &mut self,
        what: &str,
        timeout: Duration,
        mut pred: impl FnMut(&Line) -> bool,
    ) -> Result<Line> {
        let end = Instant::now() + timeout;
        let mut checked = 0;
        loop {
            if let Some(l) = self.seen[checked..].iter().find(|l| pred(l)) {
                return Ok(l.clone());
            }
            checked = self.seen.len();
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                bail!(
                    "timed out after {timeout:?} waiting for {what} from `{}`\n{}",
                    self.cmdline,
                    self.describe()
                );
            }
            self.pump(left.min(Duration::from_millis(50)));
        }
    }

    /// The first JSON line matching `pred` (non-JSON lines are skipped).
    pub fn wait_json(
        &mut self,
        what: &str,
        timeout: Duration,
        mut pred: impl FnMut(&Value) -> bool,
    ) -> Result<Value> {
        let l = self.wait_line(what, timeout, |l| l.json().is_ok_and(|v| pred(&v)))?;
        l.json()
    }

    /// Every JSON line received so far (non-JSON lines skipped).
    pub fn json_lines(&mut self) -> Vec<Value> {
        self.lines().iter().filter_map(|l| l.json().ok()).collect()
    }

    /// What it wrote on stderr so far.
    pub fn stderr_text(&self) -> String {
        self.stderr
            .lock()
            .map(|s| String::from_utf8_lossy(&s).into_owned())
            .unwrap_or_default()
    }

    /// Exit status if it has exited.
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        self.child.as_mut().and_then(Proc::try_status)
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        self.child = None;
    }

    /// The last lines and stderr, for messages.
    pub fn describe(&self) -> String {
        let from = self.seen.len().saturating_sub(20);
        let last: Vec<String> = self.seen[from..]
            .iter()
            .map(|l| {
                let t = l.text();
                if t.len() > 300 {
                    let head: String = t.chars().take(300).collect();
                    format!("{head}... ({} bytes)", l.bytes.len())
                } else {
                    t
                }
            })
            .collect();
        format!(
            "--- last {} of {} stdout lines ---\n{}\n--- stderr ---\n{}",
            last.len(),
            self.seen.len(),
            last.join("\n"),
            self.stderr_text()
        )
    }
}

impl Drop for Streamer {
    fn drop(&mut self) {
        self.kill();
        if thread::panicking() {
            eprintln!("--- streaming `{}` ---\n{}", self.cmdline, self.describe());
        }
    }
}
