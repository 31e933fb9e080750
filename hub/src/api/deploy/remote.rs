//! A fleet deploy's server held by another hub of the cluster. Its deploy is
//! sent to that hub as a one-server deploy over the hub-to-hub link (the
//! holder records it in the shared store, checks the agent's policy and runs
//! it as its own, reconnects included), and its progress and outcome come
//! back into the fleet's batches as a local server's do: the hub the client
//! asked keeps the order, the canaries and the stop at the first failure.

use std::sync::Arc;

use nextdeploy_shared::labels::Labels;
use nextdeploy_shared::protocol::deploy::{DeployOutcome, DeployRequest, Outcome};
use nextdeploy_shared::protocol::{Action, ErrorBody, ErrorCode, Reply, ReplyType, Request};
use tokio::sync::{mpsc, oneshot};

use super::{finished_step, refused};
use crate::api::Caller;
use crate::cluster::Holder;
use crate::limits::PROGRESS_QUEUE;
use crate::Services;

/// A target of a fleet deploy that another hub holds.
#[derive(Debug, Clone)]
pub struct Held {
    /// The agent's name.
    pub name: String,
    /// Its labels (for the canary selector).
    pub labels: Labels,
    /// The hub holding it.
    pub holder: Holder,
}

/// Start `held`'s deploy on its hub; progress (tagged with its name) goes to
/// `progress`, the outcome to the returned receiver, as `super::start`'s.
pub(super) fn start(
    svc: &Arc<Services>,
    caller: &Caller,
    held: &Held,
    payload: &DeployRequest,
    (progress, announce_end): (mpsc::Sender<Reply>, bool),
) -> oneshot::Receiver<DeployOutcome> {
    let req = Request::new(1, Action::Deploy(payload.clone()), Some(&held.name), None);
    let (done_tx, done_rx) = oneshot::channel();
    let (sink, mut replies) = mpsc::channel::<Reply>(PROGRESS_QUEUE);
    let (svc, caller, held) = (svc.clone(), caller.clone(), held.clone());
    let holder = held.holder.clone();
    // The link's own failure (not a reply of the holder's), if it broke.
    let link = tokio::spawn(async move {
        crate::cluster::forward::stream(&svc, &caller, req, &holder, &sink, None).await
    });
    tokio::spawn(async move {
        let mut doc = None;
        while let Some(r) = replies.recv().await {
            match r.kind {
                ReplyType::Progress => {
                    let _ = progress.try_send(r.with_server(held.name.clone()));
                }
                ReplyType::Result => doc = Some(outcome(r)),
                ReplyType::Error if doc.is_none() => doc = Some(refused(r.data)),
                _ => {}
            }
        }
        let broke = link.await.ok().flatten();
        let mut doc = doc.unwrap_or_else(|| lost(&held, broke));
        doc.server = Some(held.name.clone());
        if announce_end {
            let _ = progress.send(finished_step(&doc)).await;
        }
        let _ = done_tx.send(doc);
    });
    done_rx
}

/// No outcome came back: the link to the holder broke (`broke`, its error)
/// or closed early. The holder (if alive) or the agent finishes the deploy
/// on its own and records it, so the outcome is `unknown`, not `failed`.
fn lost(held: &Held, broke: Option<Reply>) -> DeployOutcome {
    let why = broke
        .and_then(|r| serde_json::from_value::<ErrorBody>(r.data).ok())
        .map_or_else(|| "ended the link".to_string(), |e| e.message);
    DeployOutcome {
        outcome: Outcome::Unknown,
        ..DeployOutcome::failed(
            format!(
                "no outcome from hub {} holding agent {} ({why}); the deploy may still finish: \
                 nextdeploy deploys list --server {}",
                held.holder.hub_id, held.name, held.name
            ),
            Some(ErrorCode::AgentOffline),
        )
    }
}

/// The holder's `result`: the one server's outcome.
fn outcome(r: Reply) -> DeployOutcome {
    serde_json::from_value::<DeployOutcome>(r.data).unwrap_or_else(|e| {
        DeployOutcome::failed(
            format!("the holding hub's outcome is unreadable: {e}"),
            Some(ErrorCode::AgentError),
        )
    })
}
