//! `nextdeploy hub restore`: unpack a backup's members into a data dir. Each
//! member's claimed size is checked (against its bound and against the bytes
//! the archive really holds) before anything is written, the data is
//! streamed to a private temporary file (0600) and renamed into place, and a
//! refused archive leaves nothing behind.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::{io_err, BackupError, TLS_FILES};
use crate::limits::{MAX_BACKUP_KEY_MEMBER, MAX_BACKUP_MEMBER};
use crate::serve::{HOST_KEY_FILE, STORE_FILE};

/// Unpack the store and host key into `data_dir` (created 0700; it must not
/// already hold a store).
pub fn restore(from: &Path, data_dir: &Path) -> Result<(), BackupError> {
    use std::os::unix::fs::PermissionsExt;
    if data_dir.join(STORE_FILE).exists() || data_dir.join(HOST_KEY_FILE).exists() {
        return Err(BackupError::NotEmpty(data_dir.to_path_buf()));
    }
    let mut f =
        std::fs::File::open(from).map_err(io_err(format!("cannot open {}", from.display())))?;
    // What a member may claim at most: the archive's remaining bytes (not
    // known for a pipe).
    let len = match f.metadata() {
        Ok(m) if m.is_file() => m.len(),
        _ => u64::MAX,
    };
    let preparing = format!("cannot prepare {}", data_dir.display());
    std::fs::create_dir_all(data_dir).map_err(io_err(preparing.clone()))?;
    std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(0o700))
        .map_err(io_err(preparing))?;
    let mut written = Vec::new();
    let result = unpack(&mut f, len, from, data_dir, &mut written);
    if result.is_err() {
        for p in &written {
            let _ = std::fs::remove_file(p);
        }
    }
    result
}

/// The members of archive `f` (`len` bytes, read from `from`) into
/// `data_dir`; the files written so far are added to `written`.
fn unpack(
    f: &mut std::fs::File,
    len: u64,
    from: &Path,
    data_dir: &Path,
    written: &mut Vec<PathBuf>,
) -> Result<(), BackupError> {
    let not_backup = |why: String| BackupError::NotBackup {
        path: from.to_path_buf(),
        why,
    };
    let mut seen: Vec<String> = Vec::new();
    let mut pos: u64 = 0;
    loop {
        let mut h = [0u8; 512];
        f.read_exact(&mut h).map_err(io_err("truncated backup"))?;
        pos += 512;
        if h.iter().all(|b| *b == 0) {
            break;
        }
        let (name, size) = header(&h).map_err(not_backup)?;
        check_member(&name, size, len.saturating_sub(pos), &seen).map_err(not_backup)?;
        let path = data_dir.join(&name);
        write_member(f, size, data_dir, &path)?;
        written.push(path);
        let pad = (512 - size % 512) % 512;
        std::io::copy(&mut (&mut *f).take(pad), &mut std::io::sink())
            .map_err(io_err("truncated backup"))?;
        pos += size + pad;
        seen.push(name);
    }
    if !seen.iter().any(|n| n == STORE_FILE) || !seen.iter().any(|n| n == HOST_KEY_FILE) {
        return Err(not_backup("it lacks the store or the host key".into()));
    }
    Ok(())
}

/// A ustar header's member name and claimed size.
fn header(h: &[u8; 512]) -> Result<(String, u64), String> {
    let name_end = h[..100].iter().position(|b| *b == 0).unwrap_or(100);
    let name = String::from_utf8_lossy(&h[..name_end]).into_owned();
    let size_text = String::from_utf8_lossy(&h[124..136]);
    let size = u64::from_str_radix(size_text.trim_matches(|c: char| c == '\0' || c == ' '), 8)
        .map_err(|_| format!("member {name:?} has a bad size field"))?;
    Ok((name, size))
}

