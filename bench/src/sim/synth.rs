//! What a simulated agent's containers do: each has its own CPU level,
//! memory and network rates, drawn log-uniformly (most containers are
//! quiet, a few are busy: CPU 0.05 to 40 %, traffic 10 B/s to 200 KB/s),
//! and every sample wanders around them with noise (CPU ±15 %, memory a
//! random walk, traffic ±30 %; a mean of k samples k^-1/2 as noisy). The same model gives the live snapshots and the points
//! of the history the bench writes before the hub starts (`health::fill`),
//! so both cost the store what real containers would.

use nextdeploy_hub::history::Point;
use nextdeploy_shared::docker::{ContainerHealth, HealthSnapshot, HostSample};
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

/// One container's levels and its counters so far.
struct Model {
    name: String,
    cpu: f64,
    mem: f64,
    rx_rate: f64,
    tx_rate: f64,
    rx: f64,
    tx: f64,
}

/// A simulated agent's containers.
pub struct Synth {
    agent: String,
    models: Vec<Model>,
    rng: SmallRng,
}

/// `v` with uniform noise of relative standard deviation `sd`.
fn noisy(rng: &mut SmallRng, v: f64, sd: f64) -> f64 {
    // A uniform on [-a, a] has standard deviation a / sqrt(3).
    let a = sd * 3f64.sqrt();
    (v * (1.0 + rng.random_range(-a..a))).max(0.0)
}

/// A draw between `lo` and `hi`, uniform in its logarithm.
fn log_uniform(rng: &mut SmallRng, lo: f64, hi: f64) -> f64 {
    (lo.ln() + rng.random_range(0.0..1.0) * (hi.ln() - lo.ln())).exp()
}

impl Synth {
    /// `n` containers of agent `agent`, their levels fixed by its name.
    pub fn new(agent: &str, n: usize) -> Synth {
        let seed = agent
            .bytes()
            .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(b.into()));
        let mut rng = SmallRng::seed_from_u64(seed);
        let models = (0..n)
            .map(|i| Model {
                name: format!("{agent}-app-{i}"),
                cpu: log_uniform(&mut rng, 0.05, 40.0),
                mem: log_uniform(&mut rng, 10e6, 500e6),
                rx_rate: log_uniform(&mut rng, 10.0, 200_000.0),
                tx_rate: log_uniform(&mut rng, 10.0, 100_000.0),
                rx: rng.random_range(0.0..1e9),
                tx: rng.random_range(0.0..1e9),
            })
            .collect();
        Synth {
            agent: agent.to_string(),
            models,
            rng,
        }
    }

    /// Advance every container by `secs`, `samples` samples' worth.
    fn step(&mut self, secs: f64, samples: i64) {
        let k = (samples.max(1) as f64).sqrt();
        for m in &mut self.models {
            let walk = 0.002 * k;
            m.mem = (m.mem * (1.0 + self.rng.random_range(-walk..walk))).max(1e6);
            m.rx += noisy(&mut self.rng, m.rx_rate, 0.3 / k) * secs;
            m.tx += noisy(&mut self.rng, m.tx_rate, 0.3 / k) * secs;
        }
    }

    /// The next live snapshot, `secs` after the last.
    pub fn snapshot(&mut self, at: i64, secs: f64) -> HealthSnapshot {
        self.step(secs, 1);
        let rng = &mut self.rng;
        let containers: Vec<ContainerHealth> = self
            .models
            .iter()
            .enumerate()
            .map(|(i, m)| ContainerHealth {
                id: format!("{:064x}", i + 1),
                name: m.name.as_str().into(),
                image: "registry.example/app:1.2.3".into(),
                state: "running".into(),
                health: Some("healthy".into()),
                restarts: 0,
                started_at: None,
                cpu_percent: Some((noisy(rng, m.cpu, 0.15) * 100.0).round() / 100.0),
                // A growing counter, as real agents send (its value is not read).
                cpu_total_ns: Some(m.rx as u64 * 3_000),
                mem_usage: m.mem as u64,
                mem_limit: 2_000_000_000,
                net_rx: m.rx as u64,
                net_tx: m.tx as u64,
                stats_from: Some("kernel".into()),
            })
            .collect();
        let host = self.host(&containers);
        HealthSnapshot {
            at,
            docker_available: true,
            docker_error: None,
            sweep_ms: 3,
            containers,
            host: Some(host),
            ..Default::default()
        }
    }

    /// Every container's point of a `res`-second bucket at `t`, as the hub
    /// would have kept it from `res / interval` samples.
    pub fn points(&mut self, t: i64, res: i64, interval: i64) -> Vec<Point> {
        let samples = (res / interval).max(1);
        self.step(res as f64, samples);
        let rng = &mut self.rng;
        self.models
            .iter()
            .map(|m| {
                // The mean of k samples is k^-1/2 as noisy; the max sits
                // above it by about one sample's spread.
                let avg = noisy(rng, m.cpu, 0.15 / (samples as f64).sqrt());
                let max = if samples > 1 {
                    noisy(rng, avg * 1.2, 0.05)
                } else {
                    avg
                };
                let round = |v: f64, step: i64| ((v * 100.0) as i64 + step / 2) / step * step;
                let (cpu_step, net_step) = if res > 5 { (10, 1024) } else { (1, 1) };
                let mem = (m.mem / 1024.0) as i64;
                Point {
                    t,
                    container: m.name.as_str().into(),
                    n: samples,
                    cpu_n: samples,
                    cpu_avg: round(avg, cpu_step),
                    cpu_max: round(max.max(avg), cpu_step),
                    mem_avg: mem,
                    mem_max: if samples > 1 {
                        mem + rng.random_range(0..200)
                    } else {
                        mem
                    },
                    mem_limit: 2_000_000_000 / 1024,
                    net_rx: m.rx as i64 / net_step * net_step,
                    net_tx: m.tx as i64 / net_step * net_step,
                    restarts: 0,
                    state: "running".into(),
                    health: Some("healthy".into()),
                }
            })
            .collect()
    }

    /// A plausible host: its size fixed by the agent's name (2 to 16 CPUs,
    /// 4 GiB each), busy with its containers plus the system's share.
    fn host(&mut self, containers: &[ContainerHealth]) -> HostSample {
        let seed = self
            .agent
            .bytes()
            .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(b.into()));
        let cpus = 2u32 << (seed % 4);
        let mem_total_bytes = u64::from(cpus) * (4 << 30);
        let apps_cpu: f64 = containers.iter().filter_map(|c| c.cpu_percent).sum();
        let apps_mem: u64 = containers.iter().map(|c| c.mem_usage).sum();
        let cpu = (apps_cpu / f64::from(cpus) + self.rng.random_range(1.0..8.0)).min(100.0);
        let load = cpu / 100.0 * f64::from(cpus);
        HostSample {
            cpu_percent: Some(cpu),
            cpus,
            mem_used_bytes: (apps_mem + self.rng.random_range(400_000_000..1_200_000_000))
                .min(mem_total_bytes),
            mem_total_bytes,
            load1: load,
            load5: load * 0.9,
            load15: load * 0.8,
            uptime_s: 86_400 + u64::from(seed % 2_592_000),
        }
    }
}
