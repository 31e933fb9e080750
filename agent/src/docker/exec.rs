//! `exec`: a command in a container, as `docker exec` runs it. Output goes
//! out as `log` replies (stdout and stderr apart, or the terminal's output as
//! `stdout` with a TTY), byte for byte; then the exit code (`result`) and
//! `end`. Input arrives from the channel ([`ExecIn`], see
//! [`crate::channel`]) and is written to the command's stdin by a task of
//! its own, which grants the hub input credit (`credit` replies) for what it
//! wrote, so the hub never sends more than
//! [`EXEC_INPUT_WINDOW`](nextdeploy_shared::limits::EXEC_INPUT_WINDOW) ahead.
//! Dropping the future (the hub closed the channel) drops the engine's
//! connection, which ends the command's stdin and output.

use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, ResizeExecOptions, StartExecOptions, StartExecResults};
use bollard::Docker;
use futures_util::StreamExt;
use nextdeploy_shared::limits::exec_input_cost;
use nextdeploy_shared::protocol::exec::{ExecExit, ExecRequest, InputCredit};
use nextdeploy_shared::protocol::{ErrorCode, Reply, ReplyType};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use super::containers::resolve;
use super::logs::make_log_reply;
use super::{classify, DockerError, Engine};
use crate::limits::{EXEC_EXIT_POLL, EXEC_EXIT_WAIT, EXEC_READ_CAPACITY};

/// What the hub sends a running exec.
#[derive(Debug, Clone, PartialEq)]
pub enum ExecIn {
    /// Bytes for stdin.
    Data(Vec<u8>),
    /// Close stdin.
    Eof,
    /// The terminal's new size: columns, rows.
    Resize(u16, u16),
}

impl ExecIn {
    /// What it costs of the input window.
    pub fn cost(&self) -> u32 {
        match self {
            ExecIn::Data(b) => exec_input_cost(b.len()),
            ExecIn::Eof | ExecIn::Resize(..) => exec_input_cost(0),
        }
    }
}

/// Run `p`, stream its output to `out`, end with its exit code.
pub async fn run_exec(
    engine: &Engine,
    id: Option<u64>,
    p: &ExecRequest,
    input: Option<mpsc::Receiver<ExecIn>>,
    out: &mpsc::Sender<Reply>,
) -> Result<(), DockerError> {
    if p.cmd.is_empty() || p.cmd[0].is_empty() {
        return Err(DockerError::new(
            ErrorCode::BadRequest,
            "payload.cmd: name the command to run",
        ));
    }
    let target = resolve(engine, &p.container).await?;
    let docker = engine.docker().await?;
    let exec_id = docker
        .create_exec(&target.id, create_options(p))
        .await
        .map_err(|e| classify(&e))?
        .id;
    let start = StartExecOptions {
        detach: false,
        tty: p.tty,
        output_capacity: Some(EXEC_READ_CAPACITY),
    };
    let started = docker
        .start_exec(&exec_id, Some(start))
        .await
        .map_err(|e| classify(&e))?;
    let StartExecResults::Attached {
        mut output,
        input: stdin,
    } = started
    else {
        return Err(DockerError::new(
            ErrorCode::DockerError,
            "the exec started detached",
        ));
    };
    if let (true, Some(cols), Some(rows)) = (p.tty, p.cols, p.rows) {
        resize(&docker, &exec_id, cols, rows).await;
    }
    let feeder = tokio::spawn(feed(
        input,
        p.interactive.then_some(stdin),
        docker.clone(),
        exec_id.clone(),
        id,
        out.clone(),
    ));
    let _feeder = AbortOnDrop(feeder);
    while let Some(item) = output.next().await {
        let (stream, bytes) = match item {
            Ok(LogOutput::StdOut { message } | LogOutput::Console { message }) => {
                ("stdout", message)
            }
            Ok(LogOutput::StdErr { message }) => ("stderr", message),
            Ok(LogOutput::StdIn { .. }) => continue,
            Err(e) => return Err(classify(&e)),
        };
        if out.send(make_log_reply(id, stream, &bytes)).await.is_err() {
            return Ok(());
        }
    }
    let exit_code = exit_code(&docker, &exec_id).await?;
    let exit = ExecExit {
        exit_code,
        session: None,
    };
    let _ = out
        .send(Reply::result(
            id,
            serde_json::to_value(exit).unwrap_or_default(),
        ))
        .await;
    let _ = out.send(Reply::end(id)).await;
    Ok(())
}

fn create_options(p: &ExecRequest) -> CreateExecOptions<String> {
    CreateExecOptions {
        attach_stdin: Some(p.interactive),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        tty: Some(p.tty),
        env: (!p.env.is_empty()).then(|| p.env.clone()),
        cmd: Some(p.cmd.clone()),
        privileged: Some(p.privileged),
        user: p.user.clone(),
        working_dir: p.workdir.clone(),
        ..Default::default()
    }
}

/// The command's exit code, once the engine has it (output ends a moment
/// before the engine marks the exec finished).
async fn exit_code(docker: &Docker, exec_id: &str) -> Result<i64, DockerError> {
    let deadline = tokio::time::Instant::now() + EXEC_EXIT_WAIT;
    loop {
        let state = docker
            .inspect_exec(exec_id)
            .await
            .map_err(|e| classify(&e))?;
        match (state.running, state.exit_code) {
            (Some(false), Some(code)) => return Ok(code),
            _ if tokio::time::Instant::now() >= deadline => {
                return Err(DockerError::new(
                    ErrorCode::DockerError,
                    format!(
                    "the command's output ended but the engine reported no exit code within {}s",
                    EXEC_EXIT_WAIT.as_secs()
                ),
                ))
            }
            _ => tokio::time::sleep(EXEC_EXIT_POLL).await,
        }
    }
}

async fn resize(docker: &Docker, exec_id: &str, cols: u16, rows: u16) {
    let size = ResizeExecOptions {
        width: cols,
        height: rows,
    };
    if let Err(e) = docker.resize_exec(exec_id, size).await {
        tracing::debug!(error = %e, "exec resize refused");
    }
}

/// Write what the hub sends to the command's stdin (`None` without `-i`:
/// input is then dropped, resizes still applied), granting credit back for
/// each frame taken. Ends when the channel's input ends.
async fn feed(
    input: Option<mpsc::Receiver<ExecIn>>,
    mut stdin: Option<std::pin::Pin<Box<dyn AsyncWrite + Send>>>,
    docker: Docker,
    exec_id: String,
    id: Option<u64>,
    out: mpsc::Sender<Reply>,
) {
    let Some(mut input) = input else { return };
    while let Some(msg) = input.recv().await {
        let cost = msg.cost();
        match msg {
            ExecIn::Data(bytes) => {
                if let Some(w) = stdin.as_mut() {
                    let wrote = w.write_all(&bytes).await.and(w.flush().await);
                    if wrote.is_err() {
                        // The command closed its stdin: take input no more.
                        stdin = None;
                    }
                }
            }
            ExecIn::Eof => {
                if let Some(mut w) = stdin.take() {
                    let _ = w.shutdown().await;
                }
            }
            ExecIn::Resize(cols, rows) => resize(&docker, &exec_id, cols, rows).await,
        }
        let credit = InputCredit { bytes: cost };
        let reply = Reply::new(
            id,
            ReplyType::Credit,
            serde_json::to_value(credit).unwrap_or_default(),
        );
        if out.send(reply).await.is_err() {
            return;
        }
    }
}

/// Aborts the task when dropped (the exec's future was dropped or ended).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
