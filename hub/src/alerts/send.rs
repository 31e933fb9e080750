//! The sender: takes due notifications from the store's outbox, sends each
//! to its channel (an HTTP POST, or an email) and logs the attempt; a failure is retried with
//! exponential backoff until [`DELIVERY_DEADLINE`]. A notification is marked
//! delivered only after the receiver answered 2xx, so a hub killed between
//! the two sends it again after its restart (receivers dedupe on `id`);
//! nothing queued is lost.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use nextdeploy_shared::protocol::alerts::ChannelKind;
use nextdeploy_shared::time::now_unix;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::http::Poster;
use super::{channels, email};
use crate::limits::{
    DELIVERY_BATCH, DELIVERY_DEADLINE, DELIVERY_FIRST_BACKOFF, DELIVERY_MAX_BACKOFF, DELIVERY_POLL,
};
use crate::store::alert_state::{Attempt, Due, Next};
use crate::store::alerts::ChannelRecord;
use crate::store::{self, SharedStore};

/// The wait after the `attempts`-th failed attempt: 1 s, 2 s, 4 s, ... up
/// to [`DELIVERY_MAX_BACKOFF`].
pub fn backoff(attempts: u32) -> Duration {
    let first = DELIVERY_FIRST_BACKOFF.as_secs().max(1);
    let secs = first.saturating_mul(1u64 << attempts.min(20));
    Duration::from_secs(secs.min(DELIVERY_MAX_BACKOFF.as_secs()))
}

/// What comes after an attempt that ended with `ok` at `now`.
pub fn next(ok: bool, d: &Due, now: i64) -> Next {
    if ok {
        return Next::Delivered;
    }
    let at = now + backoff(d.attempts).as_secs() as i64;
    if at > d.created_at + DELIVERY_DEADLINE.as_secs() as i64 {
        Next::Failed
    } else {
        Next::RetryAt(at)
    }
}

/// Send `body` (a webhook body) to `ch` once, in its kind's shape: the
/// receiver's answer (HTTP status, or SMTP reply code), or why none.
pub async fn deliver(poster: &Poster, ch: &ChannelRecord, body: &str) -> Result<u16, String> {
    if ch.kind == ChannelKind::Email {
        return email::send(ch, &channels::Note::parse(body)?).await;
    }
    let req = channels::request(ch, body)?;
    poster
        .post(&req.url, &req.headers, req.body)
        .await
        .map_err(|e| e.to_string())
}

/// One attempt at `d`, logged; false when the store could not be read or
/// written (the caller then waits before the outbox is read again).
async fn attempt(store: &SharedStore, poster: &Poster, d: Due) -> bool {
    let name = d.channel.clone();
    let ch = store::blocking(store, move |s| s.alert_channel(&name)).await;
    let now = now_unix();
    let (status, error, next) = match ch {
        Ok(Some(ch)) => match deliver(poster, &ch, &d.body).await {
            Ok(code) if (200..300).contains(&code) => (Some(code), None, Next::Delivered),
            Ok(code) => (
                Some(code),
                Some(format!("HTTP {code}")),
                next(false, &d, now),
            ),
            Err(e) => (None, Some(e), next(false, &d, now)),
        },
        Ok(None) => (None, Some("the channel was removed".into()), Next::Failed),
        Err(e) => {
            warn!(error = %e, "reading an alert channel failed");
            return false;
        }
    };
    match &next {
        Next::Delivered => debug!(id = %d.id, channel = %d.channel, "notification delivered"),
        _ => {
            warn!(id = %d.id, channel = %d.channel, ?status, ?error, ?next, "notification not delivered")
        }
    }
    let a = Attempt {
        id: d.id,
        at: now,
        status,
        error,
        next,
    };
    match store::blocking(store, move |s| s.record_attempt(&a)).await {
        Ok(()) => true,
        Err(e) => {
            warn!(error = %e, "logging a delivery attempt failed");
            false
        }
    }
}

/// Run the sender until `cancel`; `wake` says a notification was queued.
pub async fn run(
    store: SharedStore,
    poster: Arc<Poster>,
    wake: Arc<Notify>,
    cancel: CancellationToken,
) {
    loop {
        let due =
            store::blocking(&store, |s| s.due_notifications(now_unix(), DELIVERY_BATCH)).await;
        let due = due.unwrap_or_else(|e| {
            warn!(error = %e, "reading the alert outbox failed");
            Vec::new()
        });
        if due.is_empty() {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = wake.notified() => {}
                _ = tokio::time::sleep(DELIVERY_POLL) => {}
            }
            continue;
        }
        let round = join_all(due.into_iter().map(|d| attempt(&store, &poster, d)));
        let all_logged = tokio::select! {
            _ = cancel.cancelled() => return,
            done = round => done.into_iter().all(|ok| ok),
        };
        // A store that failed would hand the same notifications back at
        // once: wait, rather than post them again in a tight loop.
        if !all_logged {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(DELIVERY_POLL) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap_and_stops_at_the_deadline() {
        assert_eq!(backoff(0), Duration::from_secs(1));
        assert_eq!(backoff(3), Duration::from_secs(8));
        assert_eq!(backoff(40), DELIVERY_MAX_BACKOFF);
        let d = Due {
            id: "n".into(),
            channel: "ops".into(),
            body: "{}".into(),
            created_at: 0,
            attempts: 2,
        };
        assert_eq!(next(false, &d, 10), Next::RetryAt(14));
        assert_eq!(next(true, &d, 10), Next::Delivered);
        let late = DELIVERY_DEADLINE.as_secs() as i64;
        assert_eq!(next(false, &d, late), Next::Failed);
    }
}
