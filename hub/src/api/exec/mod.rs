//! `exec` at the hub: check who may, open an exec channel on the agent,
//! relay output to the client and the client's input to the agent within
//! the agent's input credit, record TTY sessions ([`record`]) and keep every
//! session in the store and the audit log ([`sessions`] answers for them).
//!
//! Input reaches a running exec through the connection's reader
//! (`http/ws.rs`): `exec_input` and `exec_resize` messages go into the
//! exec's bounded queue ([`ExecInputs`]); when it is full the reader waits,
//! so a client piping a gigabyte is held back by the command's pace.

pub mod input;
pub mod record;
pub mod sessions;

use std::sync::Arc;

use nextdeploy_shared::limits::{exec_input_cost, EXEC_INPUT_WINDOW};
use nextdeploy_shared::protocol::exec::{ExecExit, ExecRequest, InputCredit};
use nextdeploy_shared::protocol::{feature, Downstream, ErrorCode, Reply, ReplyType, Request};
use nextdeploy_shared::time::now_unix;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::route::{self, Target};
use super::{ApiError, Caller, ReplySink};
use crate::agents::stream::ReplyStream;
use crate::agents::AgentConn;
use crate::store::exec::{NewSession, SessionEnd};
use crate::store::{self, Role};
use crate::Services;
use record::Recorder;

/// What a client sends a running exec.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientInput {
    /// Bytes for stdin (at most `EXEC_INPUT_CHUNK`).
    Data(Vec<u8>),
    /// Close stdin.
    Eof,
    /// The terminal's new size: columns, rows.
    Resize(u16, u16),
}

impl ClientInput {
    fn cost(&self) -> u32 {
        match self {
            ClientInput::Data(b) => exec_input_cost(b.len()),
            _ => exec_input_cost(0),
        }
    }

    fn frame(&self) -> Downstream {
        use base64::Engine as _;
        match self {
            ClientInput::Data(b) => Downstream::Input {
                b64: base64::engine::general_purpose::STANDARD.encode(b),
                eof: false,
            },
            ClientInput::Eof => Downstream::Input {
                b64: String::new(),
                eof: true,
            },
            ClientInput::Resize(cols, rows) => Downstream::Resize {
                cols: *cols,
                rows: *rows,
            },
        }
    }
}

/// The running execs of one connection, by request id, with whether each
/// takes input.
pub type ExecInputs =
    Arc<std::sync::Mutex<std::collections::HashMap<u64, (bool, mpsc::Sender<ClientInput>)>>>;

/// Run one `exec` to its end; the replies go to `out`.
pub async fn exec(
    svc: Arc<Services>,
    caller: Arc<Caller>,
    req: Request,
    p: ExecRequest,
    input: mpsc::Receiver<ClientInput>,
    out: ReplySink,
    cancel: CancellationToken,
) {
    let id = req.id;
    let agent = match admit(&svc, &caller, &req, &p).await {
        Ok(a) => a,
        Err(e) => {
            let _ = out.send(e.reply(id)).await;
            return;
        }
    };
    let stream = match ReplyStream::open(&agent, caller.role, id, "exec", req.payload.clone()).await
    {
        Ok(s) => s,
        Err(e) => {
            let _ = out
                .send(Reply::error(Some(id), e.code(), e.to_string()))
                .await;
            return;
        }
    };
    let session = start_session(&svc, &caller, &agent.name, &p).await;
    let recorder = (p.tty && svc.config.exec_recording.enabled).then(|| {
        let size = (p.cols.unwrap_or(80), p.rows.unwrap_or(24));
        Recorder::new(
            svc.store.clone(),
            &session.id,
            &svc.config.exec_recording,
            size,
            &session.command,
        )
    });
    let mut relay = Relay {
        id,
        stream,
        out: &out,
        recorder,
        end: SessionEnd::default(),
        session: session.id.clone(),
    };
    relay.run(input, &cancel).await;
    finish_session(&svc, &caller, session, relay).await;
}

