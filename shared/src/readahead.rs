//! A byte stream that reads ahead, for russh's transport.
//!
//! russh reads every packet in two exact reads (the encrypted length, then
//! the rest), and the socket, still marked readable, gets a third read that
//! finds it empty: three system calls per small packet. [`ReadAhead`] serves
//! a short read from one read of up to [`READ_AHEAD`] bytes and keeps what
//! was left over for the next one, so a heartbeat, a ping or a fan-out answer
//! costs one read. A short read of the socket also tells tokio it is drained,
//! which saves the empty read.
//!
//! What is held is held only until it is read: an idle connection holds no
//! buffer (per-connection memory is the hub's scarcest resource); the buffer
//! goes back to a small per-thread spare list for the next connection's. Reads of at
//! least [`READ_AHEAD`] bytes (the body of a bulk packet) go straight into the
//! caller's buffer, without a copy.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bytes read at once for a short read.
pub const READ_AHEAD: usize = 4096;

/// Spare read-ahead buffers kept per thread: what a connection holds goes
/// back here once read, so a busy connection's next short read takes one
/// instead of the allocator's (an allocation and a free of up to 4 KiB per
/// packet was a tenth of a hub's CPU with 10,000 agents pushing), and an
/// idle one still holds nothing.
const SPARE_PER_THREAD: usize = 32;

thread_local! {
    static SPARE: std::cell::RefCell<Vec<Vec<u8>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A buffer of [`READ_AHEAD`] bytes' capacity holding a copy of `bytes`.
fn spare_with(bytes: &[u8]) -> Vec<u8> {
    let mut held = SPARE
        .with(|s| s.borrow_mut().pop())
        .unwrap_or_else(|| Vec::with_capacity(READ_AHEAD));
    held.extend_from_slice(bytes);
    held
}

/// Keep `held` for the next [`spare_with`] on this thread, if there is room.
fn give_back(mut held: Vec<u8>) {
    if held.capacity() != READ_AHEAD {
        return;
    }
    held.clear();
    SPARE.with(|s| {
        let mut s = s.borrow_mut();
        if s.len() < SPARE_PER_THREAD {
            s.push(held);
        }
    });
}

/// See the module doc.
pub struct ReadAhead<S> {
    inner: S,
    held: Vec<u8>,
    at: usize,
}

impl<S> ReadAhead<S> {
    /// Wrap `inner`.
    pub fn new(inner: S) -> Self {
        ReadAhead {
            inner,
            held: Vec::new(),
            at: 0,
        }
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Bytes read from the stream and not yet handed out.
    pub fn held(&self) -> usize {
        self.held.len() - self.at
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for ReadAhead<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if buf.remaining() == 0 {
            // Nothing to fill; reading ahead now would hand back no byte,
            // which the caller would take for the end of the stream.
            return Poll::Ready(Ok(()));
        }
        if this.at < this.held.len() {
            let n = (this.held.len() - this.at).min(buf.remaining());
            buf.put_slice(&this.held[this.at..this.at + n]);
            this.at += n;
            if this.at == this.held.len() {
                give_back(std::mem::take(&mut this.held));
                this.at = 0;
            }
            return Poll::Ready(Ok(()));
        }
        if buf.remaining() >= READ_AHEAD {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        let mut scratch = [0u8; READ_AHEAD];
        let mut ahead = ReadBuf::new(&mut scratch);
        match Pin::new(&mut this.inner).poll_read(cx, &mut ahead) {
            Poll::Ready(Ok(())) => {
                let got = ahead.filled();
                let n = got.len().min(buf.remaining());
                buf.put_slice(&got[..n]);
                if n < got.len() {
                    this.held = spare_with(&got[n..]);
                    this.at = 0;
                }
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ReadAhead<S> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A peer's bytes come out whole and in order whatever the read sizes,
    /// and nothing is held once they are read.
    #[tokio::test]
    async fn small_reads_see_every_byte_in_order_and_nothing_stays_held() {
        let (mut a, b) = tokio::io::duplex(1 << 20);
        let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let send = data.clone();
        let writer = tokio::spawn(async move {
            for piece in send.chunks(1000) {
                a.write_all(piece).await.unwrap();
            }
        });
        let mut r = ReadAhead::new(b);
        let mut got = Vec::new();
        // Sizes as russh asks: 4 bytes, then a body, some above READ_AHEAD.
        let sizes = [4usize, 60, 4, 9000, 4, 1, 4096, 3, 20_000];
        let mut i = 0;
        while got.len() < data.len() {
            let want = sizes[i % sizes.len()].min(data.len() - got.len());
            let mut buf = vec![0u8; want];
            r.read_exact(&mut buf).await.unwrap();
            got.extend_from_slice(&buf);
            i += 1;
        }
        writer.await.unwrap();
        assert_eq!(got, data);
        assert_eq!(r.held(), 0);
        assert_eq!(r.held.capacity(), 0, "a drained buffer is freed");
    }

    /// A read into a full buffer reads nothing and holds nothing.
    #[tokio::test]
    async fn a_read_with_no_room_takes_nothing_from_the_stream() {
        let (mut a, b) = tokio::io::duplex(4096);
        a.write_all(b"abc").await.unwrap();
        let mut r = ReadAhead::new(b);
        let mut empty = [0u8; 0];
        assert_eq!(r.read(&mut empty).await.unwrap(), 0);
        assert_eq!(r.held(), 0);
        let mut three = [0u8; 3];
        r.read_exact(&mut three).await.unwrap();
        assert_eq!(&three, b"abc");
    }

    /// A 4-byte read of a 100-byte packet takes the whole packet from the
    /// stream at once and serves the rest from what it holds.
    #[tokio::test]
    async fn a_short_read_takes_the_whole_packet_at_once() {
        let (mut a, b) = tokio::io::duplex(4096);
        a.write_all(&[9u8; 100]).await.unwrap();
        let mut r = ReadAhead::new(b);
        let mut len = [0u8; 4];
        r.read_exact(&mut len).await.unwrap();
        assert_eq!(r.held(), 96);
        drop(a);
        let mut rest = Vec::new();
        r.read_to_end(&mut rest).await.unwrap();
        assert_eq!(rest.len(), 96);
        assert_eq!(r.held(), 0);
    }
}
