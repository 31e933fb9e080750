//! Why a connection was cut (waiting or registered), and the key checked
//! again after the hello, so a revocation (or key rotation) that lands
//! between authentication and registration is not missed.

use tracing::{info, warn};

use super::session::SessionError;
use crate::agents::AgentConn;
use crate::store::{self, AgentRecord};
use crate::Services;

/// Why an unregistered connection was cut.
pub(super) fn cut_reason(svc: &Services) -> SessionError {
    if svc.cancel.is_cancelled() {
        SessionError::ShuttingDown
    } else {
        SessionError::Revoked
    }
}

/// The key checked again after the hello: it may have been revoked or
/// rotated since the connection authenticated.
pub(super) async fn still_enrolled(svc: &Services, rec: &AgentRecord) -> Result<(), SessionError> {
    let line = rec.public_key.clone();
    let now = store::blocking(&svc.store, move |s| s.agent_by_key(&line)).await;
    match now {
        Ok(Some(r)) if r.revoked_at.is_none() && r.name == rec.name => Ok(()),
        Ok(_) => {
            info!("key revoked or replaced after authentication; refusing the hello");
            Err(SessionError::Revoked)
        }
        Err(e) => {
            warn!(error = %e, "cannot check the key again; closing the connection");
            Err(SessionError::Store(e))
        }
    }
}

/// Why a registered connection's token was cancelled.
pub(super) fn cancel_reason(svc: &Services, conn: &AgentConn) -> &'static str {
    if svc.cancel.is_cancelled() {
        "hub shutting down"
    } else if svc
        .registry
        .get(&conn.name)
        .is_some_and(|c| c.conn_id != conn.conn_id)
    {
        info!("replaced by a newer connection with the same key");
        "replaced by a newer connection with the same key"
    } else if svc.config.cluster.as_ref().is_some_and(|c| c.is_cut_off()) {
        "this hub lost its store"
    } else {
        "revoked"
    }
}
