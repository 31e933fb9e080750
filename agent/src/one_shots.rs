//! One-shot requests the hub sends on the control channel (ping, info, ps,
//! ...; see `is_control_request`): each runs in its own task and sends its
//! single answer back to the control loop, which writes it. Dropped with the
//! connection, which aborts whatever still runs.

use std::collections::HashMap;
use std::sync::Arc;

use nextdeploy_shared::limits::MAX_STREAMS_PER_AGENT;
use nextdeploy_shared::protocol::{Action, ErrorCode, Reply, ReplyType};
use serde_json::Value;
use tokio::sync::mpsc;

use crate::limits::{CONTROL_ANSWER_QUEUE, HANDLER_QUEUE};
use crate::state::AgentState;

/// One-shot requests in flight on the control channel: each runs in its own
/// task and sends its single answer back to the control loop, which writes it.
pub struct OneShots {
    state: Arc<AgentState>,
    running: HashMap<u64, tokio::task::AbortHandle>,
    tasks: tokio::task::JoinSet<()>,
    tx: mpsc::Sender<Reply>,
    /// Answers ready for the control channel.
    pub answers: mpsc::Receiver<Reply>,
}

impl OneShots {
    /// No request running yet.
    pub fn new(state: Arc<AgentState>) -> Self {
        let (tx, answers) = mpsc::channel(CONTROL_ANSWER_QUEUE);
        OneShots {
            state,
            running: HashMap::new(),
            tasks: tokio::task::JoinSet::new(),
            tx,
            answers,
        }
    }

    /// Start request `id`; a refusal to send back at once if it cannot run.
    pub fn start(&mut self, id: u64, action: String, payload: Value) -> Option<Reply> {
        // Reap finished tasks so the set holds only what runs.
        while self.tasks.try_join_next().is_some() {}
        let one_shot = Action::parse(&action, payload.clone())
            .map(|a| a.is_control_request())
            // A payload that does not parse gets the handler's bad_request.
            .unwrap_or(true);
        if id == 0 || !one_shot {
            return Some(Reply::error(
                Some(id),
                ErrorCode::BadRequest,
                format!("{action:?} is not a one-shot request; it needs a channel of its own"),
            ));
        }
        if self.running.len() >= MAX_STREAMS_PER_AGENT || self.running.contains_key(&id) {
            return Some(Reply::error(
                Some(id),
                ErrorCode::Busy,
                "too many requests in flight on this agent",
            ));
        }
        let (state, tx) = (self.state.clone(), self.tx.clone());
        let handle = self.tasks.spawn(async move {
            let (out, mut replies) = mpsc::channel::<Reply>(HANDLER_QUEUE);
            let handler = tokio::spawn(crate::dispatch::handle(
                id, action, payload, state, out, None,
            ));
            let answer = loop {
                match replies.recv().await {
                    Some(r) if matches!(r.kind, ReplyType::Result | ReplyType::Error) => break r,
                    Some(_) => continue,
                    None => {
                        break Reply::error(
                            Some(id),
                            ErrorCode::AgentError,
                            "the handler ended without an answer",
                        )
                    }
                }
            };
            handler.abort();
            let _ = tx.send(answer).await;
        });
        self.running.insert(id, handle);
        None
    }

    /// The answer to `reply.id` is on its way: forget the task.
    pub fn answered(&mut self, reply: &Reply) {
        if let Some(id) = reply.id {
            self.running.remove(&id);
        }
    }

    /// The hub gave up on `id`.
    pub fn cancel(&mut self, id: u64) {
        if let Some(h) = self.running.remove(&id) {
            h.abort();
        }
    }
}

/// The frame of a one-shot answer on the control channel. An answer over the
/// frame limit (a huge inspect) becomes a `too_large` error for that request:
/// it must not end the connection.
pub fn encode_answer(reply: &Reply) -> Result<Vec<u8>, nextdeploy_shared::frame::FrameError> {
    nextdeploy_shared::frame::encode_reply(reply).or_else(|e| {
        nextdeploy_shared::frame::encode(&Reply::error(
            reply.id,
            ErrorCode::TooLarge,
            format!("reply too large: {e}"),
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docker::Engine;
    use serde_json::json;
    use std::time::Duration;

    fn one_shots() -> (OneShots, tempfile_dir::Dir) {
        let dir = tempfile_dir::Dir::new();
        let state = AgentState::new(
            Engine::new(None),
            Duration::from_secs(10),
            dir.0.join("deploys"),
            None,
            crate::policy::Policy::default(),
        );
        (OneShots::new(state), dir)
    }

    /// A scratch directory removed on drop (no extra dev-dependency).
    mod tempfile_dir {
        pub struct Dir(pub std::path::PathBuf);
        impl Dir {
            pub fn new() -> Dir {
                let p = std::env::temp_dir().join(format!(
                    "nd-agent-channel-{}-{:x}",
                    std::process::id(),
                    rand::random::<u64>()
                ));
                std::fs::create_dir_all(&p).unwrap();
                Dir(p)
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    #[tokio::test]
    async fn streams_and_id_zero_are_refused_on_the_control_channel() {
        let (mut s, _d) = one_shots();
        for (id, action, payload) in [
            (3, "logs", json!({"container": "x", "follow": true})),
            (4, "stats", json!({"stream": true})),
            (5, "deploy", json!({"image": "x:1"})),
            (0, "ping", json!({})),
        ] {
            let r = s.start(id, action.into(), payload).expect("a refusal");
            assert_eq!(r.id, Some(id));
            assert_eq!(r.kind, ReplyType::Error);
            assert_eq!(r.data["code"], "bad_request");
        }
        assert!(s.running.is_empty());
    }

    #[tokio::test]
    async fn a_ping_gets_one_result_with_its_id() {
        let (mut s, _d) = one_shots();
        assert!(s.start(7, "ping".into(), json!({})).is_none());
        let r = tokio::time::timeout(Duration::from_secs(5), s.answers.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!((r.id, r.kind), (Some(7), ReplyType::Result));
        assert!(r.data["agent_time_ms"].is_u64());
        s.answered(&r);
        assert!(s.running.is_empty());
        // The handler's `end` is not forwarded.
        assert!(
            tokio::time::timeout(Duration::from_millis(200), s.answers.recv())
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn a_repeated_id_is_refused_and_cancel_forgets_it() {
        let (mut s, _d) = one_shots();
        // The id stays taken until its answer went out or the hub cancelled it.
        assert!(s.start(9, "ping".into(), json!({})).is_none());
        let again = s.start(9, "ping".into(), json!({})).expect("refused");
        assert_eq!(again.data["code"], "busy");
        s.cancel(9);
        assert!(s.running.is_empty());
    }
}
