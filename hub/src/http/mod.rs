//! HTTP side of the hub (axum): `/ws` (the WebSocket API), `/health`, and
//! the web dashboard (`/api/session` for its sign-in, every other path its
//! embedded files), over TLS ([`tls`]) unless the operator chose
//! `--plain-http`.
//!
//! Layout: [`ws`] one API client; [`conns`] connections per token;
//! [`session`] the dashboard's sessions; [`signin`] `/api/session`;
//! [`web`] the embedded files and the security headers; [`tls`] the listener.

pub mod conns;
pub mod metrics;
pub mod peer;
pub mod session;
pub mod signin;
pub mod tls;
pub mod web;
pub mod ws;
pub mod ws_auth;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use tokio::net::TcpListener;

use crate::limits::SIGNIN_BODY_MAX;
use crate::store;
use crate::{HubConfig, Services};

/// The hub's routes; any other path is the dashboard's.
pub fn router(svc: Arc<Services>) -> Router {
    let assets = web::Assets::load(svc.config.tls.is_some());
    Router::new()
        .route("/health", get(health))
        .route("/ws", get(ws::upgrade))
        .route("/metrics", get(metrics::metrics))
        .route(
            "/api/session",
            get(signin::current)
                .post(signin::sign_in)
                .delete(signin::sign_out)
                .layer(DefaultBodyLimit::max(SIGNIN_BODY_MAX)),
        )
        .fallback(move |req: Request| {
            let assets = assets.clone();
            async move { assets.serve(req.method(), req.uri(), req.headers()) }
        })
        .layer(axum::middleware::map_response(
            |mut resp: Response| async move {
                web::security_headers(resp.headers_mut());
                resp
            },
        ))
        .with_state(svc)
}

/// Serve HTTPS (or, without `tls`, plain HTTP) until shutdown.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<tls::ApiTls>>,
    svc: Arc<Services>,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    let cancel = svc.cancel.clone();
    if let Some(tls) = tls {
        let listener = tls::TlsListener::spawn(listener, tls, cancel.clone());
        axum::serve(listener, router(svc))
            .with_graceful_shutdown(async move { cancel.cancelled().await })
            .await?;
        tracing::info!("HTTPS listener stopped");
        return Ok(());
    }
    // Replies are small and latency-bound: no Nagle delay on client sockets.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, router(svc))
        .with_graceful_shutdown(async move { cancel.cancelled().await })
        .await?;
    tracing::info!("HTTP listener stopped");
    Ok(())
}

async fn health(State(svc): State<Arc<Services>>) -> Response {
    let total = store::blocking(&svc.store, |s| s.list_agents())
        .await
        .map(|v| v.iter().filter(|a| a.revoked_at.is_none()).count());
    match total {
        Ok(total) => Json(json!({
            "status": "ok",
            "version": nextdeploy_shared::VERSION,
            "agents_online": svc.registry.len(),
            "agents_total": total,
            "uptime_s": svc.started.elapsed().as_secs(),
        }))
        .into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "error", "error": e.to_string() })),
        )
            .into_response(),
    }
}

/// Whether a request's `Origin` (if any) is the hub's own or allow-listed.
/// Browsers always send Origin on WebSocket upgrades; CLIs usually do not.
pub fn origin_allowed(headers: &HeaderMap, allowed: &[String]) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    let origin = origin.trim_end_matches('/');
    if allowed.iter().any(|a| a.trim_end_matches('/') == origin) {
        return true;
    }
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    origin == format!("http://{host}") || origin == format!("https://{host}")
}

/// Whether the request's `Origin` is the hub's own: the origin of
/// `--api-public-url`, or `https://<Host>` (also `http://<Host>` with
/// `--plain-http`). Unlike [`origin_allowed`], a missing Origin is not
/// enough and `--allowed-origin` does not count: this is the check for
/// requests a browser makes with the dashboard's cookie.
pub fn own_origin(headers: &HeaderMap, config: &HubConfig) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) else {
        return false;
    };
    let origin = origin.trim_end_matches('/');
    let public = config.api_public_url.as_deref().map(url_origin);
    if public.is_some_and(|p| p.eq_ignore_ascii_case(origin)) {
        return true;
    }
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    origin == format!("https://{host}")
        || (config.tls.is_none() && origin == format!("http://{host}"))
}

/// The request's `Origin` for a log line (at most [`ORIGIN_LOG_CHARS`]
/// characters, `-` when absent or not text): never a cookie or a token.
pub fn origin_text(headers: &HeaderMap) -> String {
    let origin = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok());
    origin.map_or_else(
        || "-".to_string(),
        |o| o.chars().take(ORIGIN_LOG_CHARS).collect(),
    )
}

/// Longest Origin written to the log (a header is the client's to fill).
const ORIGIN_LOG_CHARS: usize = 200;

/// `scheme://authority` of a URL.
fn url_origin(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let end = url[after_scheme..]
        .find('/')
        .map_or(url.len(), |i| after_scheme + i);
    &url[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn h(origin: Option<&str>, host: &str) -> HeaderMap {
        let mut m = HeaderMap::new();
        m.insert(header::HOST, HeaderValue::from_str(host).unwrap());
        if let Some(o) = origin {
            m.insert(header::ORIGIN, HeaderValue::from_str(o).unwrap());
        }
        m
    }

    #[test]
    fn origins() {
        assert!(origin_allowed(&h(None, "hub:8080"), &[]));
        assert!(origin_allowed(&h(Some("http://hub:8080"), "hub:8080"), &[]));
        assert!(origin_allowed(
            &h(Some("https://hub:8080"), "hub:8080"),
            &[]
        ));
        assert!(!origin_allowed(
            &h(Some("http://evil.example"), "hub:8080"),
            &[]
        ));
        assert!(!origin_allowed(
            &h(Some("http://hub:8081"), "hub:8080"),
            &[]
        ));
        assert!(origin_allowed(
            &h(Some("https://dash.example"), "hub:8080"),
            &["https://dash.example".to_string()]
        ));
    }

    #[test]
    fn own_origin_needs_an_origin_and_ignores_the_allow_list() {
        let mut config = HubConfig {
            allowed_origins: vec!["https://dash.example".into()],
            ..HubConfig::default()
        };
        assert!(!own_origin(&h(None, "hub:8080"), &config));
        assert!(own_origin(
            &h(Some("https://hub:8080"), "hub:8080"),
            &config
        ));
        assert!(own_origin(&h(Some("http://hub:8080"), "hub:8080"), &config));
        assert!(!own_origin(
            &h(Some("https://dash.example"), "hub:8080"),
            &config
        ));
        assert!(!own_origin(
            &h(Some("https://evil:8080"), "hub:8080"),
            &config
        ));
        config.api_public_url = Some("https://hub.example.com/".into());
        assert!(own_origin(
            &h(Some("https://hub.example.com"), "10.0.0.1:8080"),
            &config
        ));
        assert_eq!(url_origin("https://a:1/x/y"), "https://a:1");
        assert_eq!(url_origin("https://a:1"), "https://a:1");
    }
}
