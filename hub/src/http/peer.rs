//! The upgrade of a link another hub of the cluster opened to forward its
//! client's request ([`crate::cluster::forward`]): its claim checked with
//! the cluster's key, then the client's token read from the store as at any
//! sign-in.

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use tracing::info;

use crate::api::{auth, Caller};
use crate::cluster::peer_auth::PEER_HEADER;
use crate::Services;

/// The caller a forwarding hub speaks for, with whether the link carries
/// one request only; None when the upgrade is not a hub's.
pub async fn caller(
    svc: &Services,
    headers: &HeaderMap,
) -> Option<Result<(Caller, bool), Response>> {
    let value = headers.get(PEER_HEADER)?;
    let refuse = |status: StatusCode, why: String| {
        info!(%why, "refused a hub-to-hub link");
        Some(Err((status, format!("{why}\n")).into_response()))
    };
    let Some(cluster) = svc.config.cluster.as_ref() else {
        return refuse(StatusCode::FORBIDDEN, "this hub is not in a cluster".into());
    };
    let now = nextdeploy_shared::time::now_unix_ms();
    let claim = match value.to_str().map(|v| cluster.peer_key.verify(v, now)) {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return refuse(StatusCode::UNAUTHORIZED, e.to_string()),
        Err(_) => {
            return refuse(
                StatusCode::UNAUTHORIZED,
                "malformed hub-to-hub claim".into(),
            )
        }
    };
    match auth::recheck(svc, &claim.token_id).await {
        Ok(mut c) => {
            c.forwarded_by = Some(claim.hub_id);
            Some(Ok((c, claim.once)))
        }
        Err(e) => refuse(
            StatusCode::UNAUTHORIZED,
            format!("the forwarded token: {e}"),
        ),
    }
}
