//! Scenario 6: the real agent with 50 real containers, through
//! `bench/agent-footprint.sh` (needs a Docker Engine; skipped with the reason
//! otherwise, never silently).

use std::process::{Command, Stdio};

use serde_json::{json, Value};

use super::{median, target, Target};
use crate::hub::workspace;

/// Run the script with `containers`, `window_s` and `rounds`.
pub fn run(containers: usize, window_s: u64, rounds: usize) -> Value {
    let docker = Command::new("docker")
        .arg("info")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !matches!(docker, Ok(s) if s.success()) {
        return skipped("`docker info` failed: no Docker Engine answers on this machine");
    }
    let script = workspace().join("bench/agent-footprint.sh");
    // Bounded: containers start, then (base window + 12 s + window) per round.
    let limit = 180 + rounds as u64 * (2 * window_s + 20);
    let out = Command::new("timeout")
        .arg(limit.to_string())
        .arg("bash")
        .arg(&script)
        .args([
            containers.to_string(),
            window_s.to_string(),
            rounds.to_string(),
        ])
        .env("NEXTDEPLOY_BENCH_BIN_DIR", crate::build::bin_dir())
        .stderr(Stdio::inherit())
        .output();
    let out = match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).to_string(),
        Ok(o) => return skipped(&format!("agent-footprint.sh failed: {}", o.status)),
        Err(e) => return skipped(&format!("cannot run agent-footprint.sh: {e}")),
    };
    let field = |line: &str, k: &str| -> Option<f64> {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(k)?.strip_prefix('=')?.parse().ok())
    };
    let rounds_lines: Vec<&str> = out.lines().filter(|l| l.starts_with("round:")).collect();
    let col = |k: &str| -> f64 {
        let mut v: Vec<f64> = rounds_lines.iter().filter_map(|l| field(l, k)).collect();
        median(&mut v)
    };
    let (rss, cpu, extra, sweep, seen) = (
        col("agent_rss_mib"),
        col("agent_cpu_pct"),
        col("dockerd_extra_cpu_pct"),
        col("sweep_ms"),
        col("containers_seen"),
    );
    let binary = out
        .lines()
        .find_map(|l| l.strip_prefix("agent binary: "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(f64::NAN);
    // dockerd also serves other clients: a negative difference means its
    // baseline moved more than the agent's share, so the figure says nothing.
    let (extra_target, extra_note) = if extra < 0.0 {
        (f64::NAN, "negative: dockerd's own load varied more than the agent's effect; not measurable in this run")
    } else {
        (
            extra,
            "dockerd CPU with the agent minus without it, same window length",
        )
    };
    json!({
        "scenario": "agent",
        "containers": containers,
        "containers_seen": seen,
        "rss_mib": rss,
        "cpu_pct": cpu,
        "dockerd_extra_cpu_pct": extra,
        "dockerd_extra_note": extra_note,
        "sweep_ms": sweep,
        "binary_mib": binary,
        "window_s": window_s,
        "rounds": rounds_lines.len(),
        "health_interval_s": 5,
        "targets": [
            target("agent RSS (MiB)", rss, 12.0, Target::AtMost),
            target("agent CPU (% of a core)", cpu, 0.2, Target::AtMost),
            target("dockerd extra CPU (% of a core)", extra_target, 1.0, Target::AtMost),
            target("agent binary (MiB)", binary, 8.0, Target::AtMost),
        ],
    })
}

fn skipped(reason: &str) -> Value {
    json!({"scenario": "agent", "skipped": true, "reason": reason})
}
