#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `/metrics` (issue 22): the fleet in the Prometheus text format, checked by
//! `promtool check metrics` and scraped by a real Prometheus server (Debian's
//! `prometheus`), which answers a PromQL query for a test container's CPU;
//! a firing alert is counted in `nextdeploy_alerts_firing`.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nextdeploy_tests::docker::*;
use nextdeploy_tests::http::https_get;
use nextdeploy_tests::receiver::Receiver;
use nextdeploy_tests::{wait_until, TempDir};
use serde_json::Value;

/// A Prometheus server; killed on drop.
struct Prometheus(Child);

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn prometheus_scrapes_the_fleet_with_cadvisor_names() {
    let env = DockerEnv::start("metrics", &[("health_interval_s", "1")]).unwrap();
    let burn = env
        .run(
            "burn",
            &["--entrypoint", "/bin/sh"],
            &["-c", "while :; do :; done"],
        )
        .unwrap();
    let (hub, token) = (&env.hub, env.hub.admin_token.clone());
    let pin = hub.tls_pin.clone().unwrap();
    let auth = format!("Bearer {token}");
    let get =
        |headers: &[(&str, &str)]| https_get(hub.http_port, &pin, "/metrics", headers).unwrap();

    assert_eq!(get(&[]).0, 401, "/metrics without a token");
    let series = format!(
        "container_cpu_usage_seconds_total{{server=\"{}\",name=\"{}\"",
        env.server(),
        burn.name
    );
    wait_until(
        "the burner in /metrics",
        Duration::from_secs(30),
        Duration::from_millis(200),
        || {
            let (status, body) = get(&[("authorization", &auth)]);
            assert_eq!(status, 200, "{body}");
            Ok(body.contains(&series).then_some(()))
        },
    )
    .unwrap();
    // A firing alert shows as nextdeploy_alerts_firing{rule, severity}.
    let rx = Receiver::start();
    hub.cli_json(&["alert", "channel", "add", "ops", "--webhook", &rx.url()])
        .unwrap();
    let sel = format!("test={}", env.server().trim_start_matches("dk-"));
    hub.cli_json(&[
        "alert",
        "rule",
        "add",
        "died",
        "--on",
        "container-died",
        "--selector",
        &sel,
        "--severity",
        "critical",
        "--channel",
        "ops",
    ])
    .unwrap();
    // Exits 3 after 2 s: the evaluator takes new rules at its next tick.
    let _exits = env.run("exits", &[], &["exit", "3", "2"]).unwrap();
    let firing = "nextdeploy_alerts_firing{rule=\"died\",severity=\"critical\"} 1";
    let body = wait_until(
        "the alert in /metrics",
        Duration::from_secs(30),
        Duration::from_millis(200),
        || {
            let (_, body) = get(&[("authorization", &auth)]);
            Ok(body.contains(firing).then_some(body))
        },
    )
    .unwrap();
    for family in [
        "nextdeploy_agent_up{",
        "container_memory_working_set_bytes{",
        "container_network_receive_bytes_total{",
        "nextdeploy_container_state{",
        "nextdeploy_hub_agents_connected 1",
        "nextdeploy_hub_request_duration_seconds_bucket{le=\"+Inf\"}",
    ] {
        assert!(body.contains(family), "no {family} in:\n{body}");
    }
    assert!(body.contains(&series), "no {series} in:\n{body}");
    let dir = TempDir::new("prometheus").unwrap();
    let mut check = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut check.stdin.take().unwrap(), body.as_bytes()).unwrap();
    let checked = check.wait_with_output().unwrap();
    assert!(
        checked.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );

    // A real Prometheus scrapes the hub over TLS (the hub's own certificate
    // as its CA) with the token, once a second.
    let port = free_port();
    let config = format!(
        "global: {{scrape_interval: 1s}}\nscrape_configs:\n  - job_name: nextdeploy\n    scheme: https\n    \
         tls_config: {{ca_file: {}}}\n    authorization: {{credentials: {token}}}\n    \
         static_configs: [{{targets: ['127.0.0.1:{}']}}]\n",
        hub.data_dir.join("api-cert.pem").display(),
        hub.http_port
    );
    let file = dir.path().join("prometheus.yml");
    std::fs::write(&file, config).unwrap();
    let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
    let _prom = Prometheus(
        Command::new("prometheus")
            .arg(format!("--config.file={}", file.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let query = format!(
        "rate(container_cpu_usage_seconds_total{{name=\"{}\"}}[10s])",
        burn.name
    );
    let path = format!("/api/v1/query?query={}", urlencode(&query));
    let rate = wait_until(
        "Prometheus to see the burner's CPU",
        Duration::from_secs(90),
        Duration::from_millis(500),
        || {
            let Ok((200, text)) = nextdeploy_tests::http_get(port, &path, &[]) else {
                return Ok(None);
            };
            let v: Value = serde_json::from_str(&text)?;
            let value = v["data"]["result"][0]["value"][1]
                .as_str()
                .and_then(|s| s.parse::<f64>().ok());
            Ok(value.filter(|r| *r > 0.1))
        },
    );
    let rate = rate.unwrap_or_else(|e| {
        let log = std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap_or_default();
        panic!(
            "{e:#}\n--- prometheus log ---\n{}",
            &log[log.len().saturating_sub(3000)..]
        )
    });
    eprintln!("Prometheus: rate(container_cpu_usage_seconds_total) of the burner = {rate:.2} CPUs");
    assert!(rate < 2.5, "a one-thread burner at {rate} CPUs");
}

/// Percent-encode a query parameter.
fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
