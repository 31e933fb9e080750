//! The operator's SSH session to a server for `agent install`: a russh client
//! with the operator's key that honours `known_hosts` (an unknown key refused
//! unless asked to learn it, a changed key always refused), and commands run
//! with bounded time, optional stdin and captured output.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use nextdeploy_shared::keys;
use russh::client::{self, Handle};
use russh::keys::{PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use russh::ChannelMsg;
use tokio::io::AsyncRead;

pub use super::known_hosts::{verdict, HostKeyVerdict};

/// Dialling plus the handshake.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// Drop a session silent this long (outlives the longest quiet remote step).
const INACTIVITY_TIMEOUT: Duration = Duration::from_secs(120);
/// Keepalives often enough that NATs and firewalls keep the session open.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(15);
/// Output kept per command (the tail beyond it is dropped).
const MAX_OUTPUT: usize = 256 * 1024;

/// How to check host keys.
#[derive(Debug, Clone)]
pub struct HostCheck {
    /// The known_hosts file.
    pub known_hosts: PathBuf,
    /// Write an unknown key to known_hosts and accept it.
    pub accept_new: bool,
}

struct Checker {
    host: String,
    port: u16,
    check: HostCheck,
    seen: Arc<Mutex<Option<(HostKeyVerdict, String)>>>,
}

impl client::Handler for Checker {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let PublicKeyOrCertificate::PublicKey { key, .. } = key else {
            return Ok(false);
        };
        let fp = keys::fingerprint(key);
        let mut v = verdict(&self.host, self.port, key, &self.check.known_hosts);
        if v == HostKeyVerdict::Unknown && self.check.accept_new {
            v = match russh::keys::known_hosts::learn_known_hosts_path(
                &self.host,
                self.port,
                key,
                &self.check.known_hosts,
            ) {
                Ok(()) => HostKeyVerdict::Learned,
                Err(_) => HostKeyVerdict::Unknown,
            };
        }
        let ok = matches!(v, HostKeyVerdict::Known | HostKeyVerdict::Learned);
        *self.seen.lock().unwrap_or_else(|p| p.into_inner()) = Some((v, fp));
        Ok(ok)
    }
}

/// An authenticated SSH session to the server.
pub struct Remote {
    handle: Handle<Checker>,
    /// What known_hosts said, and the key's fingerprint.
    pub host_key: (HostKeyVerdict, String),
}

/// What a remote command did.
#[derive(Debug)]
pub struct Ran {
    /// Exit status (255 if the server sent none).
    pub status: u32,
    /// Standard output (lossy UTF-8, capped).
    pub stdout: String,
    /// Standard error (lossy UTF-8, capped).
    pub stderr: String,
}

impl Ran {
    /// stdout and stderr, for error messages.
    pub fn output(&self) -> String {
        format!("{}{}", self.stdout, self.stderr).trim().to_string()
    }
}

impl Remote {
    /// Connect to `host:port`, check its key, log in as `user` with `identity`.
    pub async fn connect(
        user: &str,
        host: &str,
        port: u16,
        identity: &Path,
        check: HostCheck,
    ) -> anyhow::Result<Remote> {
        let key = russh::keys::load_secret_key(identity, None)
            .with_context(|| format!("cannot load the SSH key {} (encrypted keys are not supported; use an unencrypted key or ssh-agent-free key file)", identity.display()))?;
        let seen = Arc::new(Mutex::new(None));
        let checker = Checker {
            host: host.to_string(),
            port,
            check: check.clone(),
            seen: seen.clone(),
        };
        let config = Arc::new(client::Config {
            inactivity_timeout: Some(INACTIVITY_TIMEOUT),
            keepalive_interval: Some(KEEPALIVE_INTERVAL),
            nodelay: true,
            ..Default::default()
        });
        let conn = client::connect(config, (host, port), checker);
        let result = tokio::time::timeout(CONNECT_TIMEOUT, conn).await;
        let host_key = seen.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let mut handle = match (result, host_key.clone()) {
            (Err(_), _) => bail!("connecting to {host}:{port} timed out"),
            (Ok(Err(_)), Some((HostKeyVerdict::Changed(line), fp))) => bail!(
                "the host key of {host}:{port} CHANGED: it presented {fp}, but {} line {line} records another key. Someone may be intercepting the connection; refusing (even with --accept-new-host-key). If the server was really reinstalled, remove that line and verify the new key out of band.",
                check.known_hosts.display()
            ),
            (Ok(Err(_)), Some((HostKeyVerdict::Unknown, fp))) => bail!(
                "the host key of {host}:{port} ({fp}) is not in {}; verify it out of band and pass --accept-new-host-key to record it",
                check.known_hosts.display()
            ),
            (Ok(Err(_)), Some((HostKeyVerdict::Revoked(line), fp))) => bail!(
                "the host key of {host}:{port} ({fp}) is marked @revoked in {} line {line}; refusing",
                check.known_hosts.display()
            ),
            (Ok(Err(_)), Some((HostKeyVerdict::Unreadable(why), _))) => bail!(
                "cannot check the host key of {host}:{port}: {why}; refusing (fix or move the file)"
            ),
            (Ok(Err(e)), _) => bail!("cannot connect to {host}:{port}: {e}"),
            (Ok(Ok(h)), _) => h,
        };
        let host_key = host_key.ok_or_else(|| anyhow!("the server showed no host key"))?;
        let hash = handle
            .best_supported_rsa_hash()
            .await
            .ok()
            .flatten()
            .flatten();
        let auth = handle
            .authenticate_publickey(user, PrivateKeyWithHashAlg::new(Arc::new(key), hash))
            .await
            .map_err(|e| anyhow!("SSH authentication as {user} failed: {e}"))?;
        if !auth.success() {
            bail!(
                "{host}:{port} refused the key {} for {user}",
                identity.display()
            );
        }
        Ok(Remote { handle, host_key })
    }

