//! Deploy progress as the CLI prints it: one line per step with the elapsed
//! time and what is happening, a progress bar per pulled layer on a terminal,
//! and the deploys seen so far (id, server, ended or not), to say how to
//! follow the ones still running if the hub goes away or the user presses
//! Ctrl-C.

use std::collections::HashMap;
use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};
use nextdeploy_shared::protocol::deploy::DeployProgress;
use nextdeploy_shared::protocol::ReplyType;
use serde_json::Value;

use super::client::{error_of, Client};
use super::output::Output;

/// The exit status after Ctrl-C, as a shell reports a process that SIGINT
/// ended (128 + 2).
const INTERRUPTED: i32 = 130;

/// A deploy this command has seen start.
struct Seen {
    id: String,
    server: String,
    /// Its `finished` step came (fleet deploys): nothing left to follow.
    ended: bool,
}

/// What the CLI has shown of a deploy's progress.
pub struct Progress {
    tty: bool,
    bars: HashMap<String, ProgressBar>,
    started: std::time::Instant,
    /// Deploys seen, to tell how to follow them if the hub goes away.
    seen: Vec<Seen>,
}

impl Progress {
    pub(super) fn new(out: Output) -> Progress {
        Progress {
            tty: std::io::stdout().is_terminal() && out == Output::Table,
            bars: HashMap::new(),
            started: std::time::Instant::now(),
            seen: Vec::new(),
        }
    }

    /// Replies to request `id` until its result; progress shown as it comes.
    /// Losing the hub prints how to follow the deploys already started;
    /// Ctrl-C prints which are still running where, and how to follow each,
    /// then exits with status 130 (the hub finishes them; it starts no more).
    pub(super) async fn watch(
        &mut self,
        c: &mut Client,
        id: u64,
        out: Output,
    ) -> anyhow::Result<Value> {
        let interrupt = tokio::signal::ctrl_c();
        tokio::pin!(interrupt);
        loop {
            let next = tokio::select! {
                r = c.next() => r,
                _ = &mut interrupt => self.interrupted(),
            };
            let r = match next {
                Ok(r) => r,
                Err(e) => {
                    for d in self.seen.iter().filter(|d| !d.ended) {
                        eprintln!("lost the hub during deploy {}; the deploy goes on without this command: follow it with nextdeploy deploys show {} --follow", d.id, d.id);
                    }
                    return Err(e);
                }
            };
            if r.id != Some(id) {
                continue;
            }
            match r.kind {
                ReplyType::Progress => {
                    let step = serde_json::from_value::<DeployProgress>(r.data.clone());
                    if let Ok(step) = step {
                        let server = r.server.clone().unwrap_or_default();
                        self.note(&step, &server);
                        self.show(&step, &server, &r.data, out);
                    }
                }
                ReplyType::Result => return Ok(r.data),
                ReplyType::Error => return Err(error_of(&r)),
                _ => {}
            }
        }
    }

    /// Remember a deploy's id and server, and whether it ended.
    fn note(&mut self, step: &DeployProgress, server: &str) {
        match self.seen.iter_mut().find(|d| d.id == step.deploy_id) {
            Some(d) => d.ended |= step.step == "finished",
            None if !step.deploy_id.is_empty() => self.seen.push(Seen {
                id: step.deploy_id.clone(),
                server: server.to_string(),
                ended: step.step == "finished",
            }),
            None => {}
        }
    }

    /// Ctrl-C: say what is still running on which server and how to follow
    /// it, then exit (the CLI's edge: nothing is left to clean up here).
    fn interrupted(&self) -> ! {
        for b in self.bars.values() {
            b.finish_and_clear();
        }
        let running: Vec<&Seen> = self.seen.iter().filter(|d| !d.ended).collect();
        if running.is_empty() {
            eprintln!("interrupted: no deploy had started");
        } else {
            eprintln!(
                "interrupted: the hub finishes the {} deploy(s) still running and starts no other:",
                running.len()
            );
        }
        for d in running {
            eprintln!(
                "  {}: deploy {} still finishing; follow it with: nextdeploy deploys show {} --follow",
                d.server, d.id, d.id
            );
        }
        std::process::exit(INTERRUPTED);
    }
}

/// One human progress line: "[  3.2s] web1 app: swap started: stopping the old container (stop timeout 10 s)".
pub(super) fn progress_line(elapsed: f64, server: &str, d: &DeployProgress) -> String {
    let (container, step) = (d.container.as_str(), d.step.as_str());
    match step {
        "accepted" => {
            return format!(
                "[{elapsed:>6.1}s] deploy {} on {server}: {}",
                d.deploy_id,
                d.detail.as_deref().unwrap_or("recorded")
            )
        }
        "finished" => {
            return format!(
                "[{elapsed:>6.1}s] deploy {} on {server}: finished: {}",
                d.deploy_id, d.status
            )
        }
        _ => {}
    }
    let mut line = format!(
        "[{elapsed:>6.1}s] {server} {container}: {step} {}",
        d.status
    );
    if let Some(x) = d.detail.as_deref().filter(|_| step != "pull_progress") {
        line.push_str(&format!(": {}", super::output::printable(x)));
    }
    // The error itself is in the summary at the end, printed once.
    if d.error.is_some() {
        line.push_str(" (the error is in the summary below)");
    }
    line
}

impl Progress {
    /// Show one step (`raw` is the reply's data, printed as is for JSON).
    fn show(&mut self, d: &DeployProgress, server: &str, raw: &Value, out: Output) {
        if out == Output::Json {
            let mut v = raw.clone();
            v["server"] = Value::String(server.to_string());
            println!("{v}");
            return;
        }
        let elapsed = self.started.elapsed().as_secs_f64();
        let key = format!("{server}/{}", d.container);
        if d.step == "pull_progress" {
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
                b.set_prefix(format!("{server} {}", d.container));
                b
            });
            let (cur, total) = (d.current.unwrap_or(0), d.total.unwrap_or(0));
            if total > 0 {
                bar.set_length(total as u64);
                bar.set_position(cur.max(0) as u64);
            }
            bar.set_message(d.detail.clone().unwrap_or_default());
            return;
        }
        if d.step == "pull" {
            if let Some(b) = self.bars.remove(&key) {
                b.finish_and_clear();
            }
        }
        println!("{}", progress_line(elapsed, server, d));
    }
}
