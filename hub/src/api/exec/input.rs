//! A client's `exec_input` and `exec_resize`, read by the connection's
//! reader and queued for the exec they name. What does not fit the exec's
//! queue waits in a [`Stalled`] batch, and the reader takes no new message
//! until the command has taken it (the reader still watches the token's
//! end and the connection's).

use std::collections::VecDeque;

use base64::Engine as _;
use nextdeploy_shared::limits::EXEC_INPUT_CHUNK;
use nextdeploy_shared::protocol::exec::{ExecInput, ExecResize};
use tokio::sync::mpsc;

use super::{ClientInput, ExecInputs};
use crate::api::ApiError;
use crate::sync::lock_or_recover;

/// Input for one exec that is waiting for room in its queue.
pub struct Stalled {
    /// The exec's queue.
    pub tx: mpsc::Sender<ClientInput>,
    /// What is left to queue, in order.
    pub left: VecDeque<ClientInput>,
}

impl Stalled {
    /// Room for one message came (`permit`), or the exec ended (`None`):
    /// queue the next and what else fits.
    pub fn room(mut self, permit: Option<mpsc::OwnedPermit<ClientInput>>) -> Option<Stalled> {
        let permit = permit?;
        if let Some(m) = self.left.pop_front() {
            permit.send(m);
        }
        self.push()
    }

    /// Queue what fits now; `None` when all of it went (or the exec ended).
    pub fn push(mut self) -> Option<Stalled> {
        while let Some(m) = self.left.pop_front() {
            match self.tx.try_send(m) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(m)) => {
                    self.left.push_front(m);
                    return Some(self);
                }
                Err(mpsc::error::TrySendError::Closed(_)) => return None,
            }
        }
        None
    }
}

fn exec_of(
    execs: &ExecInputs,
    id: u64,
    needs_stdin: bool,
) -> Result<mpsc::Sender<ClientInput>, ApiError> {
    match lock_or_recover(execs).get(&id) {
        None => Err(ApiError::NotFound(format!(
            "no exec with request id {id} is running on this connection"
        ))),
        Some((false, _)) if needs_stdin => Err(ApiError::BadRequest(format!(
            "exec {id} was started without interactive: it takes no input"
        ))),
        Some((_, tx)) => Ok(tx.clone()),
    }
}

/// `exec_input`: its bytes in pieces of at most `EXEC_INPUT_CHUNK`, then
/// end-of-file if asked.
pub fn input(execs: &ExecInputs, p: ExecInput) -> Result<Stalled, ApiError> {
    let tx = exec_of(execs, p.exec_id, true)?;
    let bytes = match (p.data, p.b64) {
        (Some(_), Some(_)) => {
            return Err(ApiError::BadRequest(
                "give payload.data or payload.b64, not both".into(),
            ))
        }
        (Some(t), None) => t.into_bytes(),
        (None, Some(b)) => base64::engine::general_purpose::STANDARD
            .decode(b.as_bytes())
            .map_err(|e| ApiError::BadRequest(format!("payload.b64: {e}")))?,
        (None, None) => Vec::new(),
    };
    let mut left: VecDeque<ClientInput> = bytes
        .chunks(EXEC_INPUT_CHUNK)
        .map(|c| ClientInput::Data(c.to_vec()))
        .collect();
    if p.eof {
        left.push_back(ClientInput::Eof);
    }
    Ok(Stalled { tx, left })
}

/// `exec_resize`.
pub fn resize(execs: &ExecInputs, p: ExecResize) -> Result<Stalled, ApiError> {
    if p.cols == 0 || p.rows == 0 {
        return Err(ApiError::BadRequest(
            "payload.cols and payload.rows must be at least 1".into(),
        ));
    }
    let tx = exec_of(execs, p.exec_id, false)?;
    Ok(Stalled {
        tx,
        left: VecDeque::from([ClientInput::Resize(p.cols, p.rows)]),
    })
}
