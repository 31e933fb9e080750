//! `/api/session`: the dashboard's sign-in. `POST` exchanges an API token
//! (checked like a bearer token) for a session cookie, `GET` says who the
//! cookie signs in, `DELETE` signs out. The cookie is `HttpOnly` (no script
//! reads it), `Secure`, `SameSite=Strict` and `__Host-` prefixed (this host
//! only, path `/`). Requests that change state must come from the hub's own
//! origin with a JSON body type, which a cross-site form cannot send.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::session::{self, Session};
use crate::api::auth::{self, AuthError, Caller};
use crate::limits::{MAX_SESSIONS, SESSIONS_KEPT_ENDED};
use crate::serve::initial_token;
use crate::Services;

/// The session cookie's name. `__Host-`: browsers keep it only when set
/// `Secure`, with `Path=/` and no `Domain`, so no other host can plant one.
pub const COOKIE: &str = "__Host-nd_session";

/// `POST /api/session` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignIn {
    /// An API token, `nda_<id>_<secret>`.
    token: String,
}

/// The session id the request's cookies carry, if any.
pub fn session_id(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.trim())
}

/// Why a cookie does not sign a request in.
pub enum Refusal {
    /// No session cookie, or not a live session: 401.
    NoSession,
    /// The session's token is no longer valid (the session ended with it): 401.
    Token(AuthError),
    /// The store failed: 503.
    Store(AuthError),
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let (status, text) = match self {
            Refusal::NoSession => (StatusCode::UNAUTHORIZED, "not signed in".to_string()),
            Refusal::Token(e) => (StatusCode::UNAUTHORIZED, e.to_string()),
            Refusal::Store(e) => (StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
        };
        (status, no_store(), format!("{text}\n")).into_response()
    }
}

/// The caller and session the request's cookie stands for, its token checked
/// again in the store; a session whose token was revoked or expired ends.
pub async fn session_caller(
    svc: &Services,
    headers: &HeaderMap,
) -> Result<(Caller, Session), Refusal> {
    let id = session_id(headers).ok_or(Refusal::NoSession)?;
    let session = match svc.sessions.get(id) {
        Some(s) => s,
        None => from_store(svc, id).await?,
    };
    match auth::recheck(svc, &session.token_id).await {
        Ok(mut caller) => {
            // The connection also ends when the session does.
            let session_end = nextdeploy_shared::time::now_unix()
                .saturating_add(session.time_left().as_secs() as i64);
            caller.expires_at = Some(
                caller
                    .expires_at
                    .map_or(session_end, |t| t.min(session_end)),
            );
            Ok((caller, session))
        }
        Err(e @ AuthError::Store(_)) => Err(Refusal::Store(e)),
        Err(e) => {
            svc.sessions.close_token(&session.token_id);
            Err(Refusal::Token(e))
        }
    }
}

/// A session this hub does not hold, from the store (opened on another hub
/// of the cluster, or before this hub restarted).
async fn from_store(svc: &Services, id: &str) -> Result<Session, Refusal> {
    let hash = session::hash_hex(id);
    let now = nextdeploy_shared::time::now_unix();
    let row = crate::store::blocking(&svc.store, move |s| s.live_session(&hash, now))
        .await
        .map_err(|e| Refusal::Store(AuthError::Store(e)))?
        .ok_or(Refusal::NoSession)?;
    svc.sessions
        .adopt(id, &row.token_id, row.expires_at)
        .ok_or(Refusal::NoSession)
}

/// Keep a new session in the store for the other hubs; a store that fails
/// leaves it signed in on this hub only.
async fn keep(svc: &Services, id: &str, token_id: &str, left: std::time::Duration) {
    let now = nextdeploy_shared::time::now_unix();
    let row = crate::store::sessions::SessionRow {
        hash: session::hash_hex(id),
        token_id: token_id.to_string(),
        opened_at: now,
        expires_at: now + left.as_secs() as i64,
    };
    let forget = now - SESSIONS_KEPT_ENDED.as_secs() as i64;
    if let Err(e) = crate::store::blocking(&svc.store, move |s| s.put_session(&row, forget)).await {
        tracing::warn!(error = %e, "dashboard session not stored: it holds on this hub only");
    }
}

/// Whether a state-changing request may have been sent by another site: it
/// must carry the hub's own Origin and a JSON content type (a cross-site
/// `<form>` can send neither; a cross-site `fetch` with JSON is preflighted
/// and refused by the browser, as the hub allows no other origin).
fn cross_site(svc: &Services, headers: &HeaderMap) -> Option<Response> {
    if !super::own_origin(headers, &svc.config) {
        tracing::info!(
            origin = super::origin_text(headers),
            "refused a cross-site session request"
        );
        return Some(
            (
                StatusCode::FORBIDDEN,
                "cross-site request refused: Origin must be this hub's own\n",
            )
                .into_response(),
        );
    }
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    (!json).then(|| {
        (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Type must be application/json\n",
        )
            .into_response()
    })
}

