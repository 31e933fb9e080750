//! The enrolment exchange: a new key with a join token. The hub opens the
//! enrol channel, takes the agent's join secret, consumes the token and tells
//! the agent its name or why not.

use std::sync::Arc;
use std::time::Duration;

use nextdeploy_shared::frame::Decoder;
use nextdeploy_shared::keys;
use nextdeploy_shared::protocol::{
    channel_kind, Downstream, EnrollAnswer, EnrollOpen, EnrollOutcome, ErrorBody, ErrorCode, Reply,
    ReplyType,
};
use nextdeploy_shared::time::now_unix;
use russh::keys::PublicKey;
use russh::server::{Handle, Msg};
use russh::{ChannelMsg, ChannelReadHalf, ChannelWriteHalf};
use serde_json::Value;
use tracing::{info, warn};

use super::session::{first_request, open_session, send, SessionError};
use crate::limits::{ENROLL_LINGER, ENROLL_TIMEOUT};
use crate::store::{self, AgentRecord, AuditEntry, JoinRefusal, StoreResult};
use crate::Services;

async fn open_channel(
    handle: &Handle,
    action: &str,
    payload: Value,
) -> Result<(ChannelReadHalf, ChannelWriteHalf<Msg>), SessionError> {
    let (read, write) = open_session(handle, action).await?.split();
    send(&write, &first_request(action, payload)).await?;
    Ok((read, write))
}

/// The next reply frame, or why there is none.
async fn next_reply(
    read: &mut ChannelReadHalf,
    decoder: &mut Decoder,
    within: Duration,
) -> Result<Reply, SessionError> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match decoder.next_message::<Reply>() {
            Ok(Some((reply, _))) => return Ok(reply),
            Ok(None) => {}
            Err(e) => return Err(e.into()),
        }
        match tokio::time::timeout_at(deadline, read.wait()).await {
            Err(_) => return Err(SessionError::Silent(within)),
            Ok(Some(ChannelMsg::Data { data })) => decoder.feed(&data),
            Ok(Some(ChannelMsg::Eof | ChannelMsg::Close) | None) => {
                return Err(SessionError::Closed)
            }
            Ok(Some(_)) => {}
        }
    }
}

/// Serve an enrolment: take the agent's join secret, consume the token, and
/// tell the agent its name or why not.
pub(super) async fn serve_enrolment(
    svc: &Arc<Services>,
    handle: &Handle,
    token_id: &str,
    key: &PublicKey,
) -> Result<String, SessionError> {
    let (mut read, write) = open_channel(
        handle,
        channel_kind::ENROLL,
        super::session::to_payload(EnrollOpen {
            token_id: token_id.to_string(),
        }),
    )
    .await?;
    let mut decoder = Decoder::new();
    let reply = next_reply(&mut read, &mut decoder, ENROLL_TIMEOUT).await?;
    let answer = read_answer(reply)?;
    let line = keys::public_line(key);
    let fingerprint = keys::fingerprint(key);
    let (id, fp) = (token_id.to_string(), fingerprint.clone());
    let secret = answer.secret;
    let result = store::blocking(&svc.store, move |s| {
        s.consume_join_token(&id, &secret, &line, &fp, now_unix())
    })
    .await;
    let (outcome, detail) = tell_outcome(result, &fingerprint, &answer.hostname);
    let entry = AuditEntry {
        at: now_unix(),
        actor: format!("join-token:{token_id}"),
        action: "enroll".into(),
        target: fingerprint,
        detail,
    };
    let _ = store::blocking(&svc.store, move |s| s.audit(&entry)).await;
    send(&write, &outcome).await?;
    // Give the agent a moment to read the outcome and hang up itself.
    let _ = tokio::time::timeout(ENROLL_LINGER, async {
        while let Some(m) = read.wait().await {
            if matches!(m, ChannelMsg::Close) {
                break;
            }
        }
    })
    .await;
    Ok("enrolment finished".into())
}

/// The agent's answer on the enrol channel: its join secret and hostname.
fn read_answer(reply: Reply) -> Result<EnrollAnswer, SessionError> {
    match reply.kind {
        ReplyType::Result => {
            serde_json::from_value(reply.data).map_err(|source| SessionError::Malformed {
                what: "enrolment answer",
                source,
            })
        }
        other => Err(SessionError::Unexpected {
            expected: "the enrolment answer",
            got: other,
        }),
    }
}

/// What to tell the agent about its enrolment, and the audit line's detail.
fn tell_outcome(
    result: StoreResult<Result<AgentRecord, JoinRefusal>>,
    fingerprint: &str,
    hostname: &str,
) -> (Downstream, String) {
    match result {
        Ok(Ok(rec)) => {
            info!(name = %rec.name, %fingerprint, %hostname, "agent enrolled");
            let data = serde_json::to_value(EnrollOutcome {
                name: rec.name.clone(),
                labels: rec.labels.clone(),
            })
            .unwrap_or(Value::Null);
            (
                Downstream::Outcome { ok: true, data },
                format!("enrolled {} ({fingerprint})", rec.name),
            )
        }
        Ok(Err(refusal)) => {
            info!(reason = %refusal, "enrolment refused");
            let body = ErrorBody {
                code: ErrorCode::Forbidden,
                message: refusal.to_string(),
            };
            (
                Downstream::Outcome {
                    ok: false,
                    data: serde_json::to_value(body).unwrap_or(Value::Null),
                },
                format!("refused: {refusal}"),
            )
        }
        Err(e) => {
            warn!(error = %e, "enrolment failed");
            let body = ErrorBody {
                code: ErrorCode::Internal,
                message: e.to_string(),
            };
            (
                Downstream::Outcome {
                    ok: false,
                    data: serde_json::to_value(body).unwrap_or(Value::Null),
                },
                format!("failed: {e}"),
            )
        }
    }
}
