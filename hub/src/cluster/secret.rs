//! `--cluster-secret-file`: the random secret the operator copies to every
//! hub of a cluster. It must be the operator's alone (no group or other
//! permission bits) and long enough to be a key (see [`MIN_CLUSTER_SECRET_LEN`]).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use nextdeploy_shared::secret::Secret;

use crate::limits::MIN_CLUSTER_SECRET_LEN;

/// Why the secret file is refused.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// It cannot be read.
    #[error("cannot read the cluster secret file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Group or others may read or write it.
    #[error("the cluster secret file {path} is mode {mode:o}: make it readable by its owner only (chmod 600 {path})")]
    Open {
        /// The file.
        path: String,
        /// Its permission bits.
        mode: u32,
    },
    /// Too short to be a key.
    #[error("the cluster secret in {path} is {len} bytes: it must hold at least {MIN_CLUSTER_SECRET_LEN} (make one with: head -c 32 /dev/urandom | base64 > {path})")]
    Short {
        /// The file.
        path: String,
        /// Its length without surrounding whitespace.
        len: usize,
    },
}

/// Read the secret (surrounding whitespace, such as the final newline, trimmed).
pub fn read(path: &Path) -> Result<Secret<Vec<u8>>, SecretError> {
    let shown = path.display().to_string();
    let read_err = |source| SecretError::Read {
        path: shown.clone(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(read_err)?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(SecretError::Open { path: shown, mode });
    }
    let bytes = std::fs::read(path).map_err(read_err)?;
    let trimmed = bytes.trim_ascii();
    if trimmed.len() < MIN_CLUSTER_SECRET_LEN {
        return Err(SecretError::Short {
            path: shown,
            len: trimmed.len(),
        });
    }
    Ok(Secret::new(trimmed.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_open_or_short_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cluster.secret");
        std::fs::write(&path, "0123456789abcdef0123456789abcdef0123456789\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let e = read(&path).unwrap_err().to_string();
        assert!(e.contains("chmod 600"), "{e}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(
            read(&path).unwrap().expose().as_slice(),
            b"0123456789abcdef0123456789abcdef0123456789"
        );
        std::fs::write(&path, "short\n").unwrap();
        let e = read(&path).unwrap_err().to_string();
        assert!(e.contains("at least"), "{e}");
        let e = read(&dir.path().join("none")).unwrap_err().to_string();
        assert!(e.contains("cannot read"), "{e}");
    }
}
