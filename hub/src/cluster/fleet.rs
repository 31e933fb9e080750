//! The fleet as one, whichever hub a client asks: `events` merges every
//! live hub's stream, `status` takes each agent's live snapshot from the
//! hub that holds it (the rest of a row, from the shared store, every hub
//! reads alike).

use std::collections::HashMap;

use futures_util::{SinkExt, StreamExt};
use nextdeploy_shared::protocol::streams::StatusRow;
use nextdeploy_shared::protocol::{ReplyType, Request};
use tokio_tungstenite::tungstenite::Message;
use tracing::debug;

use super::forward::{ask, connect, text};
use super::{Holder, View};
use crate::api::{Caller, ReplySink};
use crate::Services;

/// The other live hubs, as forwarding targets; none for a request another
/// hub forwarded here (that hub asks every hub itself).
fn others(svc: &Services, req: &Request) -> Vec<Holder> {
    let Some(c) = svc.config.cluster.as_ref().filter(|_| !req.local_only) else {
        return Vec::new();
    };
    let now = nextdeploy_shared::time::now_unix_ms();
    c.view()
        .hubs
        .iter()
        .filter(|h| h.id != c.me.id && View::alive(h, now))
        .map(|h| Holder {
            hub_id: h.id.clone(),
            ssh_address: h.ssh_address.clone(),
            api_url: h.api_url.clone(),
        })
        .collect()
}

/// The `event` replies of every other live hub for `req` (the client's
/// `events` request, its filters included), relayed to `out` while the
/// caller polls this (it ends with the client's local stream). A hub that
/// goes away takes its stream with it (its agents' events come from the
/// hubs they move to); a hub that joins later is asked when this hub's
/// view first shows it alive (within a heartbeat). Each hub is asked once
/// per request: a stream that broke is not asked again, which would replay
/// its `since` window twice. Returns at once when there is no cluster to
/// ask (not in one, or a request another hub forwarded here).
pub async fn events_elsewhere(svc: &Services, caller: &Caller, req: &Request, out: &ReplySink) {
    if svc.config.cluster.is_none() || req.local_only {
        return;
    }
    let mut asked = std::collections::HashSet::new();
    let mut streams = futures_util::stream::FuturesUnordered::new();
    let mut tick = tokio::time::interval(crate::limits::CLUSTER_HEARTBEAT);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                for h in others(svc, req) {
                    if asked.insert(h.hub_id.clone()) {
                        streams.push(events_from(svc, caller, req, h, out));
                    }
                }
            }
            Some(()) = streams.next(), if !streams.is_empty() => {}
        }
    }
}

async fn events_from(svc: &Services, caller: &Caller, req: &Request, h: Holder, out: &ReplySink) {
    let Some(c) = svc.config.cluster.as_ref() else {
        return;
    };
    let mut ws = match connect(svc, c, &h, &caller.token_id, true).await {
        Ok(ws) => ws,
        Err(e) => {
            debug!(hub = %h.hub_id, error = %e, "no events from another hub");
            return;
        }
    };
    if ws.send(text(req)).await.is_err() {
        return;
    }
    while let Some(Ok(m)) = ws.next().await {
        let Message::Text(t) = m else { continue };
        let Ok(r) = serde_json::from_str::<nextdeploy_shared::protocol::Reply>(t.as_str()) else {
            continue;
        };
        // Errors (a bad selector) reach the client once, from this hub.
        if r.kind == ReplyType::Event && out.send(r).await.is_err() {
            return;
        }
    }
}

/// Fill in the live part of `rows` (agents another hub holds) from their
/// hubs' own `status` answers.
pub async fn status_elsewhere(
    svc: &Services,
    caller: &Caller,
    req: &Request,
    rows: &mut [StatusRow],
) {
    let mine = svc.config.cluster.as_ref().map(|c| c.me.id.clone());
    let hubs: Vec<Holder> = others(svc, req)
        .into_iter()
        .filter(|h| rows.iter().any(|r| r.hub.as_ref() == Some(&h.hub_id)))
        .collect();
    if hubs.is_empty() || mine.is_none() {
        return;
    }
    let answers = hubs.iter().map(|h| ask(svc, caller, req.clone(), h));
    let mut live: HashMap<String, StatusRow> = HashMap::new();
    for (h, answer) in hubs
        .iter()
        .zip(futures_util::future::join_all(answers).await)
    {
        let Some(r) = answer.filter(|r| r.kind == ReplyType::Result) else {
            continue;
        };
        let theirs: Vec<StatusRow> = serde_json::from_value(r.data).unwrap_or_default();
        live.extend(
            theirs
                .into_iter()
                .filter(|t| t.hub.as_ref() == Some(&h.hub_id))
                .map(|t| (t.server.clone(), t)),
        );
    }
    for row in rows.iter_mut() {
        if let Some(t) = live.remove(&row.server) {
            *row = t;
        }
    }
}
