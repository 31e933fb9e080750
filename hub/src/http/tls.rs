//! TLS on the API: the certificate (made on the first start of an empty
//! data dir, or the operator's own), its pin, and a listener that hands
//! axum connections whose handshake is done.
//!
//! Handshakes run in tasks of their own (bounded in number and time), so a
//! slow or silent client never holds up the accept loop; finished ones are
//! queued to `axum::serve` through [`TlsListener`]. SIGHUP reloads an
//! operator's certificate: new connections get it, open ones keep theirs.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::{bail, Context};
use nextdeploy_shared::keys::write_private_atomic;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

/// The generated certificate, in the data dir.
pub const CERT_FILE: &str = "api-cert.pem";
/// Its key (0600).
pub const KEY_FILE: &str = "api-key.pem";
/// Time a client has to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// TLS handshakes in progress at once (each holds a task and a socket).
const MAX_TLS_HANDSHAKES: usize = 256;
/// Finished handshakes waiting for axum to take them.
const ACCEPTED_QUEUE: usize = 64;

/// Where the certificate comes from.
#[derive(Debug, Clone)]
enum Source {
    /// Made by the hub in its data dir.
    Generated,
    /// The operator's files (`--tls-cert`, `--tls-key`), reloaded on SIGHUP.
    Files { cert: PathBuf, key: PathBuf },
    /// The cluster's, unsealed from the store (`--cluster-secret-file`).
    Cluster,
}

/// The API's TLS state: the current server config and its pin.
#[derive(Debug)]
pub struct ApiTls {
    source: Source,
    current: RwLock<(Arc<ServerConfig>, String)>,
}

impl ApiTls {
    /// The operator's certificate and key.
    pub fn from_files(cert: &Path, key: &Path) -> anyhow::Result<ApiTls> {
        let source = Source::Files {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
        };
        let (config, pin) = load_files(cert, key)?;
        Ok(ApiTls {
            source,
            current: RwLock::new((config, pin)),
        })
    }

    /// The data dir's certificate, made for `names` on the first start (a
    /// key without its certificate, or the reverse, is refused: the pin
    /// clients saved would silently change).
    pub fn in_data_dir(dir: &Path, names: &[String]) -> anyhow::Result<(ApiTls, bool)> {
        let (cert, key) = (dir.join(CERT_FILE), dir.join(KEY_FILE));
        let created = match (cert.exists(), key.exists()) {
            (true, true) => false,
            (false, false) => {
                generate(names, &cert, &key)?;
                true
            }
            _ => bail!(
                "{} holds only one of {CERT_FILE} and {KEY_FILE}; refusing to make a new key, which would change the API pin every client saved. Restore both from a backup, or remove both to make a new pair.",
                dir.display()
            ),
        };
        let (config, pin) = load_files(&cert, &key)?;
        let tls = ApiTls {
            source: Source::Generated,
            current: RwLock::new((config, pin)),
        };
        Ok((tls, created))
    }

    /// The cluster's certificate and key (PEM), unsealed from the store.
    pub fn from_pem(cert: &[u8], key: &[u8]) -> anyhow::Result<ApiTls> {
        let (config, pin) = load_pem(cert, key, "the cluster's certificate")?;
        Ok(ApiTls {
            source: Source::Cluster,
            current: RwLock::new((config, pin)),
        })
    }

    /// `sha256:<hex>` of the certificate's public key.
    pub fn pin(&self) -> String {
        self.current.read().map(|c| c.1.clone()).unwrap_or_default()
    }

    fn config(&self) -> Option<Arc<ServerConfig>> {
        self.current.read().ok().map(|c| c.0.clone())
    }

    /// Read the operator's files again (SIGHUP); a bad pair keeps the old one.
    pub fn reload(&self) -> anyhow::Result<Option<String>> {
        let Source::Files { cert, key } = &self.source else {
            return Ok(None);
        };
        let (config, pin) = load_files(cert, key)?;
        if let Ok(mut c) = self.current.write() {
            *c = (config, pin.clone());
        }
        Ok(Some(pin))
    }
}

/// Make a self-signed certificate for `names` and write it (key 0600).
fn generate(names: &[String], cert: &Path, key: &Path) -> anyhow::Result<()> {
    let made = rcgen::generate_simple_self_signed(names.to_vec())
        .context("cannot make the API certificate")?;
    write_private_atomic(key, made.signing_key.serialize_pem().as_bytes())
        .with_context(|| format!("cannot write {}", key.display()))?;
    write_private_atomic(cert, made.cert.pem().as_bytes())
        .with_context(|| format!("cannot write {}", cert.display()))?;
    Ok(())
}

/// A server config and the pin of its leaf certificate.
fn load_files(cert: &Path, key: &Path) -> anyhow::Result<(Arc<ServerConfig>, String)> {
    let pem = std::fs::read(cert).with_context(|| format!("cannot read {}", cert.display()))?;
    let key_pem = std::fs::read(key).with_context(|| format!("cannot read {}", key.display()))?;
    load_pem(&pem, &key_pem, &cert.display().to_string())
}

/// [`load_files`] on the files' contents; `what` names them in errors.
fn load_pem(pem: &[u8], key_pem: &[u8], what: &str) -> anyhow::Result<(Arc<ServerConfig>, String)> {
    let chain: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut &pem[..])
        .collect::<Result<_, _>>()
        .with_context(|| format!("{what} is not a PEM certificate"))?;
    let Some(leaf) = chain.first() else {
        bail!("{what} holds no certificate");
    };
    let pin = nextdeploy_shared::tls::spki_pin(leaf).map_err(anyhow::Error::msg)?;
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut &key_pem[..])
        .ok()
        .flatten()
        .with_context(|| format!("the key of {what} is not a PEM private key"))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("the certificate and the key do not match")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((Arc::new(config), pin))
}

/// The names the generated certificate is for: this host, loopback, the
/// listen address when it names one, and the operator's `--api-name`s.
pub fn default_names(listen: SocketAddr, extra: &[String]) -> Vec<String> {
    let mut names = vec!["localhost".to_string(), "127.0.0.1".into(), "::1".into()];
    if let Ok(h) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
        names.push(h.trim().to_string());
    }
    if !listen.ip().is_unspecified() {
        names.push(listen.ip().to_string());
    }
    names.extend(extra.iter().cloned());
    let mut seen = std::collections::HashSet::new();
    names.retain(|n| !n.is_empty() && seen.insert(n.clone()));
    names
}

/// Connections whose handshake is done, for `axum::serve`.
pub struct TlsListener {
    rx: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    /// Accept on `listener` until `cancel`, handshaking with `tls`.
    pub fn spawn(listener: TcpListener, tls: Arc<ApiTls>, cancel: CancellationToken) -> Self {
        let local = listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        let (tx, rx) = mpsc::channel(ACCEPTED_QUEUE);
        tokio::spawn(accept_loop(listener, tls, tx, cancel));
        TlsListener { rx, local }
    }
}

async fn accept_loop(
    listener: TcpListener,
    tls: Arc<ApiTls>,
    tx: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
    cancel: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(MAX_TLS_HANDSHAKES));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let (tcp, peer) = tokio::select! {
            () = cancel.cancelled() => return,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::debug!(error = %e, "HTTPS accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Some(config) = tls.config() else { return };
        let tx = tx.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let _ = tcp.set_nodelay(true);
            let hs = TlsAcceptor::from(config).accept(tcp);
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, hs).await {
                Ok(Ok(stream)) => {
                    let _ = tx.send((stream, peer)).await;
                }
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        });
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(x) => x,
            // The accept loop ended (shutdown): nothing more will come.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}
