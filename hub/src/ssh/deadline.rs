//! A TCP stream that fails every read once the authentication deadline passes
//! without a successful authentication. The deadline is absolute: traffic does
//! not extend it, so a slow-loris peer is cut like a silent one.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use nextdeploy_shared::readahead::ReadAhead;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

/// See the module doc. Reads go through [`ReadAhead`]: one read per small
/// packet instead of three.
pub struct DeadlineStream {
    inner: ReadAhead<TcpStream>,
    deadline: Pin<Box<Sleep>>,
    authenticated: Arc<AtomicBool>,
}

impl DeadlineStream {
    /// Wrap `inner`; `authenticated` is set by the handler on success.
    pub fn new(inner: TcpStream, limit: Duration, authenticated: Arc<AtomicBool>) -> Self {
        DeadlineStream {
            inner: ReadAhead::new(inner),
            deadline: Box::pin(tokio::time::sleep_until(Instant::now() + limit)),
            authenticated,
        }
    }
}

impl AsyncRead for DeadlineStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.authenticated.load(Ordering::Acquire) && self.deadline.as_mut().poll(cx).is_ready()
        {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "authentication deadline passed",
            )));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for DeadlineStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
