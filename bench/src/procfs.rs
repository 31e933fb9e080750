//! Process and machine figures from /proc: RSS, CPU ticks, load, CPU model.

use std::time::{Duration, Instant};

/// Clock ticks per second of /proc/<pid>/stat (USER_HZ, 100 on Linux).
pub const TICK_HZ: f64 = 100.0;

fn stat_fields(pid: u32) -> Option<Vec<u64>> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = s.rsplit_once(')')?.1;
    // Fields after the command: state is index 0 (field 3 of the man page).
    Some(
        after
            .split_whitespace()
            .skip(1)
            .map(|f| f.parse::<u64>().unwrap_or(0))
            .collect(),
    )
}

/// Resident set size in KiB (0 if the process is gone).
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// The processes whose parent is `pid`.
pub fn child_pids(pid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        // [`stat_fields`] starts at the parent's pid (field 4 of the man page).
        .filter(|p| stat_fields(*p).and_then(|f| f.first().copied()) == Some(u64::from(pid)))
        .collect()
}

/// utime + stime of a process, in ticks.
pub fn cpu_ticks(pid: u32) -> u64 {
    stat_fields(pid)
        .map(|f| f.get(10).copied().unwrap_or(0) + f.get(11).copied().unwrap_or(0))
        .unwrap_or(0)
}

/// cutime + cstime: CPU of the process's reaped children, in ticks.
pub fn children_ticks(pid: u32) -> u64 {
    stat_fields(pid)
        .map(|f| f.get(12).copied().unwrap_or(0) + f.get(13).copied().unwrap_or(0))
        .unwrap_or(0)
}

/// The 1-minute load average.
pub fn load1() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0.0)
}

/// CPU model, core count and memory, for the report.
pub fn machine() -> serde_json::Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_default();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let mem_kib: u64 = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string();
    serde_json::json!({
        "cpu": model,
        "cores": cores,
        "memory_gib": (mem_kib as f64 / 1048576.0 * 10.0).round() / 10.0,
        "kernel": kernel,
    })
}

/// Samples a process's RSS and CPU share; keeps the peaks.
pub struct Sampler {
    pid: u32,
    last_ticks: u64,
    last_at: Instant,
    /// Peak RSS seen, KiB.
    pub peak_rss_kib: u64,
    /// Peak CPU share over one sampling window, percent of one core.
    pub peak_cpu_pct: f64,
}

/// Shortest window a CPU share is computed over (ticks are 10 ms).
const CPU_WINDOW: Duration = Duration::from_millis(250);

impl Sampler {
    /// Start sampling `pid`.
    pub fn new(pid: u32) -> Self {
        Sampler {
            pid,
            last_ticks: cpu_ticks(pid),
            last_at: Instant::now(),
            peak_rss_kib: 0,
            peak_cpu_pct: 0.0,
        }
    }

    /// Take one sample.
    pub fn sample(&mut self) {
        self.peak_rss_kib = self.peak_rss_kib.max(rss_kib(self.pid));
        let el = self.last_at.elapsed();
        if el >= CPU_WINDOW {
            let t = cpu_ticks(self.pid);
            let pct = t.saturating_sub(self.last_ticks) as f64 / TICK_HZ / el.as_secs_f64() * 100.0;
            self.peak_cpu_pct = self.peak_cpu_pct.max(pct);
            self.last_ticks = t;
            self.last_at = Instant::now();
        }
    }
}

/// CPU share of `pid` over `window`, percent of one core.
pub async fn cpu_pct_over(pid: u32, window: Duration) -> f64 {
    let t0 = cpu_ticks(pid);
    let at = Instant::now();
    tokio::time::sleep(window).await;
    cpu_ticks(pid).saturating_sub(t0) as f64 / TICK_HZ / at.elapsed().as_secs_f64() * 100.0
}
