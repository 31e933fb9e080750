//! Deploy progress as the CLI prints it: one line per step with the elapsed
//! time and what is happening, a progress bar per pulled layer on a terminal,
//! and the ids seen so far, to say how to follow them if the hub goes away.

use std::collections::HashMap;
use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};
use nextdeploy_shared::protocol::{Reply, ReplyType};
use serde_json::{json, Value};

use super::client::{error_of, Client};
use super::output::Output;
use super::tokens::s;

/// What the CLI has shown of a deploy's progress.
pub struct Progress {
    tty: bool,
    bars: HashMap<String, ProgressBar>,
    started: std::time::Instant,
    /// Deploy ids seen, to tell how to follow them if the hub goes away.
    ids: Vec<String>,
}

impl Progress {
    pub(super) fn new(out: Output) -> Progress {
        Progress {
            tty: std::io::stdout().is_terminal() && out == Output::Table,
            bars: HashMap::new(),
            started: std::time::Instant::now(),
            ids: Vec::new(),
        }
    }

    /// Replies to request `id` until its result; progress shown as it comes.
    /// Losing the hub prints how to follow the deploys already started.
    pub(super) async fn watch(
        &mut self,
        c: &mut Client,
        id: u64,
        out: Output,
    ) -> anyhow::Result<Value> {
        loop {
            let r = match c.next().await {
                Ok(r) => r,
                Err(e) => {
                    for d in &self.ids {
                        eprintln!("lost the hub during deploy {d}; the deploy goes on without this command: follow it with nextdeploy deploys show {d} --follow");
                    }
                    return Err(e);
                }
            };
            if r.id != Some(id) {
                continue;
            }
            match r.kind {
                ReplyType::Progress => {
                    if let Some(d) = r.data["deploy_id"].as_str() {
                        if !self.ids.iter().any(|x| x == d) {
                            self.ids.push(d.to_string());
                        }
                    }
                    self.show(&r, out)
                }
                ReplyType::Result => return Ok(r.data),
                ReplyType::Error => return Err(error_of(&r)),
                _ => {}
            }
        }
    }
}

/// One human progress line: "[  3.2s] web1 app: swap started: stopping the old container (stop timeout 10 s)".
pub(super) fn progress_line(elapsed: f64, server: &str, d: &Value) -> String {
    let container = d["container"].as_str().unwrap_or("");
    let step = d["step"].as_str().unwrap_or("");
    if step == "accepted" {
        return format!(
            "[{elapsed:>6.1}s] deploy {} on {server}: {}",
            s(&d["deploy_id"]),
            d["detail"].as_str().unwrap_or("recorded")
        );
    }
    let mut line = format!(
        "[{elapsed:>6.1}s] {server} {container}: {step} {}",
        d["status"].as_str().unwrap_or("")
    );
    if let Some(x) = d["detail"].as_str().filter(|_| step != "pull_progress") {
        line.push_str(&format!(": {x}"));
    }
    // The error itself is in the summary at the end, printed once.
    if d["error"].is_string() {
        line.push_str(" (the error is in the summary below)");
    }
    line
}

impl Progress {
    pub(super) fn show(&mut self, r: &Reply, out: Output) {
        let d = &r.data;
        if out == Output::Json {
            let mut v = d.clone();
            v["server"] = json!(r.server);
            println!("{v}");
            return;
        }
        let server = r.server.clone().unwrap_or_default();
        let container = d["container"].as_str().unwrap_or("");
        let step = d["step"].as_str().unwrap_or("");
        let elapsed = self.started.elapsed().as_secs_f64();
        let key = format!("{server}/{container}");
        if step == "pull_progress" {
            if !self.tty {
                return;
            }
            let bar = self.bars.entry(key).or_insert_with(|| {
                let b = ProgressBar::new(0);
                b.set_style(
                    ProgressStyle::with_template(
                        "{prefix} pulling [{bar:30}] {bytes}/{total_bytes} {msg}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
                );
                b.set_prefix(format!("{server} {container}"));
                b
            });
            let (cur, total) = (
                d["current"].as_u64().unwrap_or(0),
                d["total"].as_u64().unwrap_or(0),
            );
            if total > 0 {
                bar.set_length(total);
                bar.set_position(cur);
            }
            bar.set_message(d["detail"].as_str().unwrap_or("").to_string());
            return;
        }
        if step == "pull" {
            if let Some(b) = self.bars.remove(&key) {
                b.finish_and_clear();
            }
        }
        println!("{}", progress_line(elapsed, &server, d));
    }
}
