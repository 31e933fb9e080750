//! The cluster's identity: its id, the SSH host key and the API certificate
//! every hub of it presents, sealed into the store as one item
//! ([`ITEM`]) so that it is written whole or not at all. The first hub
//! seals its own (insert-if-absent: of two hubs starting at once, one
//! writes and the other reads and opens the winner's); every other hub
//! opens it with its copy of the cluster secret.

use serde::{Deserialize, Serialize};

use super::seal::{SealError, SealKey};
use crate::store::{Store, StoreError};

/// The sealed item's name (also its associated data).
pub const ITEM: &str = "identity";

/// What the hubs of a cluster share.
#[derive(Serialize, Deserialize)]
pub struct Identity {
    /// Random, made by the first hub.
    pub cluster_id: String,
    /// The SSH host key (OpenSSH private key text).
    pub host_key: String,
    /// The generated API certificate and key (PEM), unless the first hub
    /// served plain HTTP or the operator's certificate.
    pub tls: Option<TlsPem>,
}

/// A certificate and its key, PEM.
#[derive(Serialize, Deserialize)]
pub struct TlsPem {
    /// The certificate.
    pub cert: String,
    /// Its key.
    pub key: String,
}

/// Why the identity cannot be had.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The secret does not open it.
    #[error(transparent)]
    Seal(#[from] SealError),
    /// It opened but is not an identity.
    #[error("the cluster's sealed identity is malformed: {0}")]
    Malformed(String),
    /// This hub's own could not be made.
    #[error("{0}")]
    Own(String),
}

/// The cluster's identity, and whether this call sealed it (the first hub).
/// `own` makes this hub's, called only when the store holds none.
pub fn join(
    store: &dyn Store,
    key: &SealKey,
    own: impl FnOnce() -> Result<Identity, String>,
) -> Result<(Identity, bool), IdentityError> {
    if let Some(sealed) = store.cluster_item(ITEM)? {
        return Ok((open(key, &sealed)?, false));
    }
    let mine = own().map_err(IdentityError::Own)?;
    let plain = serde_json::to_vec(&mine).map_err(|e| IdentityError::Own(e.to_string()))?;
    if store.insert_cluster_item(ITEM, &key.seal(ITEM, &plain))? {
        return Ok((mine, true));
    }
    // Another hub sealed first: its identity is the cluster's.
    let sealed = store
        .cluster_item(ITEM)?
        .ok_or_else(|| IdentityError::Malformed("written, then gone".into()))?;
    Ok((open(key, &sealed)?, false))
}

fn open(key: &SealKey, sealed: &[u8]) -> Result<Identity, IdentityError> {
    let plain = key.open(ITEM, sealed)?;
    serde_json::from_slice(&plain).map_err(|e| IdentityError::Malformed(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::cluster::ClusterStore;
    use crate::store::sqlite::SqliteStore;

    fn identity(id: &str) -> Identity {
        Identity {
            cluster_id: id.into(),
            host_key: format!("host key of {id}"),
            tls: None,
        }
    }

    #[test]
    fn the_first_seals_the_others_open_a_wrong_secret_fails() {
        let store = SqliteStore::in_memory().unwrap();
        let key = SealKey::derive(b"0123456789abcdef0123456789abcdef");
        let (first, sealed) = join(&store, &key, || Ok(identity("one"))).unwrap();
        assert!(sealed);
        assert_eq!(first.cluster_id, "one");
        let (second, sealed) = join(&store, &key, || Ok(identity("two"))).unwrap();
        assert!(!sealed);
        assert_eq!(second.cluster_id, "one");
        assert_eq!(second.host_key, "host key of one");
        let raw = store.cluster_item(ITEM).unwrap().unwrap();
        assert!(!raw.windows(8).any(|w| w == b"host key"), "sealed in clear");
        let wrong = SealKey::derive(b"another secret of thirty-two bytes");
        let e = join(&store, &wrong, || Ok(identity("three")))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("does not open"), "{e}");
    }

    #[test]
    fn a_loser_of_the_race_opens_the_winners() {
        let store = SqliteStore::in_memory().unwrap();
        let key = SealKey::derive(b"0123456789abcdef0123456789abcdef");
        // The winner writes between the loser's read and its insert.
        let (got, sealed) = join(&store, &key, || {
            let winner = serde_json::to_vec(&identity("winner")).unwrap();
            assert!(store
                .insert_cluster_item(ITEM, &key.seal(ITEM, &winner))
                .unwrap());
            Ok(identity("loser"))
        })
        .unwrap();
        assert!(!sealed);
        assert_eq!(got.cluster_id, "winner");
    }
}
