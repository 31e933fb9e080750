//! The CLI's WebSocket client: one connection, requests by id, replies until
//! the request's terminal reply.

use anyhow::{anyhow, bail, Context};
use futures_util::{SinkExt, StreamExt};
use nextdeploy_shared::protocol::{Action, ErrorBody, Reply, ReplyType, Request};
use nextdeploy_shared::secret::Secret;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long connecting to the hub may take.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The sending half of a client's connection.
pub type WsSink =
    futures_util::stream::SplitSink<WebSocketStream<MaybeTlsStream<TcpStream>>, Message>;
/// The receiving half of a client's connection.
pub type WsSource = futures_util::stream::SplitStream<WebSocketStream<MaybeTlsStream<TcpStream>>>;

/// A connected client.
pub struct Client {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_id: u64,
}

/// `https://h:p` -> `wss://h:p/ws`, `http://` -> `ws://`; a bare `h:p` is
/// HTTPS (the hub's default).
pub fn ws_url(hub: &str) -> anyhow::Result<String> {
    let hub = hub.trim_end_matches('/');
    let with_ws = |u: String| {
        if u.ends_with("/ws") {
            u
        } else {
            format!("{u}/ws")
        }
    };
    if let Some(rest) = hub.strip_prefix("https://") {
        Ok(with_ws(format!("wss://{rest}")))
    } else if let Some(rest) = hub.strip_prefix("http://") {
        Ok(with_ws(format!("ws://{rest}")))
    } else if hub.starts_with("ws://") || hub.starts_with("wss://") {
        Ok(with_ws(hub.to_string()))
    } else if hub.contains("://") {
        bail!(
            "the hub URL must be https:// (or http:// for a hub run with --plain-http), not {hub}"
        )
    } else {
        Ok(with_ws(format!("wss://{hub}")))
    }
}

/// The refusal of a certificate the CLI cannot trust, with what to do.
fn untrusted(hub: &str, seen: &str, pinned: Option<&str>) -> ConnectError {
    ConnectError::Untrusted(match pinned {
        Some(p) => format!(
            "the hub at {hub} presents a certificate with pin {seen}, not the pinned {p}: \
             refusing it (a different hub, or its key changed; if the change is expected, \
             log in again with --tls-pin {seen})"
        ),
        None => format!(
            "the hub at {hub} presents a certificate that no system root vouches for \
             (self-signed?); its pin is {seen}. If that is the API pin your hub printed at \
             start, accept it with: nextdeploy login --hub {hub} --token <token> --tls-pin {seen}"
        ),
    })
}

impl Client {
    /// Connect and authenticate, trusting the pin in NEXTDEPLOY_TLS_PIN or
    /// the one saved with this hub's login (else the system's roots).
    pub async fn connect(hub: &str, token: &Secret<String>) -> anyhow::Result<Client> {
        let pin = super::login::tls_pin_for(hub)?;
        Client::connect_pinned(hub, token, pin.as_deref()).await
    }

