//! Reading an OpenSSH `known_hosts` file for push-install's host-key check.
//! Lines are parsed by the `ssh-key` crate (markers, hashed names, keys);
//! matching follows OpenSSH: `host` on port 22, `[host]:port` otherwise,
//! comma-separated patterns with `*`/`?` and `!` negation (case-insensitive),
//! hashed names (`|1|salt|hash`, an HMAC-SHA1 of that form under the salt).
//! A file that exists but cannot be read, or a line that does not parse,
//! is an error naming the file and line: never taken for "no key recorded".

use std::path::Path;

use hmac::{Hmac, KeyInit, Mac};
use russh::keys::ssh_key::known_hosts::{Entry, HostPatterns, Marker};
use russh::keys::PublicKey;

/// Where the server's key stands against known_hosts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostKeyVerdict {
    /// Recorded and equal.
    Known,
    /// Not recorded; learned (written to known_hosts) because the operator asked.
    Learned,
    /// No key recorded for the host, and not learned.
    Unknown,
    /// The host has other keys recorded (of any algorithm), not this one
    /// (line number of the first in known_hosts).
    Changed(usize),
    /// This key is marked `@revoked` (line number).
    Revoked(usize),
    /// known_hosts could not be read or parsed (the reason, naming file and line).
    Unreadable(String),
}

/// The name an entry for `host`:`port` records, as OpenSSH writes it.
fn host_port(host: &str, port: u16) -> String {
    let host = host.to_ascii_lowercase();
    match port {
        22 => host,
        p => format!("[{host}]:{p}"),
    }
}

/// OpenSSH's glob: `*` any run, `?` one character.
fn glob(pattern: &[u8], name: &[u8]) -> bool {
    match (pattern.first(), name.first()) {
        (None, None) => true,
        (Some(b'*'), _) => {
            glob(&pattern[1..], name) || (!name.is_empty() && glob(pattern, &name[1..]))
        }
        (Some(b'?'), Some(_)) => glob(&pattern[1..], &name[1..]),
        (Some(p), Some(n)) if p == n => glob(&pattern[1..], &name[1..]),
        _ => false,
    }
}

/// Whether an entry's host patterns name `name` (a [`host_port`]).
fn names(patterns: &HostPatterns, name: &str) -> bool {
    match patterns {
        HostPatterns::HashedName { salt, hash } => Hmac::<sha1::Sha1>::new_from_slice(salt)
            .map(|m| m.chain_update(name.as_bytes()).verify_slice(hash).is_ok())
            .unwrap_or(false),
        HostPatterns::Patterns(list) => {
            let mut hit = false;
            for p in list {
                let p = p.to_ascii_lowercase();
                match p.strip_prefix('!') {
                    Some(neg) if glob(neg.as_bytes(), name.as_bytes()) => return false,
                    Some(_) => {}
                    None => hit |= glob(p.as_bytes(), name.as_bytes()),
                }
            }
            hit
        }
    }
}

/// The entries of `text` (from `path`), with their line numbers.
fn parse(text: &str, path: &Path) -> Result<Vec<(usize, Entry)>, String> {
    let mut entries = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split_once('#').map_or(line, |(l, _)| l).trim();
        if line.is_empty() {
            continue;
        }
        // The key's comment is not a field of ssh-key's entry: it is
        // dropped; tabs separate fields as well as spaces.
        let fields: Vec<&str> = line.split_whitespace().collect();
        let n = if fields.first().is_some_and(|f| f.starts_with('@')) {
            4
        } else {
            3
        };
        let kept = fields[..fields.len().min(n)].join(" ");
        let entry = kept
            .parse::<Entry>()
            .map_err(|e| format!("cannot parse {} line {}: {e}", path.display(), i + 1))?;
        entries.push((i + 1, entry));
    }
    Ok(entries)
}

