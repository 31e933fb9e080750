//! Used and expired join tokens are deleted once [`JOIN_TOKEN_RETENTION`]
//! has passed, at start and every [`JOIN_TOKEN_PRUNE_EVERY`]: a token that
//! can enrol nothing only tells an admin why an install failed, for a while.
//! The audit log keeps every enrolment.

use std::sync::Arc;

use nextdeploy_shared::time::now_unix;
use tracing::{debug, info, warn};

use crate::limits::{JOIN_TOKEN_PRUNE_EVERY, JOIN_TOKEN_RETENTION};
use crate::store::{self, JoinTokenRecord};
use crate::Services;

/// Whether `t` is used or expired since before `cutoff`.
pub fn stale(t: &JoinTokenRecord, cutoff: i64) -> bool {
    t.used_at.is_some_and(|u| u < cutoff) || t.expires_at < cutoff
}

/// Delete the join tokens past retention; how many went.
pub async fn prune_once(svc: &Services) -> usize {
    let cutoff = now_unix() - JOIN_TOKEN_RETENTION.as_secs() as i64;
    let pruned = store::blocking(&svc.store, move |s| {
        let mut n = 0;
        for t in s.list_join_tokens()? {
            if stale(&t, cutoff) && s.delete_join_token(&t.id)? {
                n += 1;
            }
        }
        Ok(n)
    })
    .await;
    match &pruned {
        Ok(0) => debug!("no join token past retention"),
        Ok(n) => info!(
            pruned = *n,
            "deleted used or expired join tokens past retention"
        ),
        Err(e) => warn!(error = %e, "cannot prune join tokens"),
    }
    pruned.unwrap_or(0)
}

/// Prune now and every [`JOIN_TOKEN_PRUNE_EVERY`] until shutdown.
pub async fn run(svc: Arc<Services>) {
    loop {
        prune_once(&svc).await;
        tokio::select! {
            _ = tokio::time::sleep(JOIN_TOKEN_PRUNE_EVERY) => {}
            _ = svc.cancel.cancelled() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(expires_at: i64, used_at: Option<i64>) -> JoinTokenRecord {
        JoinTokenRecord {
            id: "t".into(),
            secret_hash: String::new(),
            name: "n".into(),
            labels: Default::default(),
            created_at: 0,
            expires_at,
            used_at,
            created_by: "admin".into(),
        }
    }

    #[test]
    fn only_tokens_used_or_expired_before_the_cutoff_are_stale() {
        assert!(stale(&token(50, None), 100));
        assert!(stale(&token(500, Some(50)), 100));
        assert!(!stale(&token(500, None), 100));
        assert!(!stale(&token(500, Some(150)), 100));
        assert!(!stale(&token(150, None), 100));
    }
}
