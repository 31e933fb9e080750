//! The SSH side of the hub: agents dial in here.
//!
//! - [`serve`]: our own accept loop (not russh's `run_on_address`): accepted
//!   connections wait in a bounded queue for one of a capped number of
//!   handshake slots, with a cap per source address and an absolute
//!   authentication deadline from the accept ([`deadline`]).
//! - [`algorithms`]: the key exchanges, ciphers, MACs and host keys offered:
//!   only what agents and OpenSSH clients need.
//! - [`sources`]: caps per source address and prefix, and penalties for
//!   sources whose connections fail authentication or time out.
//! - [`handler`]: the thin russh `Handler`: public-key auth against the store,
//!   every channel, request and forwarding refused; it also reads the control
//!   channel, through [`tap`].
//! - [`push`]: snapshots, events and deploy outcomes an agent pushes.
//! - [`prune`]: used and expired join tokens deleted after a retention.
//! - [`recheck`]: the key checked again after the hello.
//! - [`tap`]: the control channel read in the session's own task: answers
//!   straight to their waiters, the rest queued for the connection's task.
//! - [`session`]: one task per authenticated connection: the control channel
//!   (hello, heartbeats) and registration, or the enrolment exchange.

pub mod acceptor;
pub mod algorithms;
pub mod deadline;
pub mod enrol;
pub mod handler;
pub mod prune;
pub mod push;
pub mod recheck;
pub mod seqs;
pub mod session;
pub mod sources;
pub mod tap;

#[cfg(test)]
mod future_size;

use crate::limits::{
    ACCEPT_QUEUE, INACTIVITY_TIMEOUT, KEEPALIVE_INTERVAL, KEEPALIVE_MAX, MAX_AUTH_ATTEMPTS,
    MAX_PACKET,
};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use russh::keys::PrivateKey;
use russh::{MethodKind, MethodSet};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tracing::{debug, error, info, info_span, Instrument};

use crate::Services;

/// The russh server configuration of the hub.
pub fn server_config(host_key: PrivateKey) -> russh::server::Config {
    let mut methods = MethodSet::empty();
    methods.push(MethodKind::PublicKey);
    russh::server::Config {
        methods,
        // OpenSSH-style clients probe with "none" first: answer at once, but
        // keep russh's constant-time delay for real rejections.
        auth_rejection_time: crate::limits::AUTH_REJECTION_TIME,
        auth_rejection_time_initial: Some(Duration::ZERO),
        keys: vec![host_key],
        max_auth_attempts: MAX_AUTH_ATTEMPTS,
        inactivity_timeout: Some(INACTIVITY_TIMEOUT),
        keepalive_interval: Some(KEEPALIVE_INTERVAL),
        keepalive_max: KEEPALIVE_MAX,
        nodelay: true,
        // Agents' channel packets up to 128 KiB (russh's default 32 KiB, as
        // OpenSSH's; both read up to 256 KiB): a streamed 64 KiB log chunk
        // is one packet instead of three.
        maximum_packet_size: MAX_PACKET,
        preferred: algorithms::preferred(),
        ..Default::default()
    }
}

/// Held while a connection is unauthenticated: its handshake slot and its
/// place in its source's counts.
pub struct PreAuthSlot {
    _permit: tokio::sync::OwnedSemaphorePermit,
    source: sources::SourceSlot,
    /// Set when a key was refused on this connection.
    failed: Arc<AtomicBool>,
}

impl PreAuthSlot {
    /// A key was refused on this connection.
    pub fn auth_failed(&self) {
        self.failed.store(true, Ordering::Release);
    }

    /// The connection authenticated: its source is trusted from now on.
    pub fn authenticated(&self) {
        let (table, ip) = (self.source.table(), self.source.ip());
        table.authenticated(ip, Instant::now());
    }
}

/// The source limits from the hub's configuration.
fn source_limits(config: &crate::HubConfig) -> sources::SourceLimits {
    sources::SourceLimits {
        per_ip: config.max_handshakes_per_ip,
        per_prefix: config.max_handshakes_per_prefix,
        v4_prefix: config.source_prefix_v4,
        v6_prefix: config.source_prefix_v6,
    }
}

/// What a connection that ended unauthenticated counts against its source.
fn offence(failed: bool, opened: Instant, deadline: Duration) -> Option<sources::Offence> {
    if failed {
        Some(sources::Offence::AuthFailed)
    } else if opened.elapsed() >= deadline {
        Some(sources::Offence::DeadlineExceeded)
    } else {
        None
    }
}

/// Accept agents until `svc.cancel` fires.
pub async fn serve(listener: TcpListener, svc: Arc<Services>, host_key: PrivateKey) {
    let config = Arc::new(server_config(host_key));
    let slots = Arc::new(Semaphore::new(svc.config.max_handshakes));
    let queue = Arc::new(Semaphore::new(ACCEPT_QUEUE));
    let sources = sources::Sources::new(source_limits(&svc.config));
    let span = info_span!("join-token-prune");
    svc.tracker.spawn(prune::run(svc.clone()).instrument(span));
    let mut accepted = match acceptor::start(listener, queue, svc.cancel.clone()) {
        Ok(r) => r,
        Err(e) => {
            error!(error = %e, "cannot start the SSH acceptor");
            return;
        }
    };
    loop {
        let acceptor::Accepted {
            socket,
            peer,
            queued,
        } = tokio::select! {
            a = accepted.next() => match a { Some(a) => a, None => break },
            _ = svc.cancel.cancelled() => break,
        };
        let ip = peer.ip();
        let opened = Instant::now();
        // Counted from here until authenticated or closed, whichever path ends it.
        let source = match sources.admit(ip, opened) {
            Ok(slot) => slot,
            Err(why) => {
                let refused = &svc.metrics.handshakes_refused;
                refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                debug!(%peer, %why, "closing at accept");
                continue;
            }
        };
        let failed = Arc::new(AtomicBool::new(false));
        let _ = socket.set_nodelay(true);
        let authenticated = Arc::new(AtomicBool::new(false));
        // The deadline starts now: time spent waiting for a slot counts.
        let stream =
            deadline::DeadlineStream::new(socket, svc.config.auth_deadline, authenticated.clone());
        let (svc2, config, slots) = (svc.clone(), config.clone(), slots.clone());
        let (table, authed) = (sources.clone(), authenticated.clone());
        let span = info_span!("ssh", %peer);
        svc.tracker.spawn(
            async move {
                let wait = tokio::time::timeout(svc2.config.auth_deadline, slots.acquire_owned());
                let permit = tokio::select! {
                    p = wait => match p {
                        Ok(Ok(p)) => p,
                        Ok(Err(_)) => return,
                        Err(_) => {
                            debug!("no handshake slot before the authentication deadline; closing");
                            return;
                        }
                    },
                    _ = svc2.cancel.cancelled() => return,
                };
                drop(queued);
                let slot = PreAuthSlot {
                    _permit: permit,
                    source,
                    failed: failed.clone(),
                };
                let deadline = svc2.config.auth_deadline;
                let handler = handler::SshHandler::new(svc2, peer, slot, authenticated);
                match russh::server::run_stream(config, stream, handler).await {
                    Ok(session) => {
                        if let Err(e) = session.await {
                            debug!(error = %e, "connection ended");
                        }
                    }
                    Err(e) => debug!(error = %e, "handshake failed"),
                }
                if !authed.load(Ordering::Acquire) {
                    if let Some(o) = offence(failed.load(Ordering::Acquire), opened, deadline) {
                        table.penalise(ip, o, Instant::now());
                    }
                }
            }
            .instrument(span),
        );
    }
    info!("SSH listener stopped");
}
