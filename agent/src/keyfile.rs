//! The agent's key and its rotation. A rotation writes the new key beside the
//! current one (`<key>.new`, 0600) and proves it by signing the hub's nonce;
//! only when the hub confirms that its store holds the new key is the file
//! renamed over the old one (atomic), so a crash or a lost confirmation leaves
//! both keys on disk and the dialler tries the pending one if the hub refuses
//! the current one.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use nextdeploy_shared::keys;
use russh::keys::ssh_key::LineEnding;
use russh::keys::{HashAlg, PrivateKey};

use crate::util::lock;

/// The SSHSIG namespace of rotation proofs (the hub checks the same).
pub const ROTATE_NAMESPACE: &str = "nextdeploy-rotate-key";

/// Why a step of a key rotation failed (the hub gets it as an `agent_error`).
#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    /// The new key could not be generated.
    #[error("{0}")]
    Generate(#[from] keys::KeyError),
    /// Signing the hub's nonce with the new key failed.
    #[error("cannot sign the nonce: {0}")]
    Sign(russh::keys::ssh_key::Error),
    /// The signature could not be encoded as PEM.
    #[error("cannot encode the signature: {0}")]
    EncodeSignature(russh::keys::ssh_key::Error),
    /// The new key could not be encoded in OpenSSH format.
    #[error("cannot encode the new key: {0}")]
    EncodeKey(russh::keys::ssh_key::Error),
    /// The pending key could not be written beside the current one.
    #[error("cannot write the new key: {0}")]
    Write(std::io::Error),
    /// A commit arrived without a prepared key.
    #[error("no key rotation in progress")]
    NothingPending,
    /// The hub confirmed a key other than the one prepared.
    #[error("the hub confirmed another key than the one prepared")]
    OtherKey,
    /// Renaming the pending key over the current one failed.
    #[error("cannot replace {}: {io}", path.display())]
    Replace {
        /// The key file.
        path: PathBuf,
        /// The rename's error.
        io: std::io::Error,
    },
}

/// The key file, the key in use and a pending rotation.
pub struct KeyFile {
    path: PathBuf,
    current: Mutex<Arc<PrivateKey>>,
    pending: Mutex<Option<Arc<PrivateKey>>>,
}

fn pending_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".new");
    PathBuf::from(p)
}

impl KeyFile {
    /// Load the key (and a pending one left by an unconfirmed rotation).
    pub fn load(path: &Path) -> anyhow::Result<KeyFile> {
        let key = keys::read_private(path).context("cannot load the agent key")?;
        let pending = keys::read_private(&pending_path(path)).ok().map(Arc::new);
        Ok(KeyFile {
            path: path.to_path_buf(),
            current: Mutex::new(Arc::new(key)),
            pending: Mutex::new(pending),
        })
    }

    /// The key to authenticate with.
    pub fn current(&self) -> Arc<PrivateKey> {
        lock(&self.current).clone()
    }

    /// The key of an unconfirmed rotation, if any.
    pub fn pending(&self) -> Option<Arc<PrivateKey>> {
        lock(&self.pending).clone()
    }

    /// Make a new key, keep it as pending (on disk, 0600) and sign `nonce`
    /// with it. Returns the public key line and the SSHSIG (PEM).
    pub fn prepare(&self, nonce: &str) -> Result<(String, String), RotateError> {
        let key = keys::generate(&format!("nextdeploy-agent@{}", crate::sysinfo::hostname()))?;
        let sig = key
            .sign(ROTATE_NAMESPACE, HashAlg::Sha512, nonce.as_bytes())
            .map_err(RotateError::Sign)?
            .to_pem(LineEnding::LF)
            .map_err(RotateError::EncodeSignature)?;
        let text = key
            .to_openssh(LineEnding::LF)
            .map_err(RotateError::EncodeKey)?;
        keys::write_private_atomic(&pending_path(&self.path), text.as_bytes())
            .map_err(RotateError::Write)?;
        let line = keys::public_line(key.public_key());
        *lock(&self.pending) = Some(Arc::new(key));
        Ok((line, sig))
    }

    /// The hub holds the pending key (`public_line`): make it current, on
    /// disk by an atomic rename.
    pub fn commit(&self, public_line: &str) -> Result<(), RotateError> {
        let mut pending = lock(&self.pending);
        let Some(key) = pending.clone() else {
            return Err(RotateError::NothingPending);
        };
        if keys::public_line(key.public_key()) != public_line.trim() {
            return Err(RotateError::OtherKey);
        }
        std::fs::rename(pending_path(&self.path), &self.path).map_err(|io| {
            RotateError::Replace {
                path: self.path.clone(),
                io,
            }
        })?;
        *lock(&self.current) = key;
        *pending = None;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepare_commit() {
        let dir = std::env::temp_dir().join(format!("nd-keyfile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("agent_ed25519");
        let _ = std::fs::remove_file(&path);
        keys::write_private(&keys::generate("t").unwrap(), &path).unwrap();
        let kf = KeyFile::load(&path).unwrap();
        let old = kf.current();
        let (line, pem) = kf.prepare("nonce-1").unwrap();
        let sig = russh::keys::ssh_key::SshSig::from_pem(&pem).unwrap();
        let public = keys::parse_public(&line).unwrap();
        public.verify(ROTATE_NAMESPACE, b"nonce-1", &sig).unwrap();
        assert!(public.verify(ROTATE_NAMESPACE, b"other", &sig).is_err());
        // not committed: the old key is still current, on disk too
        assert!(keys::same_key(kf.current().public_key(), old.public_key()));
        assert!(KeyFile::load(&path).unwrap().pending().is_some());
        assert!(kf.commit("ssh-ed25519 AAAAwrong").is_err());
        kf.commit(&line).unwrap();
        assert!(keys::same_key(kf.current().public_key(), &public));
        let reloaded = KeyFile::load(&path).unwrap();
        assert!(keys::same_key(reloaded.current().public_key(), &public));
        assert!(reloaded.pending().is_none());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
