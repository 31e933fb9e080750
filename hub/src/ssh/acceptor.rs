//! The SSH listener's accept loop, on a thread of its own.
//!
//! During a reconnect storm the runtime's workers are busy with key
//! exchanges (about half a millisecond of CPU each), and an accept task
//! queued behind them falls behind the arriving connections. The kernel's
//! accept queue then overflows: it drops the agents' handshakes, they
//! retransmit on TCP's timers (1 s, 3 s, ...) and a few end in resets. A
//! thread that does nothing but accept keeps that queue empty; what it
//! accepted waits in [`ACCEPT_QUEUE`](super::ACCEPT_QUEUE) places, from which
//! the hub's own loop hands connections to handshake slots.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::warn;

/// One accepted connection and the queue place it holds.
pub struct Accepted {
    /// The socket, registered with the caller's runtime.
    pub socket: TcpStream,
    /// Where it comes from.
    pub peer: SocketAddr,
    /// Released once the connection has a handshake slot (or is closed).
    pub queued: OwnedSemaphorePermit,
}

type Raw = (std::net::TcpStream, SocketAddr, OwnedSemaphorePermit);

/// Start accepting on `listener` in a thread; connections arrive on the
/// returned receiver until `cancel` fires. Each holds a permit of `queue`,
/// so at most its size are accepted and not yet taken over.
pub fn start(
    listener: TcpListener,
    queue: Arc<Semaphore>,
    cancel: CancellationToken,
) -> std::io::Result<Receiver> {
    let listener = listener.into_std()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()?;
    // Unbounded, but never longer than `queue`'s permits: each entry holds one.
    let (tx, rx) = mpsc::unbounded_channel::<Raw>();
    std::thread::Builder::new()
        .name("ssh-accept".into())
        .spawn(move || rt.block_on(accept_loop(listener, queue, cancel, tx)))?;
    Ok(Receiver(rx))
}

/// Accepted connections, converted to the receiving runtime.
pub struct Receiver(mpsc::UnboundedReceiver<Raw>);

impl Receiver {
    /// The next connection; `None` once the acceptor stopped.
    pub async fn next(&mut self) -> Option<Accepted> {
        loop {
            let (std, peer, queued) = self.0.recv().await?;
            match TcpStream::from_std(std) {
                Ok(socket) => {
                    return Some(Accepted {
                        socket,
                        peer,
                        queued,
                    })
                }
                Err(e) => warn!(error = %e, %peer, "cannot register an accepted connection"),
            }
        }
    }
}

async fn accept_loop(
    listener: std::net::TcpListener,
    queue: Arc<Semaphore>,
    cancel: CancellationToken,
    tx: mpsc::UnboundedSender<Raw>,
) {
    let listener = match TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            warn!(error = %e, "cannot register the SSH listener");
            return;
        }
    };
    loop {
        // A queue place before accepting: when all are taken, new connections
        // wait in the kernel's backlog instead of costing us memory.
        let queued = tokio::select! {
            p = queue.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
            _ = cancel.cancelled() => return,
        };
        let (socket, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(crate::limits::ACCEPT_ERROR_BACKOFF).await;
                    continue;
                }
            },
            _ = cancel.cancelled() => return,
        };
        let std = match socket.into_std() {
            Ok(s) => s,
            Err(e) => {
                warn!(error = %e, %peer, "cannot hand over an accepted connection");
                continue;
            }
        };
        if tx.send((std, peer, queued)).is_err() {
            return;
        }
    }
}
