//! Between authentication and registration: why a waiting connection was
//! cut, and the key checked again after the hello, so a revocation (or key
//! rotation) that lands in between is not missed.

use tracing::{info, warn};

use super::session::SessionError;
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
            warn!(error = %e, "cannot check the key again; refusing the hello");
            Err(SessionError::Revoked)
        }
    }
}
