//! The russh `Handler`: thin. It authenticates by public key against the store
//! and refuses everything a plain SSH client could ask for; the conversation
//! itself runs in [`super::session`]. The control channel's bytes are read
//! here, by the [`Tap`] the session hands over, so that answers reach their
//! waiters without a hop through the connection's task.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use nextdeploy_shared::keys;
use nextdeploy_shared::protocol::{ENROLL_USER_PREFIX, WITHDRAW_USER};
use nextdeploy_shared::time::now_unix;
use russh::keys::{Algorithm, PublicKey};
use russh::server::{Auth, Msg, PublicKeyOffer, Session, VerifiedPublicKey};
use russh::{Channel, ChannelId, Disconnect};
use tracing::{debug, info, warn, Instrument};

use super::session;
use super::tap::{Tap, TapSlot};
use super::PreAuthSlot;
use crate::limits::{ENROLL_LINGER, WITHDRAW_WINDOW};
use crate::store::{self, AgentRecord, AuditEntry, StoreError};
use crate::Services;

/// Who a connection authenticated as.
#[derive(Debug, Clone)]
pub enum Identity {
    /// An enrolled, unrevoked agent.
    Agent(AgentRecord),
    /// An agent that withdrew its recent enrolment (no session follows).
    Withdrawn {
        /// The name it had.
        name: String,
    },
    /// A new key presenting a join token id; it must still prove the secret.
    Enroll {
        /// The join token's id.
        token_id: String,
        /// The new key.
        key: PublicKey,
    },
}

/// One per TCP connection.
pub struct SshHandler {
    svc: Arc<Services>,
    peer: SocketAddr,
    slot: Option<PreAuthSlot>,
    authenticated: Arc<AtomicBool>,
    identity: Option<Identity>,
    /// Where the connection's task puts the control channel's reader
    /// (dropped once taken).
    tap_slot: Option<TapSlot>,
    /// The control channel's reader, once taken from the slot.
    tap: Option<Tap>,
}

impl SshHandler {
    /// A handler for a connection from `peer`.
    pub fn new(
        svc: Arc<Services>,
        peer: SocketAddr,
        slot: PreAuthSlot,
        authenticated: Arc<AtomicBool>,
    ) -> Self {
        SshHandler {
            svc,
            peer,
            slot: Some(slot),
            authenticated,
            identity: None,
            tap_slot: Some(TapSlot::default()),
            tap: None,
        }
    }

    /// A key was refused: the source earns a penalty if nothing authenticates.
    fn auth_failed(&self) {
        if let Some(slot) = &self.slot {
            slot.auth_failed();
        }
    }

    /// EOF or close from the agent: the end of the control channel, if it
    /// is that one.
    async fn channel_ended(&mut self, channel: ChannelId) {
        if let Some(tap) = self.tap_for(channel) {
            tap.closed().await;
        }
    }

    /// The control channel's reader if `channel` is that channel.
    fn tap_for(&mut self, channel: ChannelId) -> Option<&mut Tap> {
        if let (None, Some(slot)) = (&self.tap, &self.tap_slot) {
            self.tap = crate::sync::lock_or_recover(slot).take();
            if self.tap.is_some() {
                self.tap_slot = None;
            }
        }
        self.tap.as_mut().filter(|t| t.reads(channel))
    }

    /// `verified`: the client proved it holds `key` (only then does a
    /// withdrawal happen; an offer is only answered). A store error is not
    /// a refusal: the caller closes the connection and the agent tries
    /// again (or another hub) as after any failed dial, without the backoff
    /// and the penalty of a wrong key.
    async fn check(
        &self,
        user: &str,
        key: &PublicKey,
        verified: bool,
    ) -> Result<Option<Identity>, StoreError> {
        if key.algorithm() != Algorithm::Ed25519 {
            return Ok(None);
        }
        if user == WITHDRAW_USER {
            return self.withdraw(key, verified).await;
        }
        if let Some(token_id) = user.strip_prefix(ENROLL_USER_PREFIX) {
            let id = token_id.to_string();
            // A used, expired or deleted token authenticates nothing: no
            // conversation, no task, for a stranger who learnt an old id.
            // (A wrong secret is only found out in session::enroll.)
            let now = now_unix();
            let usable = store::blocking(&self.svc.store, move |s| s.join_token(&id))
                .await?
                .is_some_and(|t| t.used_at.is_none() && t.expires_at > now);
            return Ok(usable.then(|| Identity::Enroll {
                token_id: token_id.to_string(),
                key: key.clone(),
            }));
        }
        let line = keys::public_line(key);
        let rec = store::blocking(&self.svc.store, move |s| s.agent_by_key(&line)).await?;
        Ok(rec.filter(|r| r.revoked_at.is_none()).map(Identity::Agent))
    }

