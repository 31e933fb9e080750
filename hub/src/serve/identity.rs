//! What the hub is before it serves: its store, SSH host key and API
//! certificate; alone, from its data dir; in a cluster
//! (`--cluster-secret-file`), the cluster's, sealed in the shared store.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context};
use nextdeploy_shared::time::now_unix_ms;
use russh::keys::PrivateKey;
use tracing::{info, warn};

use super::api_tls::api_tls;
use super::store_url::StoreUrl;
use super::{host_key, HubArgs};
use crate::cluster::identity::{self, Identity, TlsPem};
use crate::cluster::seal::SealKey;
use crate::cluster::{secret, Cluster};
use crate::http::tls::{ApiTls, CERT_FILE, KEY_FILE};
use crate::store::cluster::HubRow;
use crate::store::SharedStore;

/// The hub's store and keys.
pub(super) struct Prepared {
    pub store: SharedStore,
    pub key: PrivateKey,
    /// The host key was made now.
    pub created: bool,
    pub tls: Option<Arc<ApiTls>>,
    /// The cluster's id, in a cluster.
    pub cluster_id: Option<String>,
    /// The key hubs of the cluster sign forwarded requests with.
    pub peer_key: Option<crate::cluster::peer_auth::PeerKey>,
    /// This hub may make the initial admin token: alone, or the hub that
    /// sealed the cluster's identity.
    pub first: bool,
}

/// Open the store and load (or make, or unseal) the keys.
pub(super) async fn prepare(
    args: &HubArgs,
    dir: &Path,
    http: SocketAddr,
) -> anyhow::Result<Prepared> {
    let url = args
        .store
        .clone()
        .unwrap_or_else(|| StoreUrl::in_data_dir(dir));
    let Some(secret_file) = &args.cluster_secret_file else {
        let (key, created) = host_key(dir)?;
        let store = url.open().await?;
        let s = store.clone();
        let sealed = tokio::task::spawn_blocking(move || s.cluster_item(identity::ITEM))
            .await
            .context("the store task failed")??;
        if sealed.is_some() {
            bail!("this store belongs to a cluster of hubs: start this hub with --cluster-secret-file, as the others");
        }
        let tls = api_tls(args, dir, http)?;
        return Ok(Prepared {
            store,
            key,
            created,
            tls,
            cluster_id: None,
            peer_key: None,
            first: true,
        });
    };
    let secret = secret::read(secret_file)?;
    let seal = SealKey::derive(secret.expose());
    let peer_key = crate::cluster::peer_auth::PeerKey::derive(secret.expose());
    drop(secret);
    let store = url.open().await?;
    let (args2, dir2) = (clone_tls_args(args), dir.to_path_buf());
    let s = store.clone();
    let (id, first) = tokio::task::spawn_blocking(move || {
        identity::join(s.as_ref(), &seal, || own(&args2, &dir2, http))
    })
    .await
    .context("the identity task failed")?
    .map_err(|e| match e {
        identity::IdentityError::Seal(s) => anyhow::anyhow!(
            "{s}: start this hub with the cluster secret file the other hubs of this store use"
        ),
        e => anyhow::Error::new(e),
    })?;
    let key = PrivateKey::from_openssh(id.host_key.as_bytes())
        .context("the cluster's sealed host key does not load")?;
    let tls = cluster_tls(args, dir, http, &id)?;
    if first {
        info!(cluster = %id.cluster_id, "sealed this hub's keys as the cluster's");
    }
    Ok(Prepared {
        store,
        key,
        created: false,
        tls,
        cluster_id: Some(id.cluster_id),
        peer_key: Some(peer_key),
        first,
    })
}

/// The flags [`own`] reads, owned for the blocking task.
struct TlsArgs {
    plain_http: bool,
    operator: bool,
    names: Vec<String>,
}

fn clone_tls_args(args: &HubArgs) -> TlsArgs {
    TlsArgs {
        plain_http: args.plain_http,
        operator: args.tls_cert.is_some(),
        names: args.api_names.clone(),
    }
}

/// This hub's identity, for a store that holds none: its data dir's host
/// key and generated certificate (made if absent).
fn own(args: &TlsArgs, dir: &Path, http: SocketAddr) -> Result<Identity, String> {
    let (key, _) = host_key(dir).map_err(|e| format!("{e:#}"))?;
    let host_key = key
        .to_openssh(russh::keys::ssh_key::LineEnding::LF)
        .map_err(|e| format!("cannot encode the host key: {e}"))?
        .to_string();
    let tls = if args.plain_http || args.operator {
        None
    } else {
        let names = crate::http::tls::default_names(http, &args.names);
        ApiTls::in_data_dir(dir, &names).map_err(|e| format!("{e:#}"))?;
        let read = |f: &str| {
            std::fs::read_to_string(dir.join(f)).map_err(|e| format!("cannot read {f}: {e}"))
        };
        Some(TlsPem {
            cert: read(CERT_FILE)?,
            key: read(KEY_FILE)?,
        })
    };
    Ok(Identity {
        cluster_id: hex::encode(rand::random::<[u8; 16]>()),
        host_key,
        tls,
    })
}

/// The API's TLS in a cluster: the operator's certificate or plain HTTP
/// as flagged, else the cluster's (so every hub has the same pin).
fn cluster_tls(
    args: &HubArgs,
    dir: &Path,
    http: SocketAddr,
    id: &Identity,
) -> anyhow::Result<Option<Arc<ApiTls>>> {
    if args.plain_http || args.tls_cert.is_some() {
        return api_tls(args, dir, http);
    }
    match &id.tls {
        Some(pem) => Ok(Some(Arc::new(ApiTls::from_pem(
            pem.cert.as_bytes(),
            pem.key.as_bytes(),
        )?))),
        None => {
            warn!("the cluster has no shared API certificate (its first hub used --plain-http or --tls-cert): this hub's own differs from the others'");
            api_tls(args, dir, http)
        }
    }
}

/// This hub's row in the cluster: a fresh id per start.
pub(super) fn cluster(
    cluster_id: String,
    peer_key: crate::cluster::peer_auth::PeerKey,
    ssh_address: String,
    api_url: String,
) -> Arc<Cluster> {
    let now = now_unix_ms();
    Cluster::new(
        cluster_id,
        peer_key,
        HubRow {
            id: hex::encode(rand::random::<[u8; 6]>()),
            ssh_address,
            api_url,
            started_at: now,
            heartbeat_at: now,
        },
    )
}
