//! One HTTP/1.1 POST to a receiver, on hyper's client connection (the
//! workspace's HTTP stack; no pooled client is needed for a few requests a
//! minute) over TCP or rustls with the system's roots.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Method, Request, Uri};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::limits::{DELIVERY_ANSWER_MAX, DELIVERY_TIMEOUT};

/// Why a POST got no answer.
#[derive(Debug, thiserror::Error)]
pub enum PostError {
    /// The URL is not `http(s)://host[:port]/path`.
    #[error("bad URL: {0}")]
    Url(String),
    /// Connect, TLS or HTTP failed.
    #[error("{0}")]
    Io(String),
    /// No answer within [`DELIVERY_TIMEOUT`].
    #[error("no answer within {}s", DELIVERY_TIMEOUT.as_secs())]
    Timeout,
}

/// Posts bodies (JSON unless a `Content-Type` header says otherwise); the
/// TLS setup (system roots) is made on first use and kept.
#[derive(Default)]
pub struct Poster {
    tls: OnceLock<Result<Arc<rustls::ClientConfig>, String>>,
}

impl Poster {
    /// POST `body` to `url` with extra `headers`; the answer's status.
    pub async fn post(
        &self,
        url: &str,
        headers: &[(&str, String)],
        body: String,
    ) -> Result<u16, PostError> {
        match tokio::time::timeout(DELIVERY_TIMEOUT, self.post_now(url, headers, body)).await {
            Ok(r) => r,
            Err(_) => Err(PostError::Timeout),
        }
    }

    async fn post_now(
        &self,
        url: &str,
        headers: &[(&str, String)],
        body: String,
    ) -> Result<u16, PostError> {
        let uri: Uri = url.parse().map_err(|e| PostError::Url(format!("{e}")))?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(PostError::Url("the scheme must be http or https".into())),
        };
        let host = uri
            .host()
            .ok_or_else(|| PostError::Url("no host".into()))?
            .trim_matches(|c| c == '[' || c == ']')
            .to_string();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let tcp = TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| PostError::Io(format!("connect {host}:{port}: {e}")))?;
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(uri.path_and_query().map_or("/", |p| p.as_str()))
            .header(
                hyper::header::HOST,
                uri.authority().map_or("", |a| a.as_str()),
            )
            .header(hyper::header::USER_AGENT, "nextdeploy-hub");
        if !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        {
            req = req.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        let req = req
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| PostError::Url(e.to_string()))?;
        if !https {
            return send(tcp, req).await;
        }
        let config = self.tls_config()?;
        let name = ServerName::try_from(host.clone()).map_err(|e| PostError::Url(e.to_string()))?;
        let tls = tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map_err(|e| PostError::Io(format!("TLS with {host}: {e}")))?;
        send(tls, req).await
    }

    fn tls_config(&self) -> Result<Arc<rustls::ClientConfig>, PostError> {
        let made = self
            .tls
            .get_or_init(|| nextdeploy_shared::tls::client_config(None).map(|(config, _)| config));
        made.clone().map_err(PostError::Io)
    }
}

async fn send<S>(io: S, req: Request<Full<Bytes>>) -> Result<u16, PostError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io_err = |e: hyper::Error| PostError::Io(e.to_string());
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(io_err)?;
    let driver = tokio::spawn(conn);
    let answer = sender.send_request(req).await.map_err(io_err);
    let status = match answer {
        Ok(res) => {
            let status = res.status().as_u16();
            // Read (a bounded part of) the answer so the receiver sees a
            // clean end; what it says does not matter.
            let _ = Limited::new(res.into_body(), DELIVERY_ANSWER_MAX)
                .collect()
                .await;
            Ok(status)
        }
        Err(e) => Err(e),
    };
    driver.abort();
    status
}
