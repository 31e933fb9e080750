//! Dialling the hub: one outbound SSH connection, the hub's host key checked
//! against the pin before anything is sent, and reconnection with exponential
//! backoff and full jitter (reset after a stable period).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nextdeploy_shared::keys::{self, KeyAnswer};
use nextdeploy_shared::limits::{BACKOFF_MAX, BACKOFF_MIN, BACKOFF_RESET_AFTER};
use nextdeploy_shared::readahead::ReadAhead;
use rand::RngExt;
use russh::client::{self, Msg, Session};
use russh::keys::{PrivateKey, PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use russh::{Channel, Disconnect};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::channel::{self, Ctx};
use crate::keyfile::KeyFile;
use nextdeploy_shared::protocol::KEY_CONFLICT_PREFIX;

use crate::limits::{
    BACKOFF_FLOOR, CONNECT_TIMEOUT, KEY_CONFLICT_BACKOFF, SSH_INACTIVITY_TIMEOUT,
    SSH_KEEPALIVE_INTERVAL, SSH_KEEPALIVE_MAX,
};
use crate::util::lock;

/// The russh client settings of the agent: keepalives so a dead hub is noticed
/// within ~45 s even without application traffic.
pub fn client_config() -> client::Config {
    client::Config {
        inactivity_timeout: Some(SSH_INACTIVITY_TIMEOUT),
        keepalive_interval: Some(SSH_KEEPALIVE_INTERVAL),
        keepalive_max: SSH_KEEPALIVE_MAX,
        nodelay: true,
        preferred: russh::Preferred {
            cipher: std::borrow::Cow::Borrowed(nextdeploy_shared::cipher::agent_ciphers()),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// Why dialling the hub failed.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    /// Dialling plus the SSH handshake took longer than allowed.
    #[error("connecting to the hub at {addr} timed out")]
    TimedOut {
        /// The hub's address.
        addr: String,
    },
    /// The hub's host key is not the pinned one (or is a certificate).
    #[error("{0}")]
    HostKey(String),
    /// The TCP connection or the SSH handshake failed.
    #[error("cannot connect to the hub at {addr}: {error}")]
    Connect {
        /// The hub's address.
        addr: String,
        /// What russh reported.
        error: russh::Error,
    },
    /// The authentication exchange itself failed.
    #[error("authentication with the hub failed: {0}")]
    Auth(russh::Error),
    /// The hub does not accept this key (unknown agent, or a rotated key).
    #[error("the hub refused this agent's key")]
    KeyRefused,
    /// The hub closed the connection before answering the key: it could
    /// not check it (its store did not answer). Not a refusal: dial again.
    #[error("the hub closed the connection before answering the key (it could not check it)")]
    NoAnswer,
}

/// Our russh client handler: pins the hub key, serves the channels the hub opens.
pub struct Handler {
    pin: String,
    mismatch: Arc<Mutex<Option<String>>>,
    ctx: Arc<Ctx>,
    /// The message of the hub's SSH disconnect, if it sent one.
    said: Said,
}

/// Where the hub's disconnect message is kept for [`run`].
pub type Said = Arc<Mutex<Option<String>>>;

impl client::Handler for Handler {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let PublicKeyOrCertificate::PublicKey { key, .. } = key else {
            *lock(&self.mismatch) =
                Some("the hub presented a certificate; a pinned plain key is expected".into());
            return Ok(false);
        };
        let got = keys::fingerprint(key);
        if got == self.pin {
            Ok(true)
        } else {
            *lock(&self.mismatch) = Some(format!(
                "hub host key mismatch: pinned {}, the hub presented {got}; refusing to talk to it",
                self.pin
            ));
            Ok(false)
        }
    }

    async fn server_channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: russh::client::ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        reply.accept().await;
        tokio::spawn(channel::serve(channel, self.ctx.clone()));
        Ok(())
    }

    async fn disconnected(
        &mut self,
        reason: client::DisconnectReason<Self::Error>,
    ) -> Result<(), Self::Error> {
        match reason {
            client::DisconnectReason::ReceivedDisconnect(info) => {
                *lock(&self.said) = Some(info.message);
                Ok(())
            }
            client::DisconnectReason::Error(e) => Err(e),
        }
    }
}

/// Connect, verify the pin and authenticate as `user` with `key`.
pub async fn dial(
    addr: &str,
    pin: &str,
    key: Arc<PrivateKey>,
    user: &str,
    ctx: Arc<Ctx>,
) -> Result<client::Handle<Handler>, DialError> {
    dial_keeping(addr, pin, key, user, ctx, Said::default()).await
}

/// [`dial`] the hubs of `addrs` in turn until one answers: the first
/// success, or an answer that another hub of the cluster would give too
/// (a refused key or host key), or the last address's error.
pub async fn dial_any(
    addrs: &[String],
    pin: &str,
    key: Arc<PrivateKey>,
    user: &str,
    ctx: Arc<Ctx>,
) -> Result<client::Handle<Handler>, DialError> {
    let mut last = None;
    for addr in addrs {
        match dial(addr, pin, key.clone(), user, ctx.clone()).await {
            Ok(h) => return Ok(h),
            Err(e @ (DialError::Connect { .. } | DialError::TimedOut { .. })) => {
                if addrs.len() > 1 {
                    warn!(hub = %addr, error = %e, "cannot connect; trying the next hub");
                }
                last = Some(e);
            }
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or(DialError::Connect {
        addr: String::new(),
        error: russh::Error::Disconnect,
    }))
}

/// Which hub of the list to dial next: the next after each failed dial
/// and after each lost connection (the hub it held may be gone); the
/// backoff waits only once every hub failed in a row.
#[derive(Debug)]
struct Rotation {
    addrs: Vec<String>,
    turn: usize,
    failed_in_row: usize,
}

impl Rotation {
    fn current(&self) -> &str {
        &self.addrs[self.turn % self.addrs.len()]
    }

    /// Move on after a dial that failed: whether a wait is due (every hub failed).
    fn failed(&mut self) -> bool {
        self.turn = self.turn.wrapping_add(1);
        self.failed_in_row += 1;
        if self.failed_in_row >= self.addrs.len() {
            self.failed_in_row = 0;
            return true;
        }
        false
    }

    /// Move on after a connection that ended: to one of the other hubs,
    /// drawn at random, so that the agents of a hub that died spread over
    /// the others instead of all dialling the same next one at once.
    fn ended(&mut self) {
        let n = self.addrs.len();
        if n > 1 {
            let skip = rand::rng().random_range(1..n);
            self.turn = self.turn.wrapping_add(skip);
        }
        self.failed_in_row = 0;
    }
}

/// [`dial`], keeping the hub's disconnect message in `said`.
async fn dial_keeping(
    addr: &str,
    pin: &str,
    key: Arc<PrivateKey>,
    user: &str,
    ctx: Arc<Ctx>,
    said: Said,
) -> Result<client::Handle<Handler>, DialError> {
    let mismatch = Arc::new(Mutex::new(None));
    let handler = Handler {
        pin: pin.to_string(),
        mismatch: mismatch.clone(),
        ctx,
        said,
    };
    let connect = async {
        let socket = tokio::net::TcpStream::connect(addr).await?;
        let _ = socket.set_nodelay(true);
        // One read per small packet instead of three (see `ReadAhead`).
        client::connect_stream(Arc::new(client_config()), ReadAhead::new(socket), handler).await
    };
    let mut handle = match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
        Err(_) => {
            return Err(DialError::TimedOut {
                addr: addr.to_string(),
            })
        }
        Ok(Err(error)) => {
            if let Some(m) = lock(&mismatch).take() {
                return Err(DialError::HostKey(m));
            }
            return Err(DialError::Connect {
                addr: addr.to_string(),
                error,
            });
        }
        Ok(Ok(h)) => h,
    };
    let auth = handle
        .authenticate_publickey(user, PrivateKeyWithHashAlg::new(key, None))
        .await
        .map_err(DialError::Auth)?;
    match KeyAnswer::of(&auth) {
        KeyAnswer::Accepted => Ok(handle),
        KeyAnswer::Refused => Err(DialError::KeyRefused),
        KeyAnswer::Closed => Err(DialError::NoAnswer),
    }
}

/// Full-jitter backoff: uniform in [0, min(max, min * 2^attempt)].
pub fn draw_backoff(attempt: u32) -> Duration {
    let ceiling = BACKOFF_MIN
        .saturating_mul(1u32.checked_shl(attempt.min(16)).unwrap_or(u32::MAX))
        .min(BACKOFF_MAX);
    let ms = rand::rng().random_range(0..=ceiling.as_millis() as u64);
    Duration::from_millis(ms).max(BACKOFF_FLOOR)
}

/// Stay connected to one of the hubs `addrs` until `shutdown`.
pub async fn run(
    addrs: Vec<String>,
    pin: String,
    keys: Arc<KeyFile>,
    ctx_for: impl Fn(CancellationToken) -> Arc<Ctx>,
    shutdown: CancellationToken,
) {
    let mut attempt: u32 = 0;
    if addrs.is_empty() {
        warn!("no hub address to connect to");
        return;
    }
    let mut rotation = Rotation {
        addrs,
        turn: 0,
        failed_in_row: 0,
    };
    loop {
        let addr = rotation.current().to_string();
        let started = Instant::now();
        let conn_cancel = shutdown.child_token();
        let user = nextdeploy_shared::protocol::AGENT_USER;
        let said = Said::default();
        let mut dialled = dial_keeping(
            &addr,
            &pin,
            keys.current(),
            user,
            ctx_for(conn_cancel.clone()),
            said.clone(),
        )
        .await;
        // A rotation whose confirmation was lost: the hub may hold the new key.
        if let (Err(DialError::KeyRefused), Some(pending)) = (&dialled, keys.pending()) {
            info!("the hub refused the current key; trying the key of an unconfirmed rotation");
            dialled = dial_keeping(
                &addr,
                &pin,
                pending.clone(),
                user,
                ctx_for(conn_cancel.clone()),
                said.clone(),
            )
            .await;
            if dialled.is_ok() {
                if let Err(e) = keys.commit(&keys::public_line(pending.public_key())) {
                    warn!(error = %e, "could not make the rotated key current");
                }
            }
        }
        match dialled {
            Ok(mut handle) => {
                info!(hub = %addr, "connected to the hub");
                tokio::select! {
                    r = &mut handle => match r {
                        Ok(()) => warn!("the hub closed the connection"),
                        Err(e) => warn!(error = %e, "connection to the hub lost"),
                    },
                    _ = conn_cancel.cancelled() => {
                        let why = if shutdown.is_cancelled() { "agent shutting down" } else { "hub heartbeat lost" };
                        info!(reason = why, "disconnecting");
                        let _ = handle.disconnect(Disconnect::ByApplication, why, "en").await;
                    }
                }
                conn_cancel.cancel();
                rotation.ended();
            }
            Err(e) => {
                warn!(hub = %addr, error = %e, "cannot connect to the hub");
                if !rotation.failed() && !shutdown.is_cancelled() {
                    continue; // another hub of the list first
                }
            }
        }
        if shutdown.is_cancelled() {
            break;
        }
        if started.elapsed() >= BACKOFF_RESET_AFTER {
            attempt = 0;
        }
        let delay = match lock(&said).take() {
            Some(m) if m.starts_with(KEY_CONFLICT_PREFIX) => {
                warn!(reason = %m, "the hub refused this connection: another agent is online with this agent's key; stop one of them (each needs its own enrolment)");
                KEY_CONFLICT_BACKOFF
            }
            Some(m) => {
                info!(reason = %m, "the hub ended the connection");
                draw_backoff(attempt)
            }
            None => draw_backoff(attempt),
        };
        attempt = attempt.saturating_add(1);
        info!(delay_ms = delay.as_millis() as u64, "reconnecting");
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.cancelled() => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_moves_on_and_waits_once_every_hub_failed() {
        let mut r = Rotation {
            addrs: vec!["a:1".into(), "b:1".into(), "c:1".into()],
            turn: 0,
            failed_in_row: 0,
        };
        assert_eq!(r.current(), "a:1");
        assert!(!r.failed());
        assert_eq!(r.current(), "b:1");
        r.ended(); // connected to b, then lost it: a or c, never b
        let next = r.current().to_string();
        assert!(next == "a:1" || next == "c:1", "{next}");
        assert!(!r.failed());
        assert!(!r.failed());
        assert!(r.failed(), "three failures in a row: wait");
        assert_eq!(r.current(), next, "round the list back to where it began");
        let mut one = Rotation {
            addrs: vec!["a:1".into()],
            turn: 0,
            failed_in_row: 0,
        };
        assert!(
            one.failed(),
            "one hub: the usual backoff after each failure"
        );
        one.ended();
        assert_eq!(one.current(), "a:1");
    }

    #[test]
    fn backoff_is_bounded_and_grows() {
        for attempt in 0..40 {
            let d = draw_backoff(attempt);
            assert!(d <= BACKOFF_MAX, "{attempt}: {d:?}");
        }
        // Early attempts stay under their ceiling.
        for _ in 0..100 {
            assert!(draw_backoff(0) <= Duration::from_secs(1));
            assert!(draw_backoff(2) <= Duration::from_secs(4));
        }
    }
}
