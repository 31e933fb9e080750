//! `nextdeploy agent exec`: `docker exec` through the hub. Output is written
//! as it comes, stdout and stderr apart (one stream with `-t`); with `-i`
//! stdin is sent as it is read, end-of-file included; with `-t` the local
//! terminal is in raw mode (restored on every way out: the guard's drop,
//! and the signals that end the CLI) and its size is sent at start and on
//! every SIGWINCH. The CLI exits with the command's exit code; failures
//! before the command ran exit by the table of [`super::exit`].

use std::io::{IsTerminal, Write};

use anyhow::{bail, Context};
use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use nextdeploy_shared::limits::EXEC_INPUT_CHUNK;
use nextdeploy_shared::protocol::exec::{ExecExit, ExecInput, ExecRequest, ExecResize};
use nextdeploy_shared::protocol::{Action, Reply, ReplyType, Request};
use tokio::io::AsyncReadExt;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use super::client::{error_of, Client, WsSink, WsSource};
use super::exit;

/// `agent exec` flags, as `docker exec` has them.
#[derive(Debug, clap::Args)]
pub struct ExecArgs {
    /// Agent name.
    #[arg(long)]
    pub server: String,
    /// Container name, id or unique id prefix.
    #[arg(long)]
    pub container: String,
    /// Keep stdin open and send it to the command.
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Allocate a pseudo-TTY (the local terminal goes raw).
    #[arg(short = 't', long)]
    pub tty: bool,
    /// User (name, uid, uid:gid) to run as.
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Working directory inside the container.
    #[arg(short = 'w', long)]
    pub workdir: Option<String>,
    /// Set an environment variable, KEY=value (repeatable).
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// Extended privileges for the command (admin).
    #[arg(long)]
    pub privileged: bool,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true)]
    pub cmd: Vec<String>,
}

/// Puts the terminal back when dropped.
struct RawMode;

impl RawMode {
    fn enter() -> anyhow::Result<RawMode> {
        crossterm::terminal::enable_raw_mode().context("cannot put the terminal in raw mode")?;
        Ok(RawMode)
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = crossterm::terminal::disable_raw_mode();
    }
}

/// Run the command; exits the process with its exit code.
pub async fn exec(c: Client, a: ExecArgs) -> anyhow::Result<()> {
    if a.tty && a.interactive && !std::io::stdin().is_terminal() {
        bail!(exit::Usage(
            "the input device is not a TTY (drop -t)".into()
        ));
    }
    let size = a.tty.then(|| crossterm::terminal::size().ok()).flatten();
    let req = ExecRequest {
        container: a.container,
        cmd: a.cmd,
        interactive: a.interactive,
        tty: a.tty,
        user: a.user,
        workdir: a.workdir,
        env: a.env,
        privileged: a.privileged,
        cols: size.map(|s| s.0),
        rows: size.map(|s| s.1),
    };
    let (sink, source, id) = c.into_split();
    let (tx, rx) = mpsc::channel::<Action>(4);
    let writer = tokio::spawn(write_requests(
        sink,
        rx,
        id,
        Request::new(id, Action::Exec(req), Some(&a.server), None),
    ));
    let raw = match a.tty && std::io::stdin().is_terminal() {
        true => Some(RawMode::enter()?),
        false => None,
    };
    if a.interactive {
        tokio::spawn(read_stdin(id, tx.clone()));
    }
    if a.tty {
        tokio::spawn(send_resizes(id, tx.clone()));
    }
    let code = read_replies(source, id).await;
    drop(raw);
    writer.abort();
    let code = code?;
    let _ = std::io::stdout().flush();
    std::process::exit(code);
}

