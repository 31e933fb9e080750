//! The host's CPU, memory, load and uptime for each health snapshot, read
//! from /proc (readable under the agent's systemd sandbox: it sets no
//! `ProcSubset=pid`). Parsing is in small pure functions; [`HostSampler`]
//! keeps the CPU counters of the previous sweep, since a CPU share is a
//! difference between two readings.

use nextdeploy_shared::docker::HostSample;

/// The aggregate `cpu` line of /proc/stat, in jiffies (USER_HZ ticks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuTimes {
    /// Every state but guest time (already counted in user and nice).
    pub total: u64,
    /// `idle + iowait`: time no task ran on the CPU.
    pub idle: u64,
}

/// The aggregate CPU times and the number of CPUs (`cpuN` lines) of a
/// /proc/stat text; `None` when its `cpu` line is missing or malformed.
pub fn parse_stat(text: &str) -> Option<(CpuTimes, u32)> {
    let mut times = None;
    let mut cpus = 0u32;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("cpu") else {
            continue;
        };
        if rest.starts_with(' ') {
            times = parse_cpu_line(rest);
        } else if rest.starts_with(|c: char| c.is_ascii_digit()) {
            cpus += 1;
        }
    }
    Some((times?, cpus.max(1)))
}

/// `user nice system idle iowait irq softirq steal guest guest_nice`; older
/// kernels stop after fewer fields (at least the first four).
fn parse_cpu_line(fields: &str) -> Option<CpuTimes> {
    let n: Vec<u64> = fields
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    if n.len() < 4 {
        return None;
    }
    let get = |i: usize| n.get(i).copied().unwrap_or(0);
    // guest (8) and guest_nice (9) are included in user (0) and nice (1).
    let total = (0..8).map(get).fold(0u64, u64::saturating_add);
    Some(CpuTimes {
        total,
        idle: get(3).saturating_add(get(4)),
    })
}

/// Busy percent of all CPUs between two readings, 0 to 100; `None` when no
/// time passed or the counters went back (iowait may, on some kernels, so
/// the busy part is clamped rather than trusted).
pub fn cpu_percent(prev: CpuTimes, now: CpuTimes) -> Option<f64> {
    let total = now.total.checked_sub(prev.total)?;
    if total == 0 {
        return None;
    }
    let idle = now.idle.saturating_sub(prev.idle).min(total);
    Some(((total - idle) as f64 / total as f64 * 100.0).clamp(0.0, 100.0))
}

/// A `kB` field of a /proc/meminfo text, in bytes.
pub fn meminfo_bytes(text: &str, field: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(field)?.strip_prefix(':')?;
        let kb = rest.split_whitespace().next()?.parse::<u64>().ok()?;
        Some(kb.saturating_mul(1024))
    })
}

/// `(used, total)` bytes of a /proc/meminfo text: used is `MemTotal −
/// MemAvailable`; before Linux 3.14 (no `MemAvailable`) free, buffers and
/// page cache stand in for it, as `free` did then.
pub fn parse_meminfo(text: &str) -> Option<(u64, u64)> {
    let total = meminfo_bytes(text, "MemTotal")?;
    let available = meminfo_bytes(text, "MemAvailable").unwrap_or_else(|| {
        let f = |k| meminfo_bytes(text, k).unwrap_or(0);
        f("MemFree") + f("Buffers") + f("Cached")
    });
    Some((total.saturating_sub(available), total))
}

/// The three load averages of a /proc/loadavg text; `None` if malformed or
/// not finite and non-negative.
pub fn parse_loadavg(text: &str) -> Option<[f64; 3]> {
    let mut it = text.split_whitespace().map(str::parse::<f64>);
    let mut out = [0.0; 3];
    for slot in &mut out {
        let v = it.next()?.ok()?;
        if !v.is_finite() || v < 0.0 {
            return None;
        }
        *slot = v;
    }
    Some(out)
}

/// Whole seconds since boot from a /proc/uptime text.
pub fn parse_uptime(text: &str) -> Option<u64> {
    let s = text.split_whitespace().next()?.parse::<f64>().ok()?;
    (s.is_finite() && s >= 0.0).then_some(s as u64)
}

/// Reads the host once per sweep, remembering the last CPU counters.
#[derive(Debug, Default)]
pub struct HostSampler {
    prev: Option<CpuTimes>,
}

impl HostSampler {
    /// This sweep's sample; `None` when /proc/stat or /proc/meminfo cannot be
    /// read (not Linux). The CPU share is `None` on the first call.
    pub fn sample(&mut self) -> Option<HostSample> {
        let read = |p: &str| std::fs::read_to_string(p).ok();
        let (times, cpus) = parse_stat(&read("/proc/stat")?)?;
        let (mem_used_bytes, mem_total_bytes) = parse_meminfo(&read("/proc/meminfo")?)?;
        let mut h = self.sample_from(times, cpus, mem_used_bytes, mem_total_bytes);
        [h.load1, h.load5, h.load15] = read("/proc/loadavg")
            .as_deref()
            .and_then(parse_loadavg)
            .unwrap_or_default();
        h.uptime_s = read("/proc/uptime")
            .as_deref()
            .and_then(parse_uptime)
            .unwrap_or(0);
        Some(h)
    }