/// Whether member `name` claiming `size` bytes may be unpacked, `left` bytes
/// remaining in the archive and `seen` members already unpacked. Checked
/// before anything of it is written.
fn check_member(name: &str, size: u64, left: u64, seen: &[String]) -> Result<(), String> {
    let bound = match name {
        STORE_FILE => MAX_BACKUP_MEMBER,
        HOST_KEY_FILE => MAX_BACKUP_KEY_MEMBER,
        n if TLS_FILES.contains(&n) => MAX_BACKUP_KEY_MEMBER,
        _ => return Err(format!("member {name:?} is not part of a hub backup")),
    };
    if seen.iter().any(|s| s == name) {
        return Err(format!("member {name:?} appears twice"));
    }
    if size > bound {
        return Err(format!(
            "member {name:?} claims {size} bytes, more than the {bound} a restore accepts"
        ));
    }
    if size > left {
        return Err(format!(
            "member {name:?} claims {size} bytes but only {left} remain (truncated)"
        ));
    }
    Ok(())
}

/// Stream `size` bytes of `f` into `path` through a private (0600)
/// temporary file in `dir`, removed if anything fails.
fn write_member(
    f: &mut std::fs::File,
    size: u64,
    dir: &Path,
    path: &Path,
) -> Result<(), BackupError> {
    let what = || format!("cannot write {}", path.display());
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io_err(what()))?;
    let copied =
        std::io::copy(&mut (&mut *f).take(size), tmp.as_file_mut()).map_err(io_err(what()))?;
    if copied != size {
        return Err(BackupError::Io {
            what: "truncated backup".into(),
            source: std::io::ErrorKind::UnexpectedEof.into(),
        });
    }
    tmp.as_file().sync_all().map_err(io_err(what()))?;
    tmp.persist(path).map_err(|e| BackupError::Io {
        what: what(),
        source: e.error,
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A member header for `name` claiming `size` bytes (none follow).
    fn claiming(name: &str, size: u64) -> Vec<u8> {
        let mut h = Vec::new();
        super::super::member(&mut h, name, &[]).unwrap();
        h[124..136].copy_from_slice(format!("{size:012o}").as_bytes());
        h
    }

    /// Restore `archive` into a fresh dir: the error, and the files left.
    fn refused(archive: &[u8]) -> (String, Vec<std::ffi::OsString>) {
        let base = tempfile::tempdir().unwrap();
        let from = base.path().join("b.tar");
        std::fs::write(&from, archive).unwrap();
        let dst = base.path().join("dst");
        let e = restore(&from, &dst).unwrap_err().to_string();
        let left = std::fs::read_dir(&dst)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        (e, left)
    }

    /// Oversize, overlong, foreign and repeated members are refused from
    /// their header, before anything is allocated or written; what an
    /// earlier member wrote is removed.
    #[test]
    fn bad_members_are_refused_and_nothing_is_left() {
        let mut store = Vec::new();
        super::super::member(&mut store, STORE_FILE, b"db").unwrap();
        let cases: [(Vec<u8>, &str); 5] = [
            (
                claiming(HOST_KEY_FILE, MAX_BACKUP_KEY_MEMBER + 1),
                "more than the 1048576",
            ),
            (
                claiming(STORE_FILE, MAX_BACKUP_MEMBER + 1),
                "more than the 17179869184",
            ),
            (claiming(STORE_FILE, 4096), "only 0 remain"),
            (
                [store.clone(), claiming("../evil", 0)].concat(),
                "not part of a hub backup",
            ),
            ([store.clone(), store.clone()].concat(), "appears twice"),
        ];
        for (archive, why) in cases {
            let (e, left) = refused(&archive);
            assert!(
                e.contains(why) && e.contains("not a NextDeploy hub backup"),
                "{e}"
            );
            assert!(left.is_empty(), "{e}: left {left:?}");
        }
    }

    /// A member within its bound is streamed to a 0600 file.
    #[test]
    fn members_land_0600() {
        use std::os::unix::fs::PermissionsExt;
        let mut a = Vec::new();
        super::super::member(&mut a, STORE_FILE, b"db").unwrap();
        super::super::member(&mut a, HOST_KEY_FILE, &[7u8; 600]).unwrap();
        a.extend_from_slice(&[0u8; 1024]);
        let base = tempfile::tempdir().unwrap();
        let from = base.path().join("b.tar");
        std::fs::write(&from, &a).unwrap();
        let dst = base.path().join("dst");
        restore(&from, &dst).unwrap();
        let key = dst.join(HOST_KEY_FILE);
        assert_eq!(std::fs::read(&key).unwrap(), vec![7u8; 600]);
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(std::fs::read_dir(&dst).unwrap().count(), 2);
    }
}
