//! `nextdeploy exec-sessions list|show|play` (admin): the exec sessions the
//! hub kept, and the recordings of those with a TTY (asciicast v2).

use std::io::Write;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Subcommand;
use nextdeploy_shared::protocol::admin::ById;
use nextdeploy_shared::protocol::exec::{ExecSession, ExecSessionsList};
use nextdeploy_shared::protocol::{Action, ReplyType};
use nextdeploy_shared::secret::Secret;
use serde_json::Value;

use super::client::{error_of, Client};
use super::output::{self, Output};

/// Longest pause `play` keeps between two outputs (asciinema's idle limit).
const PLAY_IDLE_LIMIT: Duration = Duration::from_secs(2);

/// `nextdeploy exec-sessions ...`
#[derive(Debug, Subcommand)]
pub enum ExecSessionsCmd {
    /// Sessions, newest first: who, where, what, how it ended, bytes.
    List {
        /// Only sessions on this agent.
        #[arg(long)]
        server: Option<String>,
        /// How many (1 to 1000).
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// One session.
    Show {
        /// Session id.
        id: String,
    },
    /// Play a session's recording in this terminal, or print it (--cast).
    Play {
        /// Session id.
        id: String,
        /// Print the recording itself (asciicast v2, for `asciinema play`).
        #[arg(long)]
        cast: bool,
        /// Play this many times faster.
        #[arg(long, default_value_t = 1.0)]
        speed: f64,
    },
}

/// Run an `exec-sessions` command.
pub async fn run(
    cmd: ExecSessionsCmd,
    hub: &str,
    token: &Secret<String>,
    out: Output,
) -> anyhow::Result<()> {
    let mut c = Client::connect(hub, token).await?;
    match cmd {
        ExecSessionsCmd::List { server, limit } => {
            let p = ExecSessionsList {
                limit: Some(limit),
                server,
            };
            let v = c.call(Action::ExecSessionsList(p), None).await?;
            list(v, out)?;
        }
        ExecSessionsCmd::Show { id } => {
            let v = c.call(Action::ExecSessionsShow(ById { id }), None).await?;
            match out {
                Output::Json => output::json(&v)?,
                Output::Table => show(serde_json::from_value(v)?),
            }
        }
        ExecSessionsCmd::Play { id, cast, speed } => {
            if !(speed > 0.0 && speed.is_finite()) {
                bail!(super::exit::Usage("--speed must be above 0".into()));
            }
            let text = recording(&mut c, id).await?;
            match cast {
                true => std::io::stdout().write_all(text.as_bytes())?,
                false => play(&text, speed).await?,
            }
        }
    }
    c.close().await;
    Ok(())
}

fn list(v: Value, out: Output) -> anyhow::Result<()> {
    if out == Output::Json {
        return output::json(&v);
    }
    let rows: Vec<ExecSession> = serde_json::from_value(v)?;
    let cells: Vec<Vec<String>> = rows
        .into_iter()
        .map(|s| {
            vec![
                s.id,
                s.started,
                s.actor,
                s.server,
                s.container,
                s.command,
                if s.tty { "yes" } else { "no" }.into(),
                outcome(s.exit_code, s.error.as_deref(), s.ended.is_some()),
                s.bytes_in.to_string(),
                s.bytes_out.to_string(),
                recorded(s.recording_bytes, s.truncated),
            ]
        })
        .collect();
    let head = [
        "ID",
        "STARTED",
        "ACTOR",
        "SERVER",
        "CONTAINER",
        "COMMAND",
        "TTY",
        "EXIT",
        "IN",
        "OUT",
        "RECORDING",
    ];
    output::table(&head, &cells);
    Ok(())
}

fn outcome(code: Option<i64>, error: Option<&str>, ended: bool) -> String {
    match (code, error, ended) {
        (Some(c), _, _) => c.to_string(),
        (None, Some(e), _) => format!("error: {e}"),
        (None, None, true) => "-".into(),
        (None, None, false) => "running".into(),
    }
}

fn recorded(bytes: u64, truncated: bool) -> String {
    match (bytes, truncated) {
        (0, _) => "-".into(),
        (b, true) => format!("{} (truncated)", super::containers::size(b)),
        (b, false) => super::containers::size(b),
    }
}

fn show(s: ExecSession) {
    let rows = [
        ("id", s.id),
        ("actor", format!("{} (token {})", s.actor, s.token_id)),
        ("server", s.server),
        ("container", s.container),
        ("command", s.command),
        ("tty", s.tty.to_string()),
        ("started", s.started),
        ("ended", s.ended.clone().unwrap_or_else(|| "-".into())),
        (
            "exit",
            outcome(s.exit_code, s.error.as_deref(), s.ended.is_some()),
        ),
        ("bytes in", s.bytes_in.to_string()),
        ("bytes out", s.bytes_out.to_string()),
        ("recording", recorded(s.recording_bytes, s.truncated)),
    ];
    for (k, v) in rows {
        println!("{k:<10} {v}");
    }
}

/// The recording's text.
async fn recording(c: &mut Client, id: String) -> anyhow::Result<String> {
    let rid = c
        .send(Action::ExecSessionsRecording(ById { id }), None, None)
        .await?;
    let mut text = Vec::new();
    loop {
        let r = c.next().await?;
        if r.id != Some(rid) {
            continue;
        }
        match r.kind {
            ReplyType::Log => text.extend(super::containers::bytes_of(&r.data)?),
            ReplyType::End => break,
            ReplyType::Error => return Err(error_of(&r)),
            _ => {}
        }
    }
    String::from_utf8(text).context("the recording is not UTF-8")
}

/// Print the output events with their timing (pauses capped).
async fn play(text: &str, speed: f64) -> anyhow::Result<()> {
    let mut last = 0.0f64;
    let mut out = std::io::stdout();
    for line in text.lines().skip(1) {
        let Ok(Value::Array(ev)) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let (Some(t), Some("o"), Some(data)) = (
            ev.first().and_then(Value::as_f64),
            ev.get(1).and_then(Value::as_str),
            ev.get(2).and_then(Value::as_str),
        ) else {
            continue;
        };
        let pause = Duration::from_secs_f64(((t - last) / speed).max(0.0)).min(PLAY_IDLE_LIMIT);
        last = t;
        tokio::time::sleep(pause).await;
        out.write_all(data.as_bytes())?;
        out.flush()?;
    }
    Ok(())
}