/// Compare `key` with the known_hosts entries at `path` for `host`:`port`
/// (key data only: comments never count). A missing file records nothing.
pub fn verdict(host: &str, port: u16, key: &PublicKey, path: &Path) -> HostKeyVerdict {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => {
            return HostKeyVerdict::Unreadable(format!("cannot read {}: {e}", path.display()))
        }
    };
    let entries = match parse(&text, path) {
        Ok(e) => e,
        Err(why) => return HostKeyVerdict::Unreadable(why),
    };
    let name = host_port(host, port);
    let mut known = false;
    let mut changed = None;
    for (line, e) in entries
        .iter()
        .filter(|(_, e)| names(e.host_patterns(), &name))
    {
        let same = e.public_key().key_data() == key.key_data();
        match (e.marker(), same) {
            (Some(Marker::Revoked), true) => return HostKeyVerdict::Revoked(*line),
            (Some(_), _) => {}
            (None, true) => known = true,
            (None, false) => changed = changed.or(Some(*line)),
        }
    }
    match (known, changed) {
        (true, _) => HostKeyVerdict::Known,
        (false, Some(line)) => HostKeyVerdict::Changed(line),
        (false, None) => HostKeyVerdict::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use nextdeploy_shared::keys;

    fn write(dir: &Path, text: &str) -> std::path::PathBuf {
        let p = dir.join("known_hosts");
        std::fs::write(&p, text).unwrap();
        p
    }

    /// `|1|salt|hash` for `name`, as `ssh-keygen -H` writes it.
    fn hashed(name: &str) -> String {
        let salt = [7u8; 20];
        let h = Hmac::<sha1::Sha1>::new_from_slice(&salt)
            .unwrap()
            .chain_update(name.as_bytes())
            .finalize()
            .into_bytes();
        let b = base64::engine::general_purpose::STANDARD;
        format!("|1|{}|{}", b.encode(salt), b.encode(h))
    }

    #[test]
    fn ports_hashes_patterns_and_other_algorithms() {
        let dir = tempfile::tempdir().unwrap();
        let a = keys::generate("a").unwrap();
        let a = a.public_key();
        let b = keys::generate("b").unwrap();
        let b = b.public_key();
        let a_text = a.to_openssh().unwrap();
        let b_text = b.to_openssh().unwrap();
        // Another algorithm recorded for the host: a changed key.
        let ecdsa = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBHwf2HMM5TRXvo2SQJjsNkiDD5KqiiNjrGVv3UUh+mMT5RHxiRtOnlqvjhQtBq0VpmpCV/PwUdhOig4vkbqAcEc=";
        let p = write(dir.path(), &format!("srv {ecdsa}\n"));
        assert_eq!(verdict("srv", 22, a, &p), HostKeyVerdict::Changed(1));
        // [host]:port matches that port only; plain host is port 22.
        let p = write(
            dir.path(),
            &format!("# c\n[srv]:2200 {a_text} x\nsrv {b_text}\n"),
        );
        assert_eq!(verdict("srv", 2200, a, &p), HostKeyVerdict::Known);
        assert_eq!(verdict("SRV", 2200, a, &p), HostKeyVerdict::Known);
        assert_eq!(verdict("srv", 2201, a, &p), HostKeyVerdict::Unknown);
        assert_eq!(verdict("srv", 22, a, &p), HostKeyVerdict::Changed(3));
        assert_eq!(verdict("srv", 22, b, &p), HostKeyVerdict::Known);
        // Hashed names, for port 22 and another.
        let p = write(
            dir.path(),
            &format!(
                "{} {a_text}\n{}\t{b_text}\n",
                hashed("srv"),
                hashed("[srv]:2200")
            ),
        );
        assert_eq!(verdict("srv", 22, a, &p), HostKeyVerdict::Known);
        assert_eq!(verdict("srv", 2200, a, &p), HostKeyVerdict::Changed(2));
        assert_eq!(verdict("other", 22, a, &p), HostKeyVerdict::Unknown);
        // Globs and negation; revoked and CA lines.
        let p = write(
            dir.path(),
            &format!(
                "*.lan,!bad.lan {a_text}\n@revoked x.lan {b_text}\n@cert-authority * {b_text}\n"
            ),
        );
        assert_eq!(verdict("x.lan", 22, a, &p), HostKeyVerdict::Known);
        assert_eq!(verdict("bad.lan", 22, a, &p), HostKeyVerdict::Unknown);
        assert_eq!(verdict("x.lan", 22, b, &p), HostKeyVerdict::Revoked(2));
        assert_eq!(verdict("y.lan", 22, b, &p), HostKeyVerdict::Changed(1));
    }

    #[test]
    fn unreadable_or_unparsable_files_are_errors_naming_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let a = keys::generate("a").unwrap();
        let a = a.public_key();
        let missing = dir.path().join("none");
        assert_eq!(verdict("srv", 22, a, &missing), HostKeyVerdict::Unknown);
        let p = write(
            dir.path(),
            &format!(
                "other {}\nsrv ssh-ed25519 AAAA!!\n",
                a.to_openssh().unwrap()
            ),
        );
        let HostKeyVerdict::Unreadable(why) = verdict("other", 22, a, &p) else {
            panic!("a bad line must not be skipped");
        };
        assert!(why.contains(&format!("{} line 2", p.display())), "{why}");
        let HostKeyVerdict::Unreadable(why) = verdict("srv", 22, a, dir.path()) else {
            panic!("a directory is not a known_hosts file");
        };
        assert!(why.contains("cannot read"), "{why}");
        std::fs::write(&p, [0xffu8, 0xfe, b'\n']).unwrap();
        assert!(matches!(
            verdict("srv", 22, a, &p),
            HostKeyVerdict::Unreadable(_)
        ));
    }
}