    /// The `WITHDRAW_USER` login: forget the agent holding `key` if it
    /// enrolled within [`WITHDRAW_WINDOW`] (once the key is proven).
    async fn withdraw(
        &self,
        key: &PublicKey,
        verified: bool,
    ) -> Result<Option<Identity>, StoreError> {
        let line = keys::public_line(key);
        let since = now_unix() - WITHDRAW_WINDOW.as_secs() as i64;
        if !verified {
            let rec = store::blocking(&self.svc.store, move |s| s.agent_by_key(&line)).await?;
            return Ok(rec
                .filter(|r| r.revoked_at.is_none() && r.enrolled_at >= since)
                .map(|r| Identity::Withdrawn { name: r.name }));
        }
        let Some(name) =
            store::blocking(&self.svc.store, move |s| s.withdraw_enrolment(&line, since)).await?
        else {
            return Ok(None);
        };
        let fingerprint = keys::fingerprint(key);
        info!(%name, %fingerprint, peer = %self.peer, "enrolment withdrawn by the agent");
        let entry = AuditEntry {
            at: now_unix(),
            actor: format!("agent:{name}"),
            action: "withdraw".into(),
            target: fingerprint,
            detail: format!("withdrew its enrolment as {name}; its join token is usable again"),
        };
        let _ = store::blocking(&self.svc.store, move |s| s.audit(&entry)).await;
        Ok(Some(Identity::Withdrawn { name }))
    }
}

/// A store error while checking a key: the connection is closed (not the
/// key refused), so the agent dials again as after any failed dial.
fn store_failed(e: StoreError) -> russh::Error {
    warn!(error = %e, "cannot check the key (store error): closing the connection");
    russh::Error::Disconnect
}

impl russh::server::Handler for SshHandler {
    type Error = russh::Error;

    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        offer: PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        Ok(match self.check(user, offer.public_key, false).await {
            Ok(Some(_)) => Auth::Accept,
            Ok(None) => {
                self.auth_failed();
                Auth::reject()
            }
            Err(e) => return Err(store_failed(e)),
        })
    }

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        match self.check(user, key.public_key, true).await {
            Err(e) => Err(store_failed(e)),
            Ok(Some(identity)) => {
                self.identity = Some(identity);
                Ok(Auth::Accept)
            }
            Ok(None) => {
                info!(fingerprint = %keys::fingerprint(key.public_key), "refused key");
                self.auth_failed();
                Ok(Auth::reject())
            }
        }
    }

    async fn auth_succeeded(&mut self, session: &mut Session) -> Result<(), Self::Error> {
        self.authenticated.store(true, Ordering::Release);
        // Authenticated connections no longer count against the handshake
        // caps, and their source is never penalised.
        if let Some(slot) = self.slot.take() {
            slot.authenticated();
        }
        let Some(identity) = self.identity.clone() else {
            return Err(russh::Error::NotAuthenticated);
        };
        if let Identity::Withdrawn { name } = &identity {
            // Nothing to serve: the agent hangs up; if it does not, the hub
            // does after ENROLL_LINGER (its key is gone, so it cannot retry).
            info!(%name, peer = %self.peer, "withdrawn agent connected; no session");
            let handle = session.handle();
            let span = tracing::info_span!("withdrawn", %name, peer = %self.peer);
            let cancel = self.svc.cancel.clone();
            self.svc.tracker.spawn(
                async move {
                    tokio::select! {
                        _ = tokio::time::sleep(ENROLL_LINGER) => {}
                        _ = cancel.cancelled() => {}
                    }
                    let _ = handle
                        .disconnect(
                            Disconnect::ByApplication,
                            "enrolment withdrawn".into(),
                            "en".into(),
                        )
                        .await;
                }
                .instrument(span),
            );
            return Ok(());
        }
        let handle = session.handle();
        let svc = self.svc.clone();
        let peer = self.peer;
        let span = match &identity {
            Identity::Agent(rec) => tracing::info_span!("agent", name = %rec.name, %peer),
            Identity::Enroll { token_id, .. } => {
                tracing::info_span!("enroll", token = %token_id, %peer)
            }
            Identity::Withdrawn { name } => tracing::info_span!("withdrawn", %name, %peer),
        };
        self.svc.tracker.spawn(
            session::run(
                svc,
                handle,
                identity,
                peer,
                self.tap_slot.clone().unwrap_or_default(),
            )
            .instrument(span),
        );
        Ok(())
    }

    async fn channel_open_session(
        &mut self,
        _channel: Channel<Msg>,
        reply: russh::server::ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        // The hub opens every channel; nobody gets a shell, exec or subsystem.
        warn!(peer = %self.peer, "refused a session channel opened by the client");
        drop(reply);
        Ok(())
    }

    async fn data(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        // The control channel is read here (see `tap`); every other channel
        // by its owner task.
        if let Some(tap) = self.tap_for(channel) {
            tap.data(data).await;
        }
        Ok(())
    }

    async fn channel_eof(
        &mut self,
        channel: ChannelId,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.channel_ended(channel).await;
        Ok(())
    }

    async fn channel_close(
        &mut self,
        channel: ChannelId,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.channel_ended(channel).await;
        Ok(())
    }

    async fn tcpip_forward(
        &mut self,
        address: &str,
        port: &mut u32,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        debug!(peer = %self.peer, address, port = *port, "refused remote forwarding");
        Ok(false)
    }

    async fn streamlocal_forward(
        &mut self,
        socket_path: &str,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        debug!(peer = %self.peer, socket_path, "refused streamlocal forwarding");
        Ok(false)
    }
}