    /// Connect and authenticate, trusting `pin` (else the system's roots).
    pub async fn connect_pinned(
        hub: &str,
        token: &Secret<String>,
        pin: Option<&str>,
    ) -> anyhow::Result<Client> {
        let url = ws_url(hub)?;
        let (tls, seen) = nextdeploy_shared::tls::client_config(pin).map_err(anyhow::Error::msg)?;
        let mut request = url.as_str().into_client_request().context("bad hub URL")?;
        let auth = HeaderValue::from_str(&format!("Bearer {}", token.expose()))
            .map_err(|_| anyhow!("the token holds characters that cannot go in a header"))?;
        request.headers_mut().insert("Authorization", auth);
        let connector = url
            .starts_with("wss://")
            .then(|| tokio_tungstenite::Connector::Rustls(tls));
        let connect =
            tokio_tungstenite::connect_async_tls_with_config(request, None, false, connector);
        let (ws, _) = match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
            Err(_) => return Err(ConnectError::Unreachable(format!("{hub}: timed out")).into()),
            Ok(Err(tokio_tungstenite::tungstenite::Error::Http(resp))) => {
                let body = resp
                    .body()
                    .as_ref()
                    .map(|b| String::from_utf8_lossy(b).trim().to_string())
                    .unwrap_or_default();
                match resp.status().as_u16() {
                    401 => return Err(ConnectError::Refused(format!("the token: {body}")).into()),
                    403 => {
                        return Err(ConnectError::Refused(format!("the connection: {body}")).into())
                    }
                    s => bail!("the hub answered HTTP {s}: {body}"),
                }
            }
            Ok(Err(e)) => {
                let seen = seen.lock().ok().and_then(|s| s.clone());
                let tls_refused = matches!(e, tokio_tungstenite::tungstenite::Error::Tls(_))
                    || e.to_string().contains("certificate");
                return Err(match (tls_refused, seen) {
                    (true, Some(seen)) => untrusted(hub, &seen, pin).into(),
                    _ => ConnectError::Unreachable(format!("{hub}: {e}")).into(),
                });
            }
            Ok(Ok(x)) => x,
        };
        Ok(Client { ws, next_id: 1 })
    }

    /// Send a request; returns its id.
    pub async fn send(
        &mut self,
        action: Action,
        server: Option<&str>,
        selector: Option<&str>,
    ) -> anyhow::Result<u64> {
        let id = self.next_id;
        self.next_id += 1;
        let req = Request::new(id, action, server, selector);
        self.ws
            .send(Message::Text(serde_json::to_string(&req)?.into()))
            .await
            .context("lost the connection to the hub")?;
        Ok(id)
    }

    /// The next reply for any request.
    pub async fn next(&mut self) -> anyhow::Result<Reply> {
        loop {
            match self.ws.next().await {
                None => bail!("the hub closed the connection"),
                Some(Err(e)) => bail!("lost the connection to the hub: {e}"),
                Some(Ok(Message::Text(t))) => {
                    return serde_json::from_str(t.as_str())
                        .context("the hub sent a malformed reply")
                }
                Some(Ok(Message::Close(_))) => bail!("the hub closed the connection"),
                Some(Ok(_)) => {}
            }
        }
    }

    /// A one-shot request: its `result` data, or its error as an error.
    pub async fn call(&mut self, action: Action, server: Option<&str>) -> anyhow::Result<Value> {
        self.call_to(action, server, None).await
    }

    /// [`Client::call`] with a selector: for actions the hub answers itself
    /// with one `result` for every matching agent (`status`).
    pub async fn call_to(
        &mut self,
        action: Action,
        server: Option<&str>,
        selector: Option<&str>,
    ) -> anyhow::Result<Value> {
        let id = self.send(action, server, selector).await?;
        loop {
            let r = self.next().await?;
            if r.id != Some(id) {
                continue;
            }
            match r.kind {
                ReplyType::Result => return Ok(r.data),
                ReplyType::Error => return Err(error_of(&r)),
                ReplyType::End => bail!("the hub ended the request without an answer"),
                _ => {}
            }
        }
    }

    /// A streaming request: calls `each` for every reply until the terminal one.
    /// Returns an error for an `error` reply (after `each` saw it).
    pub async fn stream(
        &mut self,
        action: Action,
        server: Option<&str>,
        selector: Option<&str>,
        mut each: impl FnMut(&Reply) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let id = self.send(action, server, selector).await?;
        loop {
            let r = self.next().await?;
            if r.id != Some(id) {
                continue;
            }
            match r.kind {
                ReplyType::Error if r.server.is_none() || selector.is_none() => {
                    return Err(error_of(&r))
                }
                ReplyType::End if r.server.is_none() || selector.is_none() => return Ok(()),
                ReplyType::Result if selector.is_none() => {
                    each(&r)?;
                    return Ok(());
                }
                _ => each(&r)?,
            }
        }
    }

    /// The connection in two halves, for a request that talks both ways
    /// (`exec`), and the next request id.
    pub fn into_split(self) -> (WsSink, WsSource, u64) {
        let (sink, source) = self.ws.split();
        (sink, source, self.next_id)
    }

    /// Close politely.
    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }
}

/// An `error` reply as an error for people.
pub fn error_of(r: &Reply) -> anyhow::Error {
    match serde_json::from_value::<ErrorBody>(r.data.clone()) {
        Ok(b) => anyhow::Error::new(HubError(b)),
        Err(_) => anyhow!("error: {}", r.data),
    }
}

/// Why [`Client::connect`] failed, told apart for the exit code.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// No WebSocket came up: nothing listens, a timeout, DNS.
    #[error("cannot reach the hub at {0}")]
    Unreachable(String),
    /// The hub answered 401 or 403.
    #[error("the hub refused {0}")]
    Refused(String),
    /// The hub's certificate is not the pinned one, or no root vouches for it.
    #[error("{0}")]
    Untrusted(String),
}

/// An `error` reply from the hub, kept whole so that `--output json` can
/// report its code.
#[derive(Debug)]
pub struct HubError(pub ErrorBody);

impl std::fmt::Display for HubError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.message)
    }
}

impl std::error::Error for HubError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(ws_url("http://h:8080").unwrap(), "ws://h:8080/ws");
        assert_eq!(ws_url("http://h:8080/").unwrap(), "ws://h:8080/ws");
        assert_eq!(ws_url("h:8080").unwrap(), "wss://h:8080/ws");
        assert_eq!(ws_url("https://h:8080/").unwrap(), "wss://h:8080/ws");
        assert_eq!(ws_url("wss://h:8080/ws").unwrap(), "wss://h:8080/ws");
        assert!(ws_url("ftp://h").is_err());
    }
}