/// Who may exec where: operators and admins (checked before), with a token
/// that was not made without exec, `privileged` for admins only, on one
/// online agent that knows exec.
async fn admit(
    svc: &Services,
    caller: &Caller,
    req: &Request,
    p: &ExecRequest,
) -> Result<Arc<AgentConn>, ApiError> {
    if !caller.exec {
        return Err(ApiError::Denied(
            "this token was created without exec (--no-exec)".into(),
        ));
    }
    if p.privileged && caller.role < Role::Admin {
        return Err(ApiError::Forbidden {
            action: "exec --privileged".into(),
            needed: Role::Admin.as_str(),
            have: caller.role.as_str(),
        });
    }
    if p.cmd.first().is_none_or(|c| c.is_empty()) {
        return Err(ApiError::BadRequest(
            "payload.cmd: name the command to run".into(),
        ));
    }
    let agent = match route::resolve(svc, req).await?.pop() {
        Some(Target::Online(a)) => a,
        Some(Target::Offline { message, .. }) => return Err(ApiError::AgentOffline(message)),
        Some(Target::Remote { name, .. }) => {
            return Err(ApiError::AgentOffline(format!(
                "agent {name} moved to another hub: retry"
            )))
        }
        None => return Err(ApiError::UnknownAgent("no such agent".into())),
    };
    let action = nextdeploy_shared::protocol::Action::Exec(p.clone());
    if let Some(m) = super::policy::refusal(svc, &agent, &action) {
        return Err(ApiError::ForbiddenByPolicy(m));
    }
    if !agent.hello.supports(feature::EXEC) {
        return Err(ApiError::BadRequest(format!(
            "agent {} (version {}) does not support exec; upgrade it",
            agent.name, agent.hello.version
        )));
    }
    Ok(agent)
}

async fn start_session(
    svc: &Services,
    caller: &Caller,
    server: &str,
    p: &ExecRequest,
) -> NewSession {
    let session = NewSession {
        id: nextdeploy_shared::token::new_id(),
        actor: caller.name.clone(),
        token_id: caller.token_id.clone(),
        server: server.to_string(),
        container: p.container.clone(),
        command: p.command_line(),
        tty: p.tty,
        started: now_unix(),
    };
    let s = session.clone();
    if let Err(e) = store::blocking(&svc.store, move |st| st.insert_exec_session(&s)).await {
        tracing::warn!(error = %e, "exec session not recorded");
    }
    session
}

async fn finish_session(
    svc: &Services,
    caller: &Caller,
    session: NewSession,
    mut relay: Relay<'_>,
) {
    if let Some(r) = relay.recorder.as_mut() {
        r.flush().await;
        relay.end.truncated = r.truncated;
    }
    relay.end.ended = now_unix();
    let end = relay.end.clone();
    let id = session.id.clone();
    let total = svc.config.exec_recording.total_bytes;
    let write = move |s: &dyn store::Store| {
        s.finish_exec_session(&id, &end)?;
        s.prune_recordings(total)
    };
    if let Err(e) = store::blocking(&svc.store, write).await {
        tracing::warn!(error = %e, "exec session end not recorded");
    }
    let e = &relay.end;
    let outcome = match (&e.exit_code, &e.error) {
        (Some(code), _) => format!("exit {code}"),
        (None, Some(err)) => format!("error: {err}"),
        (None, None) => "ended".into(),
    };
    let detail = format!(
        "session {} container {} tty {} command {:?}: {outcome}; {} bytes in, {} out, {}s",
        session.id,
        session.container,
        session.tty,
        session.command,
        e.bytes_in,
        e.bytes_out,
        e.ended - session.started
    );
    super::admin::audit(svc, caller, "exec", &session.server, &detail).await;
}

/// One exec's relay between the agent's stream and the client.
struct Relay<'a> {
    id: u64,
    stream: ReplyStream,
    out: &'a ReplySink,
    recorder: Option<Recorder>,
    end: SessionEnd,
    session: String,
}