    /// Run `command` through the remote shell, feeding `stdin` (then EOF),
    /// within `within`.
    pub async fn run(
        &self,
        command: &str,
        stdin: Option<Box<dyn AsyncRead + Unpin + Send>>,
        within: Duration,
    ) -> anyhow::Result<Ran> {
        let work = async {
            let channel = self.handle.channel_open_session().await?;
            let (mut read, write) = channel.split();
            write.exec(true, command).await?;
            // Read concurrently with writing: an unread channel stalls the connection.
            let reader = tokio::spawn(async move {
                let (mut out, mut err, mut status) = (Vec::new(), Vec::new(), None);
                while let Some(msg) = read.wait().await {
                    match msg {
                        ChannelMsg::Data { data } if out.len() < MAX_OUTPUT => {
                            out.extend_from_slice(&data)
                        }
                        ChannelMsg::ExtendedData { data, .. } if err.len() < MAX_OUTPUT => {
                            err.extend_from_slice(&data)
                        }
                        ChannelMsg::ExitStatus { exit_status } => status = Some(exit_status),
                        ChannelMsg::Close => break,
                        _ => {}
                    }
                }
                (out, err, status)
            });
            if let Some(r) = stdin {
                write.data(r).await?;
            }
            write.eof().await?;
            let (out, err, status) = reader.await.map_err(|e| anyhow!("reader task: {e}"))?;
            Ok::<Ran, anyhow::Error>(Ran {
                status: status.unwrap_or(255),
                stdout: String::from_utf8_lossy(&out).into_owned(),
                stderr: String::from_utf8_lossy(&err).into_owned(),
            })
        };
        tokio::time::timeout(within, work)
            .await
            .map_err(|_| anyhow!("timed out after {}s", within.as_secs()))?
    }

    /// Close the session.
    pub async fn close(self) {
        let _ = self
            .handle
            .disconnect(russh::Disconnect::ByApplication, "done", "en")
            .await;
    }
}

/// Quote for a POSIX shell.
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(sh_quote("a b"), "'a b'");
        assert_eq!(sh_quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn verdicts() {
        let dir = std::env::temp_dir().join(format!("nd-kh-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("known_hosts");
        let a = keys::generate("a").unwrap();
        let b = keys::generate("b").unwrap();
        assert_eq!(
            verdict("h", 2200, a.public_key(), &path),
            HostKeyVerdict::Unknown
        );
        russh::keys::known_hosts::learn_known_hosts_path("h", 2200, a.public_key(), &path).unwrap();
        assert_eq!(
            verdict("h", 2200, a.public_key(), &path),
            HostKeyVerdict::Known
        );
        assert!(matches!(
            verdict("h", 2200, b.public_key(), &path),
            HostKeyVerdict::Changed(_)
        ));
        assert_eq!(
            verdict("h", 22, a.public_key(), &path),
            HostKeyVerdict::Unknown
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
