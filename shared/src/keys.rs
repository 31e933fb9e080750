//! Ed25519 keys in OpenSSH format and fingerprints as `ssh-keygen -lf` prints them.

use std::io::Write;
use std::path::Path;

use russh::keys::ssh_key::LineEnding;
use russh::keys::{Algorithm, HashAlg, PrivateKey, PublicKey};

/// What can go wrong with a key file.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Reading or writing the file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not a key we accept.
    #[error("{path}: {reason}")]
    Invalid {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
}

/// Generate a new ed25519 key pair.
pub fn generate(comment: &str) -> Result<PrivateKey, KeyError> {
    let mut key = PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519).map_err(|e| {
        KeyError::Invalid {
            path: "(new key)".into(),
            reason: e.to_string(),
        }
    })?;
    key.set_comment(comment);
    Ok(key)
}

/// Write a private key in OpenSSH format, mode 0600, created exclusively (an
/// existing file is never overwritten) and synced to disk.
pub fn write_private(key: &PrivateKey, path: &Path) -> Result<(), KeyError> {
    let io = |source| KeyError::Io {
        path: path.display().to_string(),
        source,
    };
    let pem = key
        .to_openssh(LineEnding::LF)
        .map_err(|e| KeyError::Invalid {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
    let mut f = create_private_file(path).map_err(io)?;
    f.write_all(pem.as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)?;
    Ok(())
}

/// Create a new file with mode 0600 that must not exist yet.
pub fn create_private_file(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

/// Write `contents` to `path` atomically with mode 0600 (temp file, then rename).
pub fn write_private_atomic(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    // Beside the target, named after its whole file name: two targets in one
    // directory never share a temp file.
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp{}", std::process::id()));
    let tmp = path.with_file_name(name);
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(contents)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// Read an ed25519 private key in OpenSSH format; other algorithms are refused.
pub fn read_private(path: &Path) -> Result<PrivateKey, KeyError> {
    let text = std::fs::read_to_string(path).map_err(|source| KeyError::Io {
        path: path.display().to_string(),
        source,
    })?;
    let key = PrivateKey::from_openssh(text.as_bytes()).map_err(|e| KeyError::Invalid {
        path: path.display().to_string(),
        reason: format!("not an OpenSSH private key: {e}"),
    })?;
    if key.algorithm() != Algorithm::Ed25519 {
        return Err(KeyError::Invalid {
            path: path.display().to_string(),
            reason: format!("{} keys are not accepted, only ed25519", key.algorithm()),
        });
    }
    if key.is_encrypted() {
        return Err(KeyError::Invalid {
            path: path.display().to_string(),
            reason: "the key is passphrase-protected".into(),
        });
    }
    Ok(key)
}

/// `SHA256:...` exactly as `ssh-keygen -lf` prints it.
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// The public key as one OpenSSH line without comment: `ssh-ed25519 AAAA...`.
pub fn public_line(key: &PublicKey) -> String {
    let mut k = key.clone();
    k.set_comment("");
    k.to_openssh()
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Parse an OpenSSH public key line; only ed25519 is accepted.
pub fn parse_public(line: &str) -> Result<PublicKey, String> {
    let key = PublicKey::from_openssh(line.trim()).map_err(|e| format!("bad public key: {e}"))?;
    if key.algorithm() != Algorithm::Ed25519 {
        return Err(format!(
            "{} keys are not accepted, only ed25519",
            key.algorithm()
        ));
    }
    Ok(key)
}

/// Whether two public keys are the same key (ignores comments).
pub fn same_key(a: &PublicKey, b: &PublicKey) -> bool {
    a.key_data() == b.key_data()
}

/// How a hub answered a key: accepted, refused, or the connection closed
/// before an answer (a hub whose store did not answer closes it rather
/// than refuse a key it could not check: dial again, not a wrong key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAnswer {
    /// Authenticated.
    Accepted,
    /// A USERAUTH_FAILURE: the hub does not accept this key.
    Refused,
    /// No answer: the connection ended first.
    Closed,
}

impl KeyAnswer {
    /// Read russh's result: it reports a session that ended during
    /// authentication as a failure with no method left to try, which a
    /// server's real refusal never is (it lists `publickey`).
    pub fn of(r: &russh::client::AuthResult) -> KeyAnswer {
        match r {
            russh::client::AuthResult::Success => KeyAnswer::Accepted,
            russh::client::AuthResult::Failure {
                remaining_methods, ..
            } if remaining_methods.is_empty() => KeyAnswer::Closed,
            russh::client::AuthResult::Failure { .. } => KeyAnswer::Refused,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generate_write_read_fingerprint() {
        let dir = std::env::temp_dir().join(format!("nd-keys-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("k");
        let key = generate("test").unwrap();
        write_private(&key, &path).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(write_private(&key, &path).is_err(), "never overwrites");
        let back = read_private(&path).unwrap();
        assert!(same_key(back.public_key(), key.public_key()));
        let fp = fingerprint(key.public_key());
        assert!(fp.starts_with("SHA256:") && fp.len() == 50, "{fp}");
        let line = public_line(key.public_key());
        assert!(line.starts_with("ssh-ed25519 "));
        let parsed = parse_public(&line).unwrap();
        assert_eq!(fingerprint(&parsed), fp);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
