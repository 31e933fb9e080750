//! A WebSocket API client for the scenarios: one connection, requests by id.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{bail, Context};
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long any one reply may take before the scenario fails.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(60);

/// The envelope of a reply; `data` is skipped (bulk scenarios must not pay
/// for parsing what they only count).
#[derive(Deserialize)]
pub struct Envelope {
    pub id: Option<u64>,
    #[serde(rename = "type")]
    pub kind: String,
}

impl Envelope {
    /// The envelope read from the start of a reply laid out as the hub
    /// writes one (`{"id":N,"type":"K",...`), without reading the rest: the
    /// bulk scenarios count what follows, as `ssh ... > /dev/null` does
    /// (the WebSocket layer has checked it is UTF-8). `None` for any other
    /// layout, which serde then reads whole.
    fn from_head(t: &str) -> Option<Envelope> {
        let rest = t.strip_prefix("{\"id\":")?;
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 1 && rest.starts_with('0') {
            return None; // a leading zero, which JSON does not allow
        }
        let id = rest.get(..digits)?.parse().ok()?;
        let rest = rest.get(digits..)?.strip_prefix(",\"type\":\"")?;
        let end = rest.bytes().position(|b| b == b'"' || b == b'\\')?;
        if rest.as_bytes()[end] != b'"' {
            return None;
        }
        Some(Envelope {
            id: Some(id),
            kind: rest[..end].to_string(),
        })
    }
}

/// One API connection.
pub struct Ws {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Ws {
    /// Connect to `ws://http/ws` with `token`.
    pub async fn connect(http: SocketAddr, token: &str) -> anyhow::Result<Ws> {
        let mut req = format!("ws://{http}/ws").into_client_request()?;
        req.headers_mut()
            .insert("Authorization", format!("Bearer {token}").parse()?);
        let (ws, _) = tokio::time::timeout(
            REPLY_TIMEOUT,
            tokio_tungstenite::connect_async_with_config(req, None, true),
        )
        .await
        .context("WebSocket connect timeout")??;
        Ok(Ws { ws })
    }

    /// Send one request.
    pub async fn send(&mut self, v: &serde_json::Value) -> anyhow::Result<()> {
        self.ws.send(Message::text(v.to_string())).await?;
        Ok(())
    }

    /// The next text reply: its envelope and its size in bytes.
    pub async fn recv(&mut self) -> anyhow::Result<(Envelope, usize)> {
        let (e, t) = self.recv_text().await?;
        Ok((e, t.len()))
    }

    /// The next text reply: its envelope and its text (not copied).
    pub async fn recv_text(&mut self) -> anyhow::Result<(Envelope, Utf8Bytes)> {
        loop {
            let m = tokio::time::timeout(REPLY_TIMEOUT, self.ws.next())
                .await
                .context("no reply within the timeout")?;
            match m {
                Some(Ok(Message::Text(t))) => {
                    let e = match Envelope::from_head(&t) {
                        Some(e) => e,
                        None => serde_json::from_str(&t)
                            .with_context(|| format!("bad reply {}", truncate(&t)))?,
                    };
                    if e.kind == "error" {
                        bail!("error reply: {}", truncate(&t));
                    }
                    return Ok((e, t));
                }
                Some(Ok(Message::Close(_))) | None => bail!("the hub closed the WebSocket"),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
            }
        }
    }
}

fn truncate(s: &str) -> &str {
    match s.char_indices().nth(300) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::Envelope;

    #[test]
    fn the_head_gives_what_serde_gives() {
        for t in [
            r#"{"id":7,"type":"log","server":"s","data":{"chunk":"x"}}"#,
            r#"{"id":0,"type":"end"}"#,
            r#"{"id":18446744073709551615,"type":"result","data":{}}"#,
        ] {
            let fast = Envelope::from_head(t).expect("hub layout");
            let slow: Envelope = serde_json::from_str(t).unwrap();
            assert_eq!((fast.id, fast.kind), (slow.id, slow.kind));
        }
    }

    #[test]
    fn other_layouts_are_left_to_serde() {
        for t in [
            r#"{"type":"event","data":{}}"#,
            r#"{"id":7, "type":"log"}"#,
            r#"{"id":,"type":"log"}"#,
            r#"{"id":07,"type":"log"}"#,
            r#"{"id":18446744073709551616,"type":"log"}"#,
            r#"{"id":7,"type":"a\"b"}"#,
            r#"{"id":7,"type":"log"#,
        ] {
            assert!(Envelope::from_head(t).is_none(), "{t}");
        }
    }
}
