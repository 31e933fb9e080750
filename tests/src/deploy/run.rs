//! `agent deploy` runs parsed from their NDJSON, figures from them, and the
//! downtime of a published port during a deploy.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use serde_json::Value;

use super::DEPLOY_TIMEOUT;
use crate::http::http_body;
use crate::hub::Hub;
use crate::process::{run_bounded, wait_until, Output};

/// A finished `agent deploy ... --output json`.
#[derive(Debug, Clone)]
pub struct DeployRun {
    /// The CLI run.
    pub out: Output,
    /// Every stdout line that parsed as JSON, in order.
    pub lines: Vec<Value>,
    /// The final document (the last JSON line), `Null` if none.
    pub doc: Value,
}

impl DeployRun {
    /// The progress lines (every JSON line but the final document).
    pub fn progress(&self) -> &[Value] {
        match self.lines.split_last() {
            Some((_, rest)) => rest,
            None => &[],
        }
    }

    /// The deploy id (of the final document, else of the first progress line).
    pub fn id(&self) -> Result<String> {
        self.doc["deploy_id"]
            .as_str()
            .or_else(|| self.lines.first().and_then(|l| l["deploy_id"].as_str()))
            .map(str::to_string)
            .ok_or_else(|| anyhow!("no deploy_id in the output\n{}", self.describe()))
    }

    /// The first container result of the final document.
    pub fn container(&self) -> &Value {
        &self.doc["containers"][0]
    }

    /// The CLI's status and output, for messages.
    pub fn describe(&self) -> String {
        self.out.describe()
    }
}

/// `nextdeploy agent deploy ARGS --output json` with `token`, bounded by
/// [`DEPLOY_TIMEOUT`].
pub fn deploy_as(hub: &Hub, token: &str, args: &[&str]) -> Result<DeployRun> {
    let mut cmd = hub.cli_command(token)?;
    cmd.args(["agent", "deploy"])
        .args(args)
        .args(["--output", "json"]);
    let out = run_bounded(cmd, DEPLOY_TIMEOUT)?;
    let lines: Vec<Value> = out
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let doc = lines.last().cloned().unwrap_or(Value::Null);
    Ok(DeployRun { out, lines, doc })
}

/// Seconds between a step's `started` and its `done`/`failed` in a list of
/// progress events (first container).
pub fn step_secs(steps: &[Value], step: &str) -> Option<f64> {
    let at = |status: &str| {
        steps
            .iter()
            .find(|s| s["step"] == step && s["status"] == status)
            .and_then(|s| s["at_ms"].as_i64())
    };
    let start = at("started")?;
    let end = at("done").or_else(|| at("failed"))?;
    Some((end - start) as f64 / 1000.0)
}

/// The median of some figures.
pub fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return f64::NAN;
    }
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

/// Wait (bounded) until `GET /` on `port` answers a body containing `needle`.
pub fn wait_http(port: u16, needle: &str, timeout: Duration) -> Result<String> {
    wait_until(
        &format!("{needle:?} from http://127.0.0.1:{port}/"),
        timeout,
        Duration::from_millis(100),
        || {
            let b = http_body(port, Duration::from_secs(2))?;
            Ok(b.contains(needle).then_some(b))
        },
    )
}

/// Polls `GET /` on a port every 20 ms in a thread, recording which answered.
pub struct PortPoller {
    stop: Arc<AtomicBool>,
    handle: Option<thread::JoinHandle<Vec<(Instant, bool)>>>,
}

/// What a [`PortPoller`] saw.
#[derive(Debug, Clone)]
pub struct PollStats {
    /// Longest time between two successful answers (each taken when it
    /// completed, so a request that hangs through the swap counts as down).
    pub longest_gap: Duration,
    /// Successful polls.
    pub ok: usize,
    /// Failed polls.
    pub failed: usize,
    /// Polls made.
    pub polls: usize,
}

impl PortPoller {
    /// Start polling.
    pub fn start(port: u16) -> PortPoller {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let handle = thread::spawn(move || {
            let mut seen = Vec::new();
            while !s.load(Ordering::SeqCst) {
                let t = Instant::now();
                let ok = http_body(port, Duration::from_millis(500)).is_ok();
                seen.push((Instant::now(), ok));
                let spent = t.elapsed();
                if spent < Duration::from_millis(20) {
                    thread::sleep(Duration::from_millis(20) - spent);
                }
            }
            seen
        });
        PortPoller {
            stop,
            handle: Some(handle),
        }
    }

    /// Stop and summarize.
    pub fn finish(mut self) -> PollStats {
        self.stop.store(true, Ordering::SeqCst);
        let seen = self
            .handle
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        let mut longest = Duration::ZERO;
        let mut last_ok: Option<Instant> = None;
        for (t, ok) in &seen {
            if *ok {
                if let Some(p) = last_ok {
                    longest = longest.max(t.duration_since(p));
                }
                last_ok = Some(*t);
            }
        }
        // ND_POLL_DEBUG=1 prints when the port went down and came back.
        if std::env::var_os("ND_POLL_DEBUG").is_some() {
            let t0 = seen.first().map(|s| s.0);
            let mut prev = None;
            for (t, ok) in &seen {
                if prev != Some(*ok) {
                    eprintln!("  poll +{:?} ok={ok}", t0.map(|z| t.duration_since(z)));
                    prev = Some(*ok);
                }
            }
        }
        PollStats {
            longest_gap: longest,
            ok: seen.iter().filter(|s| s.1).count(),
            failed: seen.iter().filter(|s| !s.1).count(),
            polls: seen.len(),
        }
    }
}

impl Drop for PortPoller {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
