#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `agent stats` through hub and agent: a container burning one core reads
//! 80..120 % (one-shot and streaming), memory agrees with `docker stats`
//! within 5 %, and streaming delivers a sample per container about every
//! second.

use std::time::{Duration, Instant};

use nextdeploy_tests::docker::*;
use serde_json::Value;

/// `docker stats --no-stream --format '{{.MemUsage}}'` as (usage, limit) bytes.
fn docker_mem(c: &Container) -> (f64, f64) {
    let s = docker(&["stats", "--no-stream", "--format", "{{.MemUsage}}", &c.id]).unwrap();
    let (u, l) = s
        .split_once('/')
        .unwrap_or_else(|| panic!("MemUsage {s:?}"));
    (
        parse_docker_size(u).unwrap_or_else(|| panic!("MemUsage {s:?}")),
        parse_docker_size(l).unwrap_or_else(|| panic!("MemUsage {s:?}")),
    )
}

/// `docker stats --no-stream --format '{{.CPUPerc}}'`, for messages.
fn docker_cpu(c: &Container) -> String {
    docker(&["stats", "--no-stream", "--format", "{{.CPUPerc}}", &c.id])
        .unwrap_or_else(|e| format!("{e:#}"))
}

/// The load average and CPU count, for messages.
fn load() -> String {
    let l = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{} on {cpus} CPUs", l.trim())
}

fn one(v: &Value, name: &str) -> Value {
    let a = v.as_array().unwrap_or_else(|| panic!("not an array: {v}"));
    a.iter()
        .find(|s| s["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no sample for {name} in {v}"))
}

fn check_sample_shape(s: &Value) {
    for k in [
        "id",
        "name",
        "mem_usage",
        "mem_limit",
        "mem_percent",
        "net_rx",
        "net_tx",
        "block_read",
        "block_write",
        "pids",
        "at_ms",
    ] {
        assert!(!s[k].is_null(), "sample without {k}: {s}");
    }
    assert!(
        s["cpu_percent"].is_null() || s["cpu_percent"].is_number(),
        "{s}"
    );
}

#[test]
fn a_burning_core_reads_about_100_percent_and_memory_agrees_with_docker() {
    let env = DockerEnv::start("stats", &[]).unwrap();
    let burn = env.run("burn", &[], &["burn"]).unwrap();
    let mem = env
        .run("mem", &["--tmpfs", "/t:size=100m"], &["mem", "50"])
        .unwrap();
    // The fill is done when the usage stops growing past 50 MiB.
    wait_until_ok(
        "the mem container to hold 50 MiB",
        Duration::from_secs(20),
        Duration::from_millis(200),
        || Ok(docker_mem(&mem).0 > 50.0 * 1024.0 * 1024.0),
    )
    .unwrap();
    std::thread::sleep(Duration::from_secs(1));

    // One-shot, one container: CPU 80..120 %.
    let t = Instant::now();
    let v = env
        .agent_json("stats", &["--container", &burn.name, "--no-stream"])
        .unwrap();
    let took = t.elapsed();
    let s = one(&v, &burn.name);
    check_sample_shape(&s);
    assert_eq!(s["id"], Value::from(burn.id.clone()));
    let cpu = s["cpu_percent"].as_f64();
    eprintln!("--no-stream for one container took {took:?}: cpu {cpu:?}");
    let cpu = cpu.unwrap_or_else(|| panic!("--no-stream gave no CPU figure: {s}"));
    assert!(
        (80.0..=120.0).contains(&cpu),
        "a container burning one core reads {cpu:.1} % (--no-stream): {s}\n\
         (docker stats reads {} now; load: {})",
        docker_cpu(&burn),
        load()
    );
    assert!(took < Duration::from_secs(10), "--no-stream took {took:?}");

    // Memory: as `docker stats` shows it, within 5 %.
    let v = env
        .agent_json("stats", &["--container", &mem.name, "--no-stream"])
        .unwrap();
    let (dock_use, dock_limit) = docker_mem(&mem);
    let s = one(&v, &mem.name);
    check_sample_shape(&s);
    let ours = s["mem_usage"].as_f64().unwrap();
    let limit = s["mem_limit"].as_f64().unwrap();
    eprintln!("memory: ours {ours} docker {dock_use}; limit ours {limit} docker {dock_limit}");
    assert!(
        (ours - dock_use).abs() <= 0.05 * dock_use,
        "memory {ours} vs docker stats {dock_use} (more than 5 % apart): {s}"
    );
    assert!(
        (limit - dock_limit).abs() <= 0.01 * dock_limit,
        "memory limit {limit} vs docker stats {dock_limit}: {s}"
    );
    let pct = s["mem_percent"].as_f64().unwrap();
    assert!(
        (pct - 100.0 * ours / limit).abs() < 0.5,
        "mem_percent {pct} is not usage/limit: {s}"
    );
    assert!(s["pids"].as_u64().unwrap() >= 1, "{s}");

    // Without --container: every running container, both of ours included.
    let all = env.agent_json("stats", &["--no-stream"]).unwrap();
    one(&all, &burn.name);
    one(&all, &mem.name);
}

#[test]
fn streaming_delivers_a_sample_per_container_every_second() {
    let env = DockerEnv::start("stats-stream", &[]).unwrap();
    let burn = env.run("burn", &[], &["burn"]).unwrap();
    let idle = env.run("idle", &[], &["idle"]).unwrap();
    std::thread::sleep(Duration::from_secs(1));
    let mut st = env.agent_stream("stats", &["--output", "json"]).unwrap();
    let first = st
        .wait_json("a first sample", Duration::from_secs(10), |v| {
            v["name"] == burn.name.as_str()
        })
        .unwrap();
    check_sample_shape(&first);
    let n0 = st.lines().len();
    let lines = st.collect_for(Duration::from_secs(5))[n0..].to_vec();
    let samples: Vec<Value> = lines.iter().map(|l| l.json().unwrap()).collect();
    for name in [&burn.name, &idle.name] {
        let mine: Vec<&Value> = samples
            .iter()
            .filter(|s| s["name"] == name.as_str())
            .collect();
        assert!(
            mine.len() >= 4,
            "{} samples of {name} in 5 s of streaming ({} running containers on the engine, load {})\n{}",
            mine.len(),
            docker(&["ps", "-q"]).unwrap().lines().count(),
            load(),
            st.describe()
        );
        let mut at: Vec<i64> = mine.iter().map(|s| s["at_ms"].as_i64().unwrap()).collect();
        at.dedup();
        assert!(at.len() >= 4, "samples repeat the same at_ms: {at:?}");
    }
    let cpus: Vec<Option<f64>> = samples
        .iter()
        .filter(|s| s["name"] == burn.name.as_str())
        .map(|s| s["cpu_percent"].as_f64())
        .collect();
    eprintln!("streaming cpu of the burner: {cpus:?}");
    for c in &cpus {
        let c =
            c.unwrap_or_else(|| panic!("a streaming sample after the first without CPU: {cpus:?}"));
        assert!(
            (80.0..=120.0).contains(&c),
            "a streaming sample read {c:.1} % for a burning core: {cpus:?}\n\
             (docker stats reads {} now; load: {})",
            docker_cpu(&burn),
            load()
        );
    }
    assert!(
        st.exit_status().is_none(),
        "the stream ended\n{}",
        st.describe()
    );
}