impl Relay<'_> {
    async fn run(&mut self, mut input: mpsc::Receiver<ClientInput>, cancel: &CancellationToken) {
        let mut credit = EXEC_INPUT_WINDOW;
        let mut pending: Option<ClientInput> = None;
        let mut input_open = true;
        loop {
            if let Some(p) = pending.take_if(|p| p.cost() <= credit) {
                credit -= p.cost();
                if !self.send_input(&p).await {
                    self.end.error = Some("the agent's channel closed".into());
                    return;
                }
            }
            tokio::select! {
                r = self.stream.next() => match r {
                    Some(Ok(reply)) => match self.reply(reply, &mut credit).await {
                        true => continue,
                        false => return,
                    },
                    Some(Err(e)) => {
                        self.end.error = Some(e.to_string());
                        let _ = self.out.send(Reply::error(Some(self.id), e.code(), e.to_string())).await;
                        return;
                    }
                    None => return,
                },
                m = input.recv(), if pending.is_none() && input_open => match m {
                    Some(m) => pending = Some(m),
                    None => input_open = false,
                },
                _ = cancel.cancelled() => {
                    self.end.error = Some("cancelled".into());
                    let _ = self.out.send(Reply::error(Some(self.id), ErrorCode::Cancelled, "cancelled")).await;
                    return;
                }
            }
        }
    }

    async fn send_input(&mut self, m: &ClientInput) -> bool {
        match m {
            ClientInput::Data(b) => {
                self.end.bytes_in += b.len() as u64;
                if let Some(r) = self.recorder.as_mut() {
                    r.input(b);
                }
            }
            ClientInput::Resize(c, r) => {
                if let Some(rec) = self.recorder.as_mut() {
                    rec.resize(*c, *r);
                }
            }
            ClientInput::Eof => {}
        }
        self.stream.send_down(&m.frame()).await.is_ok()
    }

    /// Handle one reply of the agent; `false` once the exec is over.
    async fn reply(&mut self, mut reply: Reply, credit: &mut u32) -> bool {
        match reply.kind {
            ReplyType::Credit => {
                let granted = serde_json::from_value::<InputCredit>(reply.data).unwrap_or_default();
                *credit = credit.saturating_add(granted.bytes).min(EXEC_INPUT_WINDOW);
                return true;
            }
            ReplyType::Log => self.output(&reply).await,
            ReplyType::Result => {
                let mut exit =
                    serde_json::from_value::<ExecExit>(reply.data.clone()).unwrap_or_default();
                self.end.exit_code = Some(exit.exit_code);
                exit.session = Some(self.session.clone());
                reply.data = serde_json::to_value(exit).unwrap_or_default();
            }
            ReplyType::Error => {
                self.end.error = Some(
                    reply.data["message"]
                        .as_str()
                        .unwrap_or("error")
                        .to_string(),
                );
            }
            _ => {}
        }
        let done = reply.kind.is_terminal();
        self.out.send(reply).await.is_ok() && !done
    }

    async fn output(&mut self, reply: &Reply) {
        let bytes = log_bytes(reply);
        self.end.bytes_out += bytes.len() as u64;
        if let Some(r) = self.recorder.as_mut() {
            r.output(&bytes);
            r.flush_if_due().await;
        }
    }
}

/// The bytes a `log` reply carries (`text` or `b64`).
fn log_bytes(reply: &Reply) -> Vec<u8> {
    use base64::Engine as _;
    #[derive(serde::Deserialize)]
    struct Chunk {
        text: Option<String>,
        b64: Option<String>,
    }
    let parsed: Option<Chunk> = match &reply.raw_data {
        Some(raw) => serde_json::from_str(raw.text()).ok(),
        None => serde_json::from_value(reply.data.clone()).ok(),
    };
    match parsed {
        Some(Chunk { text: Some(t), .. }) => t.into_bytes(),
        Some(Chunk { b64: Some(b), .. }) => base64::engine::general_purpose::STANDARD
            .decode(b)
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}
