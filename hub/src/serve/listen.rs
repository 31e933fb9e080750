//! The hub's listening sockets, and the address this host's own clients
//! use to reach one.

use tokio::net::TcpListener;

use anyhow::Context;

use crate::limits::LISTEN_BACKLOG;

/// Listen on `addr` (`what`: SSH or HTTP, for the error).
pub(super) async fn bind(addr: &str, what: &str) -> anyhow::Result<TcpListener> {
    let listen = async {
        let mut last = None;
        for a in tokio::net::lookup_host(addr).await? {
            let socket = match a {
                std::net::SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
                std::net::SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
            };
            // A restarted hub rebinds its port while old connections linger.
            socket.set_reuseaddr(true)?;
            match socket.bind(a).and_then(|()| socket.listen(LISTEN_BACKLOG)) {
                Ok(l) => return Ok(l),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "the address resolves to nothing",
            )
        }))
    };
    listen
        .await
        .with_context(|| format!("cannot listen on {addr} ({what})"))
}

/// `addr`, or loopback at its port when it is a wildcard.
pub(super) fn loopback(addr: std::net::SocketAddr) -> String {
    if addr.ip().is_unspecified() {
        format!("127.0.0.1:{}", addr.port())
    } else {
        addr.to_string()
    }
}

/// The default SSH and HTTP listen addresses: loopback for `--local-agent`.
pub(super) fn defaults(local_agent: bool) -> (&'static str, &'static str) {
    if local_agent {
        ("127.0.0.1:2222", "127.0.0.1:8080")
    } else {
        ("0.0.0.0:2222", "0.0.0.0:8080")
    }
}