    fn sample_from(
        &mut self,
        times: CpuTimes,
        cpus: u32,
        mem_used_bytes: u64,
        mem_total_bytes: u64,
    ) -> HostSample {
        let cpu_percent = self.prev.and_then(|p| cpu_percent(p, times));
        self.prev = Some(times);
        HostSample {
            cpu_percent,
            cpus,
            mem_used_bytes,
            mem_total_bytes,
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A two-CPU machine's /proc/stat (Linux 6.1), shortened after `intr`.
    const STAT: &str = "\
cpu  856193 1445749 636014 5256762 29619 0 12930 15334 0 0
cpu0 418925 687813 305269 2691265 10370 0 4280 7715 0 0
cpu1 437267 757935 330744 2565496 19249 0 8650 7618 0 0
intr 98512334 0 9 0 0 0 0 0 0 0 0
ctxt 193577101
btime 1796850000
processes 1207741
procs_running 3
procs_blocked 0
";

    /// The same machine's /proc/meminfo, first lines.
    const MEMINFO: &str = "\
MemTotal:       24683664 kB
MemFree:          504768 kB
MemAvailable:   23431376 kB
Buffers:           90520 kB
Cached:         22509840 kB
SwapCached:            0 kB
Active:         11008048 kB
Inactive:       12249820 kB
HugePages_Total:       0
";

    #[test]
    fn stat_gives_the_aggregate_line_and_counts_cpus() {
        let (t, cpus) = parse_stat(STAT).unwrap();
        assert_eq!(cpus, 2);
        assert_eq!(
            t.total,
            856193 + 1445749 + 636014 + 5256762 + 29619 + 12930 + 15334
        );
        assert_eq!(t.idle, 5256762 + 29619);
        // A 2.6.x kernel's shorter line still reads; garbage does not.
        let (old, n) = parse_stat("cpu  10 0 5 85\ncpu0 10 0 5 85\n").unwrap();
        assert_eq!((old.total, old.idle, n), (100, 85, 1));
        assert_eq!(parse_stat("cpu  1 2\n"), None);
        assert_eq!(parse_stat("cpu  a b c d\n"), None);
        assert_eq!(parse_stat(""), None);
    }

    #[test]
    fn cpu_share_is_busy_over_total_of_the_interval() {
        let a = CpuTimes {
            total: 1000,
            idle: 800,
        };
        let b = CpuTimes {
            total: 1200,
            idle: 850,
        };
        assert_eq!(cpu_percent(a, b), Some(75.0));
        assert_eq!(cpu_percent(a, a), None);
        assert_eq!(cpu_percent(b, a), None);
        // iowait went back: idle counts as none, not as a wrap.
        let back = CpuTimes {
            total: 1100,
            idle: 700,
        };
        assert_eq!(cpu_percent(a, back), Some(100.0));
        // Idle grew by more than total (counters read apart): 0, not below.
        let odd = CpuTimes {
            total: 1100,
            idle: 1000,
        };
        assert_eq!(cpu_percent(a, odd), Some(0.0));
    }

    #[test]
    fn meminfo_used_is_total_minus_available() {
        assert_eq!(meminfo_bytes(MEMINFO, "MemTotal"), Some(24683664 * 1024));
        assert_eq!(meminfo_bytes(MEMINFO, "Mem"), None);
        assert_eq!(
            parse_meminfo(MEMINFO),
            Some(((24683664 - 23431376) * 1024, 24683664 * 1024))
        );
        // Before MemAvailable: free + buffers + cached.
        let old = "MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 50 kB\nCached: 250 kB\n";
        assert_eq!(parse_meminfo(old), Some((600 * 1024, 1000 * 1024)));
        assert_eq!(parse_meminfo("MemFree: 1 kB\n"), None);
    }

    #[test]
    fn loadavg_and_uptime() {
        assert_eq!(
            parse_loadavg("2.76 1.05 0.40 6/152 30941\n"),
            Some([2.76, 1.05, 0.40])
        );
        assert_eq!(parse_loadavg("2.76 1.05\n"), None);
        assert_eq!(parse_loadavg("-1 0 0 1/1 1\n"), None);
        assert_eq!(parse_loadavg("nan 0 0 1/1 1\n"), None);
        assert_eq!(parse_uptime("41467.77 52567.62\n"), Some(41467));
        assert_eq!(parse_uptime("x\n"), None);
    }

    #[test]
    fn the_first_sample_has_no_cpu_share_the_next_one_has() {
        let mut s = HostSampler::default();
        let t0 = CpuTimes {
            total: 100,
            idle: 50,
        };
        let t1 = CpuTimes {
            total: 200,
            idle: 140,
        };
        let first = s.sample_from(t0, 2, 1, 2);
        assert_eq!(first.cpu_percent, None);
        let next = s.sample_from(t1, 2, 1, 2);
        assert_eq!(next.cpu_percent, Some(10.0));
    }

    #[test]
    fn reads_this_host() {
        let mut s = HostSampler::default();
        let a = s.sample().unwrap();
        assert!(a.cpus >= 1);
        assert!(a.mem_total_bytes > 0 && a.mem_used_bytes < a.mem_total_bytes);
        assert!(a.uptime_s > 0);
        std::thread::sleep(std::time::Duration::from_millis(100));
        let b = s.sample().unwrap();
        // Jiffies are 10 ms: in 100 ms on at least one CPU some ticked.
        let p = b.cpu_percent.unwrap();
        assert!((0.0..=100.0).contains(&p), "{p}");
    }
}
