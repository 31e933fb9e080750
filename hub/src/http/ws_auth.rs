//! Who opens a WebSocket: a bearer token, the dashboard's session cookie
//! (from the hub's own origin only), or another hub of the cluster
//! ([`super::peer`]); and the refusal of one over its token's cap.

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::api::{auth, Caller};
use crate::http::signin;
use crate::Services;

/// The refusal of a connection over the token's cap.
pub(super) fn too_many(svc: &Services, caller: &Caller) -> Response {
    let max = svc.ws_connections.max();
    info!(token = %caller.name, max, "refused a WebSocket connection: the token is at its cap");
    (
        StatusCode::TOO_MANY_REQUESTS,
        format!(
            "too many connections: this token already holds {max} open WebSocket \
             connections (--max-connections-per-token); close one first\n"
        ),
    )
        .into_response()
}

/// The caller of an upgrade: by its bearer token, else by the dashboard's
/// session cookie (only from the hub's own origin; then also the session's
/// end, which closes the connection), or the refusal to answer.
pub(super) async fn authenticate(
    svc: &Services,
    headers: &HeaderMap,
) -> Result<(Caller, Option<CancellationToken>), Response> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    if bearer.is_none() && signin::session_id(headers).is_some() {
        // A page of another site can make the browser send the cookie on its
        // upgrade (WebSockets have no SameSite check of their own): only the
        // hub's own pages may use it.
        if !super::own_origin(headers, &svc.config) {
            info!(
                origin = super::origin_text(headers),
                "refused a session cookie on a WebSocket from a foreign origin"
            );
            return Err((
                StatusCode::FORBIDDEN,
                "a session cookie is accepted only from the hub's own origin\n",
            )
                .into_response());
        }
        return match signin::session_caller(svc, headers).await {
            Ok((caller, session)) => Ok((caller, Some(session.ended))),
            Err(refused) => Err(refused.into_response()),
        };
    }
    match auth::authenticate(svc, bearer).await {
        Ok(c) => Ok((c, None)),
        Err(auth::AuthError::Store(e)) => {
            Err((StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")).into_response())
        }
        Err(e) => Err((
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            format!("{e}\n"),
        )
            .into_response()),
    }
}