/// Send the exec request, then whatever the other tasks queue, each with a
/// fresh id.
async fn write_requests(mut sink: WsSink, mut rx: mpsc::Receiver<Action>, id: u64, first: Request) {
    let text = |r: &Request| serde_json::to_string(r).unwrap_or_default();
    if sink.send(Message::Text(text(&first).into())).await.is_err() {
        return;
    }
    let mut next = id + 1;
    while let Some(action) = rx.recv().await {
        let r = Request::new(next, action, None, None);
        next += 1;
        if sink.send(Message::Text(text(&r).into())).await.is_err() {
            return;
        }
    }
}

/// Stdin to the command in pieces, then end-of-file.
async fn read_stdin(id: u64, tx: mpsc::Sender<Action>) {
    let mut stdin = tokio::io::stdin();
    let mut buf = vec![0u8; EXEC_INPUT_CHUNK];
    loop {
        let n = stdin.read(&mut buf).await.unwrap_or(0);
        let input = ExecInput {
            exec_id: id,
            b64: (n > 0).then(|| base64::engine::general_purpose::STANDARD.encode(&buf[..n])),
            eof: n == 0,
            ..Default::default()
        };
        if tx.send(Action::ExecInput(input)).await.is_err() || n == 0 {
            return;
        }
    }
}

/// The terminal's size on every SIGWINCH.
async fn send_resizes(id: u64, tx: mpsc::Sender<Action>) {
    let Ok(mut winch) = signal(SignalKind::window_change()) else {
        return;
    };
    while winch.recv().await.is_some() {
        if let Ok((cols, rows)) = crossterm::terminal::size() {
            let r = ExecResize {
                exec_id: id,
                cols,
                rows,
            };
            if tx.send(Action::ExecResize(r)).await.is_err() {
                return;
            }
        }
    }
}

/// Write the output until the exit code; the code, or why there is none.
/// SIGINT (outside raw mode), SIGTERM and SIGHUP end it as the shell would.
async fn read_replies(mut source: WsSource, id: u64) -> anyhow::Result<i32> {
    let mut code = None;
    let (mut int, mut term, mut hup) = (
        signal(SignalKind::interrupt())?,
        signal(SignalKind::terminate())?,
        signal(SignalKind::hangup())?,
    );
    loop {
        let msg = tokio::select! {
            m = source.next() => m,
            _ = int.recv() => return Ok(exit::INTERRUPTED),
            _ = term.recv() => return Ok(128 + 15),
            _ = hup.recv() => return Ok(128 + 1),
        };
        let text = match msg {
            Some(Ok(Message::Text(t))) => t,
            Some(Ok(Message::Close(_))) | None => bail!("the hub closed the connection"),
            Some(Err(e)) => bail!("lost the connection to the hub: {e}"),
            Some(Ok(_)) => continue,
        };
        let r: Reply =
            serde_json::from_str(text.as_str()).context("the hub sent a malformed reply")?;
        if r.id != Some(id) {
            // An input message refused: the exec it names has ended.
            if r.kind == ReplyType::Error && r.data["code"] != "not_found" {
                return Err(error_of(&r));
            }
            continue;
        }
        match r.kind {
            ReplyType::Log => write_chunk(&r)?,
            ReplyType::Result => {
                let e: ExecExit = serde_json::from_value(r.data).context("bad exec result")?;
                code = Some(e.exit_code.clamp(0, 255) as i32);
            }
            ReplyType::End => return code.context("the exec ended without an exit code"),
            ReplyType::Error if r.data["code"] == "cancelled" => return Ok(exit::INTERRUPTED),
            ReplyType::Error => return Err(error_of(&r)),
            _ => {}
        }
    }
}

fn write_chunk(r: &Reply) -> anyhow::Result<()> {
    let bytes = super::containers::bytes_of(&r.data)?;
    if r.data["stream"] == "stderr" {
        let mut e = std::io::stderr().lock();
        e.write_all(&bytes)?;
        e.flush()?;
    } else {
        let mut o = std::io::stdout().lock();
        o.write_all(&bytes)?;
        o.flush()?;
    }
    Ok(())
}
