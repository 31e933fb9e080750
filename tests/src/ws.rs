//! A WebSocket client for the hub's `/ws` API, on tokio-tungstenite (the
//! library the CLI uses).

use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::hub::Hub;

/// A WebSocket API client.
pub struct Ws {
    stream: WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>,
}

/// Connect to the hub's `/ws` with an optional bearer token and Origin.
pub async fn ws_connect(
    hub: &Hub,
    token: Option<&str>,
    origin: Option<&str>,
) -> std::result::Result<Ws, tungstenite::Error> {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let mut headers = Vec::new();
    if let Some(b) = &bearer {
        headers.push(("Authorization", b.as_str()));
    }
    if let Some(o) = origin {
        headers.push(("Origin", o));
    }
    ws_connect_with(hub, &headers).await
}

/// Connect to the hub's `/ws` with these extra request headers (a cookie,
/// an Origin), as a browser would.
pub async fn ws_connect_with(
    hub: &Hub,
    headers: &[(&str, &str)],
) -> std::result::Result<Ws, tungstenite::Error> {
    let mut req = hub.ws_url().into_client_request()?;
    for (name, value) in headers {
        let v =
            HeaderValue::from_str(value).map_err(|e| tungstenite::Error::HttpFormat(e.into()))?;
        let name = tungstenite::http::HeaderName::from_bytes(name.as_bytes())
            .map_err(|e| tungstenite::Error::HttpFormat(e.into()))?;
        req.headers_mut().insert(name, v);
    }
    let connector = match &hub.tls_pin {
        Some(pin) => {
            let (config, _) = nextdeploy_shared::tls::client_config(Some(pin))
                .map_err(|e| tungstenite::Error::Io(std::io::Error::other(e)))?;
            Some(tokio_tungstenite::Connector::Rustls(config))
        }
        None => None,
    };
    let (stream, _resp) = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::connect_async_tls_with_config(req, None, false, connector),
    )
    .await
    .map_err(|_| tungstenite::Error::Io(std::io::Error::other("websocket connect timed out")))??;
    Ok(Ws { stream })
}

/// The HTTP status of a refused WebSocket upgrade, if that is what `err` is.
pub fn ws_refusal_status(err: &tungstenite::Error) -> Option<u16> {
    match err {
        tungstenite::Error::Http(resp) => Some(resp.status().as_u16()),
        _ => None,
    }
}

/// What the next read on a WebSocket gave.
#[derive(Debug)]
pub enum WsEvent {
    /// A text message.
    Text(String),
    /// A binary message.
    Binary(Vec<u8>),
    /// A close frame.
    Close,
    /// The stream ended.
    End,
    /// A read error.
    Error(String),
    /// Nothing within the timeout.
    Timeout,
}

impl Ws {
    /// Send a text message.
    pub async fn send_text(&mut self, text: impl Into<String>) -> Result<()> {
        self.stream
            .send(Message::text(text.into()))
            .await
            .context("websocket send")
    }

    /// Send a JSON value as a text message.
    pub async fn send_json(&mut self, v: &Value) -> Result<()> {
        self.send_text(v.to_string()).await
    }

    /// Next non-ping/pong event within `timeout`.
    pub async fn next_event(&mut self, timeout: Duration) -> WsEvent {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.stream.next()).await {
                Err(_) => return WsEvent::Timeout,
                Ok(None) => return WsEvent::End,
                Ok(Some(Err(e))) => return WsEvent::Error(e.to_string()),
                Ok(Some(Ok(m))) => match m {
                    Message::Text(t) => return WsEvent::Text(t.to_string()),
                    Message::Binary(b) => return WsEvent::Binary(b.to_vec()),
                    Message::Close(_) => return WsEvent::Close,
                    Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
                },
            }
        }
    }

    /// Next message parsed as JSON, within `timeout`.
    pub async fn recv_json(&mut self, timeout: Duration) -> Result<Value> {
        match self.next_event(timeout).await {
            WsEvent::Text(t) => {
                serde_json::from_str(&t).with_context(|| format!("reply is not JSON: {t}"))
            }
            other => bail!("expected a JSON text message, got {other:?}"),
        }
    }

    /// Send `req` and wait for the first reply whose `id` equals `req["id"]`.
    pub async fn request(&mut self, req: &Value, timeout: Duration) -> Result<Value> {
        self.send_json(req).await?;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                bail!("no reply with id {} within {timeout:?}", req["id"]);
            }
            let v = self.recv_json(left).await?;
            if v["id"] == req["id"] {
                return Ok(v);
            }
        }
    }

    /// Close the connection politely.
    pub async fn close(mut self) {
        let _ = self.stream.close(None).await;
    }
}

/// One WebSocket request with `token` (a fresh connection): the first reply
/// whose id matches, within 30 s.
pub fn ws_request(hub: &Hub, token: &str, req: Value) -> Result<Value> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut ws = ws_connect(hub, Some(token), None)
            .await
            .map_err(|e| anyhow!("websocket connect: {e}"))?;
        let r = ws.request(&req, Duration::from_secs(30)).await;
        ws.close().await;
        r
    })
}
