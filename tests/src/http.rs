//! A loopback HTTP/1.1 client (hyper), for the hub's `/health`, the
//! registry's API and the deploy fixtures' web servers. One connection per
//! request, bounded.

use std::thread;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderMap, HOST};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;

/// A finished HTTP exchange.
#[derive(Debug, Clone)]
pub struct HttpReply {
    /// Status code.
    pub status: u16,
    /// Response headers.
    pub headers: HeaderMap,
    /// Body bytes (de-chunked; empty for `HEAD`).
    pub body: Vec<u8>,
}

impl HttpReply {
    /// The body, lossily decoded.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// A header's value as text, if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)?.to_str().ok()
    }
}

async fn exchange(
    port: u16,
    pin: Option<&str>,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> Result<HttpReply> {
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .with_context(|| format!("connect to 127.0.0.1:{port}"))?;
    let mut sender = match pin {
        None => {
            let (sender, conn) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(conn);
            sender
        }
        Some(pin) => {
            let (config, _) =
                nextdeploy_shared::tls::client_config(Some(pin)).map_err(anyhow::Error::msg)?;
            let name = rustls::pki_types::ServerName::try_from("localhost")?;
            let tls = tokio_rustls::TlsConnector::from(config)
                .connect(name, stream)
                .await
                .context("TLS handshake with the pinned certificate")?;
            let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
            tokio::spawn(conn);
            sender
        }
    };
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header(HOST, format!("127.0.0.1:{port}"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = sender.send_request(req.body(Full::new(body))?).await?;
    let (parts, body) = resp.into_parts();
    let body = body.collect().await?.to_bytes().to_vec();
    Ok(HttpReply {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body,
    })
}

/// `METHOD path` to `127.0.0.1:port` with extra headers, within `timeout`.
/// Blocking; callable from async tests too (it runs on a thread of its own
/// with its own runtime).
pub fn http_request(
    port: u16,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    timeout: Duration,
) -> Result<HttpReply> {
    request(port, None, method, path, headers, &[], timeout)
}

/// `METHOD path` over TLS to `127.0.0.1:port`, trusting only the
/// certificate whose key has `pin`, with headers and a body (10 s bound).
pub fn https_request(
    port: u16,
    pin: &str,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<HttpReply> {
    let timeout = Duration::from_secs(10);
    request(port, Some(pin), method, path, headers, body, timeout)
}

/// `GET path` over TLS to `127.0.0.1:port`, trusting only the certificate
/// whose key has `pin` (10 s bound): (status, body).
pub fn https_get(
    port: u16,
    pin: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<(u16, String)> {
    let r = request(
        port,
        Some(pin),
        Method::GET,
        path,
        headers,
        &[],
        Duration::from_secs(10),
    )?;
    Ok((r.status, r.text()))
}

fn request(
    port: u16,
    pin: Option<&str>,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
) -> Result<HttpReply> {
    let body = Bytes::copy_from_slice(body);
    let scheme = if pin.is_some() { "https" } else { "http" };
    let what = format!("{method} {scheme}://127.0.0.1:{port}{path}");
    let run = || -> Result<HttpReply> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(async {
            tokio::time::timeout(timeout, exchange(port, pin, method, path, headers, body)).await
        })
        .map_err(|_| anyhow!("{what}: no answer within {timeout:?}"))?
        .with_context(|| what.clone())
    };
    thread::scope(|s| {
        s.spawn(run)
            .join()
            .unwrap_or_else(|_| Err(anyhow!("{what}: the client thread panicked")))
    })
}

/// `GET path` to `127.0.0.1:port` with extra headers (10 s bound): (status, body).
pub fn http_get(port: u16, path: &str, headers: &[(&str, &str)]) -> Result<(u16, String)> {
    let r = http_request(port, Method::GET, path, headers, Duration::from_secs(10))?;
    Ok((r.status, r.text()))
}

/// A short `GET /` on `127.0.0.1:port`: the body on a 200, else an error.
pub fn http_body(port: u16, timeout: Duration) -> Result<String> {
    let r = http_request(port, Method::GET, "/", &[], timeout)?;
    if r.status != 200 {
        bail!("HTTP {}: {:?}", r.status, r.headers);
    }
    Ok(r.text())
}
