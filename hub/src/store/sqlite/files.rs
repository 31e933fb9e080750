//! The database's files are 0600 whatever the data directory's mode or the
//! umask: they hold token hashes, agents' keys and the audit log.

use std::fs::{OpenOptions, Permissions};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::store::StoreResult;

/// Owner read and write only.
const PRIVATE: u32 = 0o600;

/// Create the database file 0600 before SQLite opens it: SQLite gives the
/// `-wal` and `-shm` files it creates later the database file's mode.
pub(super) fn create_private(db: &Path) -> StoreResult<()> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(PRIVATE)
        .open(db)
        .map_err(|e| io_error(db, e))?;
    Ok(())
}

/// Set the database file and its `-wal` and `-shm` files (those present) to 0600.
pub(super) fn make_private(db: &Path) -> StoreResult<()> {
    for path in [
        db.to_path_buf(),
        with_suffix(db, "-wal"),
        with_suffix(db, "-shm"),
    ] {
        match std::fs::set_permissions(&path, Permissions::from_mode(PRIVATE)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error(&path, e)),
        }
    }
    Ok(())
}

fn with_suffix(db: &Path, suffix: &str) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn io_error(path: &Path, e: std::io::Error) -> crate::store::StoreError {
    crate::store::StoreError::Io(format!("{}: {e}", path.display()))
}