fn no_store() -> [(header::HeaderName, HeaderValue); 1] {
    [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))]
}

fn cookie(value: &str, max_age_s: u64) -> String {
    format!("{COOKIE}={value}; Path=/; Max-Age={max_age_s}; HttpOnly; Secure; SameSite=Strict")
}

/// `POST /api/session`: a token for a session cookie.
pub async fn sign_in(
    State(svc): State<Arc<Services>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(refused) = cross_site(&svc, &headers) {
        return refused;
    }
    let Ok(req) = serde_json::from_slice::<SignIn>(&body) else {
        return (StatusCode::BAD_REQUEST, "expected {\"token\": \"...\"}\n").into_response();
    };
    let caller = match auth::authenticate(&svc, Some(req.token.trim())).await {
        Ok(c) => c,
        Err(e @ AuthError::Store(_)) => return Refusal::Store(e).into_response(),
        Err(e) => return Refusal::Token(e).into_response(),
    };
    initial_token::retire_on_first_use(&svc.config.data_dir, &caller.token_id, &caller.name);
    let Some((id, session)) = svc.sessions.open(&caller.token_id) else {
        let msg = format!("the hub holds {MAX_SESSIONS} dashboard sessions; try again later\n");
        return (StatusCode::TOO_MANY_REQUESTS, msg).into_response();
    };
    keep(&svc, &id, &caller.token_id, session.time_left()).await;
    tracing::info!(token = %caller.name, role = caller.role.as_str(), "dashboard sign-in");
    let max_age = session.time_left().as_secs();
    let set = HeaderValue::from_str(&cookie(&id, max_age));
    match set {
        Ok(set) => (
            StatusCode::NO_CONTENT,
            no_store(),
            [(header::SET_COOKIE, set)],
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// `DELETE /api/session`: sign out; the session's WebSockets close.
pub async fn sign_out(State(svc): State<Arc<Services>>, headers: HeaderMap) -> Response {
    if let Some(refused) = cross_site(&svc, &headers) {
        return refused;
    }
    if let Some(id) = session_id(&headers) {
        let (hash, now) = (session::hash_hex(id), nextdeploy_shared::time::now_unix());
        let ended = crate::store::blocking(&svc.store, move |s| s.end_session(&hash, now)).await;
        if svc.sessions.close(id) || matches!(ended, Ok(true)) {
            tracing::info!("dashboard sign-out");
        }
    }
    let clear = HeaderValue::from_str(&cookie("", 0));
    match clear {
        Ok(clear) => (
            StatusCode::NO_CONTENT,
            no_store(),
            [(header::SET_COOKIE, clear)],
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// `GET /api/session`: who the cookie signs in, or 401.
pub async fn current(State(svc): State<Arc<Services>>, headers: HeaderMap) -> Response {
    match session_caller(&svc, &headers).await {
        Ok((caller, _)) => (
            no_store(),
            Json(json!({
                "id": caller.token_id,
                "name": caller.name,
                "role": caller.role.as_str(),
            })),
        )
            .into_response(),
        Err(r) => r.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        assert!(session_id(&h).is_none());
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; nd_session=x"),
        );
        assert!(
            session_id(&h).is_none(),
            "a cookie without the prefix counted"
        );
        h.append(
            header::COOKIE,
            HeaderValue::from_static("b=2;  __Host-nd_session=abc ; c=3"),
        );
        assert_eq!(session_id(&h), Some("abc"));
    }

    #[test]
    fn the_cookie_has_every_attribute() {
        let c = cookie("v", 60);
        for attr in [
            "HttpOnly",
            "Secure",
            "SameSite=Strict",
            "Path=/",
            "Max-Age=60",
        ] {
            assert!(c.split("; ").any(|a| a == attr), "{attr} missing: {c}");
        }
        assert!(c.starts_with("__Host-nd_session=v;"));
        assert!(!c.contains("Domain"));
    }

    /// The router with a hub's services on an in-memory store, no sockets
    /// (axum's `oneshot`), and an admin token in it.
    mod routed {
        use std::sync::Arc;
        use std::time::Instant;

        use axum::body::Body;
        use axum::http::{header, Method, Request, StatusCode};
        use axum::Router;
        use tokio_util::sync::CancellationToken;
        use tokio_util::task::TaskTracker;
        use tower::ServiceExt;

        use crate::api::admin::create_api_token;
        use crate::store::sqlite::SqliteStore;
        use crate::store::Role;
        use crate::{HubConfig, Services};

        const OWN: &str = "http://hub.test";

        async fn hub() -> (Arc<Services>, Router, String, String) {
            let svc = Arc::new(Services {
                config: HubConfig::default(),
                store: Arc::new(SqliteStore::in_memory().unwrap()),
                registry: Default::default(),
                host_fingerprint: String::new(),
                ssh_port: 0,
                cancel: CancellationToken::new(),
                tracker: TaskTracker::new(),
                started: Instant::now(),
                telemetry: Default::default(),
                metrics: Default::default(),
                live_deploys: Default::default(),
                recent: Default::default(),
                ws_connections: crate::http::conns::PerToken::new(1),
                sessions: Default::default(),
                alerts: Default::default(),
            });
            let (rec, token) = create_api_token(&svc.store, "t", Role::Admin, None, false)
                .await
                .unwrap();
            let router = crate::http::router(svc.clone());
            (svc, router, rec.id, token.expose().clone())
        }

        fn req(
            method: Method,
            origin: Option<&str>,
            ctype: &str,
            cookie: &str,
            body: &str,
        ) -> Request<Body> {
            let mut r = Request::builder()
                .method(method)
                .uri("/api/session")
                .header(header::HOST, "hub.test")
                .header(header::CONTENT_TYPE, ctype)
                .header(header::COOKIE, cookie);
            if let Some(o) = origin {
                r = r.header(header::ORIGIN, o);
            }
            r.body(Body::from(body.to_string())).unwrap()
        }

        #[tokio::test]
        async fn cross_site_requests_are_refused_and_a_session_follows_its_token() {
            let (svc, app, token_id, token) = hub().await;
            let json = "application/json";
            let body = serde_json::json!({ "token": token }).to_string();
            let call = |r: Request<Body>| app.clone().oneshot(r);

            let r = call(req(Method::POST, Some("http://evil.test"), json, "", &body))
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::FORBIDDEN);
            let r = call(req(Method::POST, None, json, "", &body))
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::FORBIDDEN);
            let r = call(req(Method::POST, Some(OWN), "text/plain", "", &body))
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
            let bad = serde_json::json!({ "token": "nda_x_y" }).to_string();
            let r = call(req(Method::POST, Some(OWN), json, "", &bad))
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
            assert!(svc.sessions.is_empty());

            let r = call(req(Method::POST, Some(OWN), json, "", &body))
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::NO_CONTENT);
            let set = r.headers()[header::SET_COOKIE].to_str().unwrap();
            let cookie = set.split(';').next().unwrap().to_string();
            let ended = svc
                .sessions
                .get(cookie.split_once('=').unwrap().1)
                .unwrap()
                .ended;
            let r = call(req(Method::GET, None, json, &cookie, ""))
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::OK);

            // A cross-site sign-out changes nothing; revoking the token ends it.
            let r = call(req(
                Method::DELETE,
                Some("http://evil.test"),
                json,
                &cookie,
                "",
            ))
            .await
            .unwrap();
            assert_eq!(r.status(), StatusCode::FORBIDDEN);
            assert!(!ended.is_cancelled());
            let revoked = svc.store.revoke_api_token(&token_id, 1).unwrap();
            assert!(revoked);
            let r = call(req(Method::GET, None, json, &cookie, ""))
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
            assert!(ended.is_cancelled() && svc.sessions.is_empty());
        }

        #[tokio::test]
        async fn sign_out_ends_the_session_and_clears_the_cookie() {
            let (svc, app, _, token) = hub().await;
            let body = serde_json::json!({ "token": token }).to_string();
            let json = "application/json";
            let r = app
                .clone()
                .oneshot(req(Method::POST, Some(OWN), json, "", &body))
                .await
                .unwrap();
            let set = r.headers()[header::SET_COOKIE].to_str().unwrap();
            let cookie = set.split(';').next().unwrap().to_string();
            let ended = svc
                .sessions
                .get(cookie.split_once('=').unwrap().1)
                .unwrap()
                .ended;
            let r = app
                .clone()
                .oneshot(req(Method::DELETE, Some(OWN), json, &cookie, ""))
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::NO_CONTENT);
            assert!(r.headers()[header::SET_COOKIE]
                .to_str()
                .unwrap()
                .contains("Max-Age=0"));
            assert!(ended.is_cancelled() && svc.sessions.is_empty());
            let r = app
                .oneshot(req(Method::GET, None, json, &cookie, ""))
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        }
    }
}
