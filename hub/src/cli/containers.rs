//! `nextdeploy agent inspect|logs|start|stop|restart|kill|rm|stats`; `ps` in
//! [`super::ps`], `events|status|history` in [`super::fleet`].

use std::io::{IsTerminal, Write};

use anyhow::{bail, Context};
use base64::Engine as _;
use nextdeploy_shared::docker::StatsSample;
use nextdeploy_shared::protocol::containers::{ContainerRef, LogsRequest, StatsRequest, Tail};
use nextdeploy_shared::protocol::{Action, Reply, ReplyType};
use nextdeploy_shared::time::{now_unix, parse_point};
use serde_json::{json, Value};

use super::client::Client;
use super::exit::Usage;
use super::output::{self, Output};

/// Print one NDJSON line.
pub fn ndjson(v: &Value) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, v)?;
    out.write_all(b"\n")?;
    Ok(())
}

pub fn bytes_of(data: &Value) -> anyhow::Result<Vec<u8>> {
    if let Some(t) = data.get("text").and_then(Value::as_str) {
        return Ok(t.as_bytes().to_vec());
    }
    let b = data.get("b64").and_then(Value::as_str).unwrap_or("");
    base64::engine::general_purpose::STANDARD
        .decode(b)
        .context("the agent sent bad base64")
}

/// Human size: 12.3MiB.
pub fn size(b: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < units.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{b}B")
    } else {
        format!("{v:.1}{}", units[i])
    }
}

/// `inspect`: the engine's document.
pub async fn inspect(c: &mut Client, server: &str, container: &str) -> anyhow::Result<()> {
    let container = container.to_string();
    let v = c
        .call(Action::Inspect(ContainerRef { container }), Some(server))
        .await?;
    output::json(&v)
}

/// Options of `logs`.
pub struct LogsArgs<'a> {
    /// Container.
    pub container: &'a str,
    /// Keep streaming.
    pub follow: bool,
    /// Lines from the end.
    pub tail: Option<&'a str>,
    /// Since.
    pub since: Option<&'a str>,
    /// Until.
    pub until: Option<&'a str>,
    /// Timestamps.
    pub timestamps: bool,
}

/// `logs`: raw bytes to stdout and stderr (byte-exact), or NDJSON.
pub async fn logs(
    c: &mut Client,
    server: &str,
    a: LogsArgs<'_>,
    out: Output,
) -> anyhow::Result<()> {
    let now = now_unix();
    let point = |p: Option<&str>| -> anyhow::Result<Option<i64>> {
        p.map(|t| parse_point(t, now).map_err(|m| Usage(m).into()))
            .transpose()
    };
    let tail = match a.tail {
        None | Some("all") => Tail::All,
        Some(n) => Tail::Lines(n.parse::<u64>().map_err(|_| {
            Usage(format!(
                "--tail {n}: give a number of lines from the end (0 or more), or all"
            ))
        })?),
    };
    let logs = LogsRequest {
        container: a.container.to_string(),
        follow: a.follow,
        tail: Some(tail),
        since: point(a.since)?,
        until: point(a.until)?,
        timestamps: a.timestamps,
    };
    let mut stdout = std::io::stdout().lock();
    let mut stderr = std::io::stderr().lock();
    c.stream(Action::Logs(logs), Some(server), None, |r: &Reply| {
        if r.kind != ReplyType::Log {
            return Ok(());
        }
        if out == Output::Json {
            return ndjson(&r.data);
        }
        let bytes = bytes_of(&r.data)?;
        if r.data.get("stream").and_then(Value::as_str) == Some("stderr") {
            stderr.write_all(&bytes)?;
            stderr.flush()?;
        } else {
            stdout.write_all(&bytes)?;
            stdout.flush()?;
        }
        Ok(())
    })
    .await
}

/// start / stop / restart / kill.
pub async fn lifecycle(
    c: &mut Client,
    server: &str,
    containers: &[String],
    action: impl Fn(String) -> Action,
    out: Output,
) -> anyhow::Result<()> {
    // As docker: each container in turn, each failure reported, and a
    // failure status when any failed.
    // One container: its error as it is, so that the exit code tells why.
    if let [container] = containers {
        let v = c.call(action(container.clone()), Some(server)).await?;
        return match out {
            Output::Json => output::json(&v),
            Output::Table => {
                println!("{}", v["name"].as_str().unwrap_or(container));
                Ok(())
            }
        };
    }
    let mut failed = Vec::new();
    let mut done = Vec::new();
    for container in containers {
        match c.call(action(container.clone()), Some(server)).await {
            Ok(v) => {
                if out == Output::Table {
                    println!("{}", v["name"].as_str().unwrap_or(container));
                }
                done.push(v);
            }
            Err(e) => {
                eprintln!(
                    "Error: {container}: {}",
                    output::printable(&format!("{e:#}"))
                );
                failed.push(container.clone());
            }
        }
    }
    if out == Output::Json {
        output::json(&Value::Array(done))?;
    }
    match failed.len() {
        0 => Ok(()),
        _ => bail!(
            "failed for {} of {}: {}",
            failed.len(),
            containers.len(),
            failed.join(", ")
        ),
    }
}

fn stats_rows(samples: &[StatsSample]) -> Vec<Vec<String>> {
    samples
        .iter()
        .map(|s| {
            vec![
                s.id.chars().take(12).collect(),
                s.name.clone(),
                s.cpu_percent
                    .map(|c| format!("{c:.2}%"))
                    .unwrap_or_else(|| "--".into()),
                format!("{} / {}", size(s.mem_usage), size(s.mem_limit)),
                format!("{:.2}%", s.mem_percent),
                format!("{} / {}", size(s.net_rx), size(s.net_tx)),
                format!("{} / {}", size(s.block_read), size(s.block_write)),
                s.pids.to_string(),
            ]
        })
        .collect()
}

const STATS_HEADER: [&str; 8] = [
    "CONTAINER ID",
    "NAME",
    "CPU %",
    "MEM USAGE / LIMIT",
    "MEM %",
    "NET I/O",
    "BLOCK I/O",
    "PIDS",
];

/// `stats`: one table (`--no-stream`), or a live one (redrawn on a terminal,
/// lines when piped, NDJSON with `--output json`).
pub async fn stats(
    c: &mut Client,
    server: &str,
    container: Option<&str>,
    no_stream: bool,
    out: Output,
) -> anyhow::Result<()> {
    let payload = StatsRequest {
        container: container.map(str::to_string),
        stream: !no_stream,
    };
    if no_stream {
        let v = c.call(Action::Stats(payload), Some(server)).await?;
        if out == Output::Json {
            return output::json(&v);
        }
        let samples: Vec<StatsSample> = serde_json::from_value(v)?;
        output::table(&STATS_HEADER, &stats_rows(&samples));
        return Ok(());
    }
    let tty = std::io::stdout().is_terminal();
    c.stream(Action::Stats(payload), Some(server), None, |r: &Reply| {
        if r.kind != ReplyType::Stats {
            return Ok(());
        }
        let samples: Vec<StatsSample> = serde_json::from_value(r.data.clone())?;
        match out {
            Output::Json => samples.iter().try_for_each(|s| ndjson(&json!(s))),
            Output::Table => {
                if tty {
                    print!("\x1b[2J\x1b[H");
                }
                output::table(&STATS_HEADER, &stats_rows(&samples));
                Ok(())
            }
        }
    })
    .await
}
