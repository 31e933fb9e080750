//! HTTP side of the hub (axum): `/ws` (the WebSocket API) and `/health`,
//! over TLS ([`tls`]) unless the operator chose `--plain-http`.

pub mod conns;
pub mod tls;
pub mod ws;

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use tokio::net::TcpListener;

use crate::store;
use crate::Services;

/// The hub's routes.
pub fn router(svc: Arc<Services>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/ws", get(ws::upgrade))
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
}
