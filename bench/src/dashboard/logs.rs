//! The `logs` part: a real `nextdeploy-agent` connected to the hub and a
//! container (busybox in a `FROM scratch` image) writing `--log-rate`
//! numbered lines a second for `--log-seconds`, followed on its container
//! page. Afterwards the page's download is compared with `docker logs`.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use nextdeploy_hub::store::sqlite::SqliteStore;
use nextdeploy_hub::store::{JoinTokenRecord, Store};
use nextdeploy_shared::token;
use serde_json::{json, Value};

use super::{target, Args, Target, LONGTASK_MS};
use crate::{build, fleet, hub};

/// The footprint scenario's image (`bench/agent-footprint.sh` makes the same).
const IMAGE: &str = "nd-footprint:busybox";
/// The agent's name, and the label that scopes it to the bench's container.
const AGENT: &str = "bench-logs";
const SCOPE: &str = "nd-bench-logs=1";
/// The container writes `start`, then waits this long before its lines:
/// time for the page to open and follow.
const DELAY_S: u64 = 25;
/// Lines are written in batches this many times a second.
const BATCHES_PER_S: u64 = 10;
/// The achieved rate must be at least this share of `--log-rate` for the
/// run to say anything.
const RATE_SHARE: f64 = 0.95;

/// Killed (and the container removed) when dropped.
struct Cleanup {
    agent: Option<Child>,
    container: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(a) = &mut self.agent {
            let _ = a.kill();
            let _ = a.wait();
        }
        let _ = Command::new("docker")
            .args(["rm", "-f", &self.container])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn sh(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd.stdin(Stdio::null()).stderr(Stdio::inherit()).output()?;
    if !out.status.success() {
        bail!("{cmd:?}: {}", out.status);
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The image, built from the host's static busybox when missing.
fn image(dir: &Path) -> anyhow::Result<()> {
    let have = Command::new("docker")
        .args(["image", "inspect", IMAGE])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?;
    if have.success() {
        return Ok(());
    }
    let ctx = dir.join("img");
    std::fs::create_dir_all(&ctx)?;
    std::fs::copy("/bin/busybox", ctx.join("busybox")).context("copy /bin/busybox")?;
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\",\"--install\",\"-s\",\"/bin\"]\n",
    )?;
    sh(Command::new("docker")
        .args(["build", "-q", "-t", IMAGE])
        .arg(&ctx))?;
    Ok(())
}

/// A join token for [`AGENT`] written into the store in `dir` (before the
/// hub opens it); its text.
fn join_token(dir: &Path, pin: &str) -> anyhow::Result<String> {
    let store = SqliteStore::open(&dir.join(nextdeploy_hub::serve::STORE_FILE))?;
    let (id, text) = token::new_join_token(pin);
    let parsed = token::parse(text.expose()).map_err(|e| anyhow::anyhow!("{e}"))?;
    store.insert_join_token(&JoinTokenRecord {
        id,
        secret_hash: token::hash_secret(parsed.secret.expose()),
        name: AGENT.into(),
        labels: Default::default(),
        created_at: nextdeploy_shared::time::now_unix(),
        expires_at: i64::MAX,
        used_at: None,
        created_by: "bench".into(),
    })?;
    Ok(text.expose().clone())
}

/// The container's program: `start`, a pause, then `rate` lines a second
/// (`line 000000001`, ...) in batches paced by /proc/uptime, `seconds` long.
fn program(rate: u64, seconds: u64) -> String {
    format!(
        "echo start; sleep {DELAY_S}; awk -v rate={rate} -v secs={seconds} -v per_s={BATCHES_PER_S} '\
         function up(  l, a) {{ getline l < \"/proc/uptime\"; close(\"/proc/uptime\"); split(l, a, \" \"); return a[1] }} \
         BEGIN {{ t0 = up(); n = 0; total = rate * secs; per = rate / per_s; \
         for (b = 0; n < total; b++) {{ while (up() < t0 + b / per_s) system(\"usleep 2000\"); \
         for (i = 0; i < per && n < total; i++) printf \"line %09d\\n\", ++n; fflush() }} }}'"
    )
}

pub fn run(dir: &Path, args: &Args) -> anyhow::Result<Value> {
    let docker = Command::new("docker")
        .arg("info")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !matches!(docker, Ok(s) if s.success()) {
        bail!("`docker info` failed: no Docker Engine answers on this machine");
    }
    image(dir)?;
    let pin = fleet::enrol(dir, 0)?;
    let jt = join_token(dir, &pin)?;
    let hub = hub::start_with(dir, None, true)?;
    let conf = dir.join("agent/agent.toml");
    let agent_bin = build::bin_dir().join(build::AGENT);
    sh(Command::new(&agent_bin)
        .args([
            "enroll",
            "--hub",
            &hub.ssh.to_string(),
            "--token",
            &jt,
            "--config",
        ])
        .arg(&conf))?;
    let mut toml = std::fs::read_to_string(&conf)?;
    toml.push_str(&format!("scope_label = \"{SCOPE}\"\n"));
    std::fs::write(&conf, toml)?;
    let container = format!("nd-bench-logs-{}", std::process::id());
    let mut clean = Cleanup {
        agent: None,
        container: container.clone(),
    };
    let agent_log = std::fs::File::create(dir.join("agent.log"))?;
    clean.agent = Some(
        Command::new(&agent_bin)
            .args(["run", "--config"])
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(agent_log)
            .spawn()?,
    );
    let (rate, secs) = (args.log_rate, args.log_seconds);
    sh(Command::new("docker")
        .args(["run", "-d", "--label", SCOPE, "--name", &container, IMAGE])
        .args(["sh", "-c", &program(rate, secs)]))?;
    let started = Instant::now();
    let mut follow_s = f64::NAN;
    let download = dir.join("download.log");
    let limit_s = DELAY_S + secs + 120;
    let r = super::node::run(
        "logs",
        &[
            ("DASH_URL", &format!("https://{}/", hub.http)),
            ("DASH_TOKEN", &hub.admin_token()?),
            ("DASH_AGENT", AGENT),
            ("DASH_CONTAINER", &container),
            ("DASH_LOG_LIMIT_S", &limit_s.to_string()),
            ("DASH_DOWNLOAD", &download.to_string_lossy()),
        ],
        Duration::from_secs(limit_s + 120),
        |l| {
            if l.get("following").is_some() {
                follow_s = started.elapsed().as_secs_f64();
            }
        },
    )?;
    // NaN (never followed) fails too.
    if follow_s.is_nan() || follow_s >= DELAY_S as f64 {
        bail!("the page followed {follow_s:.1} s after the container started, after its {DELAY_S} s pause: lines were written before it followed");
    }
    let docker_out = sh(Command::new("docker").args(["logs", "--timestamps", &container]))?;
    drop(clean);
    let text = std::fs::read_to_string(&download).context("the downloaded log")?;
    Ok(figures(&r, &docker_out, &text, args))
}

/// `line N` → N.
fn number(l: &str) -> Option<u64> {
    l.trim().strip_prefix("line ")?.parse().ok()
}

/// Seconds of the day of an RFC 3339 time (`2026-12-04T05:30:01.123456789Z`).
fn day_seconds(ts: &str) -> Option<f64> {
    let t = ts.split_once('T')?.1.trim_end_matches('Z');
    let mut p = t.split(':');
    let (h, m, s) = (p.next()?, p.next()?, p.next()?);
    Some(h.parse::<f64>().ok()? * 3600.0 + m.parse::<f64>().ok()? * 60.0 + s.parse::<f64>().ok()?)
}

fn figures(r: &Value, docker: &str, download: &str, args: &Args) -> Value {
    let docker_lines: Vec<(&str, &str)> =
        docker.lines().filter_map(|l| l.split_once(' ')).collect();
    let numbered: Vec<(f64, u64)> = docker_lines
        .iter()
        .filter_map(|(ts, l)| Some((day_seconds(ts)?, number(l)?)))
        .collect();
    let produced = numbered.len() as u64;
    let span = match (numbered.first(), numbered.last()) {
        (Some(a), Some(b)) => (b.0 - a.0).rem_euclid(86400.0),
        _ => f64::NAN,
    };
    // Lines a second: the first batch's time to the last's, plus the last
    // batch's own interval.
    let achieved = produced as f64 / (span + 1.0 / BATCHES_PER_S as f64);
    let mut seen: HashMap<u64, u32> = HashMap::new();
    for n in download.lines().filter_map(number) {
        *seen.entry(n).or_default() += 1;
    }
    let duplicated = seen
        .values()
        .filter(|c| **c > 1)
        .map(|c| u64::from(c - 1))
        .sum::<u64>();
    let first_kept = seen.keys().min().copied().unwrap_or(u64::MAX);
    let missing: Vec<u64> = numbered
        .iter()
        .map(|(_, n)| *n)
        .filter(|n| !seen.contains_key(n))
        .collect();
    let before_first = missing.iter().filter(|n| **n < first_kept).count() as u64;
    let gaps = missing.len() as u64 - before_first;
    let loaded = r["status"]["loaded"].as_u64().unwrap_or(0);
    // Past the lines kept for search (kept for Download only, or dropped by
    // the memory bound): received too. Against every line docker logs has.
    let dropped = r["status"]["dropped"].as_u64().unwrap_or(0)
        + r["status"]["archived"].as_u64().unwrap_or(0);
    let lost_in_transit = (docker_lines.len() as u64).saturating_sub(loaded + dropped);
    let longest = r["longtask_max_ms"].as_f64().unwrap_or(f64::NAN);
    let mut tasks: Vec<f64> = r["longtask_ms"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_f64)
        .collect();
    let over = |ms: f64| tasks.iter().filter(|d| **d > ms).count();
    let (over_100, over_200) = (over(100.0), over(LONGTASK_MS));
    let frame_gaps: Vec<f64> = r["frame_gap_ms"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_f64)
        .collect();
    let gap_max = frame_gaps.iter().copied().fold(0.0, f64::max);
    let gaps_over_200 = frame_gaps.iter().filter(|g| **g > LONGTASK_MS).count();
    json!({
        "scenario": "dashboard-logs",
        "rate_asked": args.log_rate,
        "seconds_asked": args.log_seconds,
        "lines_written": produced,
        "achieved_lines_per_s": achieved,
        "write_span_s": span,
        "page_received": loaded + dropped,
        "page_kept": loaded,
        "page_dropped_oldest": dropped,
        "dom_rows": r["dom_rows"],
        "downloaded": seen.len() as u64 + duplicated,
        "missing_from_download": missing.len() as u64,
        "missing_before_first_kept": before_first,
        "missing_gaps": gaps,
        "duplicated": duplicated,
        "lost_in_transit": lost_in_transit,
        "longtask_max_ms": longest,
        "longtasks": r["longtasks"],
        "longtask_total_ms": r["longtask_total_ms"],
        "longtasks_over_100_ms": over_100,
        "frames_per_s": r["frames_per_s"],
        "frame_gaps_over_50_ms": frame_gaps.len(),
        "frame_gaps_over_200_ms": gaps_over_200,
        "frame_gap_max_ms": gap_max,
        "longtasks_over_200_ms": over_200,
        "longtask_p50_ms": crate::scenario::median(&mut tasks),
        "longtask_p95_ms": crate::scenario::percentile(&mut tasks, 0.95),
        "page_follow_s": r["follow_s"],
        "status_line": r["status"]["text"],
        "definition": "the container page's Logs view (defaults: tail 200, follow) opened before the container's first numbered line; the Download button's file after the container stopped, compared by line number with `docker logs`; long tasks (PerformanceObserver longtask, tasks over 50 ms) and gaps over 50 ms between animation frames (requestAnimationFrame), from the first numbered line shown until the view said ended",
        "notes": [
            format!("the page keeps at most its MAX_KEPT lines in memory (web/src/logs.tsx); {before_first} lines older than the first kept one are missing from the download for that reason, {gaps} inside the kept range"),
        ],
        "targets": [
            target("container's achieved rate (lines/s)", achieved, args.log_rate as f64 * RATE_SHARE, Target::AtLeast),
            target("lines lost between docker and the page", lost_in_transit as f64, 0.0, Target::AtMost),
            target("lines missing from the download", missing.len() as f64, 0.0, Target::AtMost),
            target("duplicated lines in the download", duplicated as f64, 0.0, Target::AtMost),
            target("longest main-thread task while following (ms)", longest, LONGTASK_MS, Target::AtMost),
            target("longest gap between frames while following (ms)", gap_max, LONGTASK_MS, Target::AtMost),
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_download_is_compared_by_line_number() {
        let docker = "2026-12-04T05:00:00.0Z start\n2026-12-04T05:00:00.5Z line 000000001\n\
                      2026-12-04T05:00:01.0Z line 000000002\n2026-12-04T05:00:01.5Z line 000000003\n\
                      2026-12-04T05:00:02.0Z line 000000004\n";
        let r = json!({"status": {"loaded": 4, "dropped": 1}, "longtask_max_ms": 60.0});
        let args = Args {
            part: vec![],
            agents: 0,
            containers: 0,
            heap_agents: 0,
            heap_minutes: 0,
            log_rate: 2,
            log_seconds: 2,
        };
        let v = figures(
            &r,
            docker,
            "line 000000002\nline 000000004\nline 000000004\n",
            &args,
        );
        assert_eq!(v["lines_written"], 4);
        assert_eq!(v["missing_from_download"], 2);
        assert_eq!(v["missing_before_first_kept"], 1);
        assert_eq!(v["missing_gaps"], 1);
        assert_eq!(v["duplicated"], 1);
        assert_eq!(v["lost_in_transit"], 0);
        assert!((v["achieved_lines_per_s"].as_f64().unwrap() - 4.0 / 1.6).abs() < 1e-9);
    }
}
