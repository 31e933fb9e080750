#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The host's CPU and memory in `status`: a real agent with
//! `health_interval_s = 1` reads /proc on this machine, the hub keeps its
//! latest snapshot, and `agent status` carries `host` (JSON) and shows it in
//! the HOST CPU and HOST MEM columns (table). The figures are checked against
//! this machine's /proc, read here by the test.

use std::time::Duration;

use nextdeploy_tests::*;
use serde_json::Value;

/// Two sweeps at 1 s (the first has no CPU share) plus connecting: 30 s is
/// ample on a loaded two-core machine.
const HOST_WAIT: Duration = Duration::from_secs(30);

/// A `kB` field of this machine's /proc/meminfo, in bytes.
fn meminfo(field: &str) -> u64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in /proc/meminfo"));
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

/// The `cpuN` lines of this machine's /proc/stat.
fn cpus() -> u64 {
    let text = std::fs::read_to_string("/proc/stat").unwrap();
    text.lines()
        .filter(|l| l.starts_with("cpu") && l[3..].starts_with(|c: char| c.is_ascii_digit()))
        .count() as u64
}

/// Seconds since boot of this machine.
fn uptime_s() -> f64 {
    let text = std::fs::read_to_string("/proc/uptime").unwrap();
    text.split_whitespace().next().unwrap().parse().unwrap()
}

/// Bytes as the CLI prints a size (`7.8GiB`), for memory of a GiB or more.
fn gib(b: u64) -> String {
    format!("{:.1}GiB", b as f64 / (1u64 << 30) as f64)
}

#[test]
fn status_carries_the_hosts_cpu_and_memory_as_proc_has_them() {
    let hub = start_hub().unwrap();
    let jt = hub.join_token("host-1", "env=test", "1h").unwrap();
    let mut agent = Agent::enroll(&hub, "host-1", &jt.token).unwrap();
    set_config_key(&agent.config, "health_interval_s", "1").unwrap();
    agent.start().unwrap();
    wait_online(&hub, &["host-1"], Duration::from_secs(15)).unwrap();

    // The second sweep brings the CPU share (the first only its counters).
    let mut row = Value::Null;
    wait_until_ok(
        "a status row with the host's CPU share",
        HOST_WAIT,
        Duration::from_millis(200),
        || {
            let v = hub.cli_json(&["agent", "status", "--server", "host-1"])?;
            row = v[0].clone();
            Ok(row["host"]["cpu_percent"].is_f64())
        },
    )
    .unwrap_or_else(|e| panic!("{e:#}\nlast row: {row}\n{}", agent.log_tail()));
    let h = &row["host"];
    let total = meminfo("MemTotal");
    assert_eq!(h["mem_total_bytes"].as_u64(), Some(total), "{h}");
    let used = h["mem_used_bytes"].as_u64().unwrap();
    assert!(used > 0 && used < total, "{h}");
    // Within what this machine's memory did meanwhile: MemAvailable now,
    // give or take a quarter of the total.
    let used_now = total - meminfo("MemAvailable");
    assert!(
        used.abs_diff(used_now) < total / 4,
        "{h}: used now {used_now}"
    );
    let cpu = h["cpu_percent"].as_f64().unwrap();
    assert!((0.0..=100.0).contains(&cpu), "{h}");
    assert_eq!(h["cpus"].as_u64(), Some(cpus()), "{h}");
    for k in ["load1", "load5", "load15"] {
        let l = h[k].as_f64().unwrap();
        assert!(l.is_finite() && l >= 0.0, "{k}: {h}");
    }
    let up = h["uptime_s"].as_u64().unwrap() as f64;
    assert!(up <= uptime_s() && uptime_s() - up < 60.0, "{h}");

    // The table: both columns, and on the agent's row its figures.
    let out = hub
        .cli(&["agent", "status", "--server", "host-1"])
        .unwrap()
        .ok()
        .unwrap();
    let header = out.stdout.lines().next().unwrap_or("");
    for col in ["HOST CPU", "HOST MEM"] {
        assert!(header.contains(col), "status header lacks {col}: {header}");
    }
    let line = out
        .stdout
        .lines()
        .find(|l| l.starts_with("host-1 "))
        .unwrap_or_else(|| panic!("no row for host-1:\n{}", out.stdout));
    let cells: Vec<&str> = line.split_whitespace().collect();
    let cpu_cell = cells
        .iter()
        .find(|c| c.ends_with('%'))
        .unwrap_or_else(|| panic!("no host CPU in {line}"));
    let shown: f64 = cpu_cell.trim_end_matches('%').parse().unwrap();
    assert!((0.0..=100.0).contains(&shown), "{line}");
    let mem_cell = cells
        .iter()
        .find(|c| c.contains("iB/"))
        .unwrap_or_else(|| panic!("no host memory in {line}"));
    assert!(mem_cell.ends_with(&format!("/{}", gib(total))), "{line}");
}
