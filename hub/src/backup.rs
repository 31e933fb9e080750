//! `nextdeploy hub backup --to FILE` and `nextdeploy hub restore --from FILE
//! --data-dir DIR`. A backup is one ustar archive (mode 0600) holding a
//! consistent copy of the store (SQLite `VACUUM INTO`, safe while the hub runs:
//! it reads one snapshot of the WAL database) and the SSH host key, without
//! which the agents would refuse the restored hub. `tar -xf FILE -C DIR`
//! restores it as well.

mod restore;
pub use restore::restore;

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Subcommand;

use crate::cli::output::Output;
use crate::serve::{HOST_KEY_FILE, STORE_FILE};

/// The API's certificate and key, backed up when the hub made them.
const TLS_FILES: [&str; 2] = [crate::http::tls::CERT_FILE, crate::http::tls::KEY_FILE];

/// `nextdeploy hub backup|restore`.
#[derive(Debug, Subcommand)]
pub enum HubAction {
    /// Write a consistent copy of the store and the host key to FILE (0600).
    Backup {
        /// The archive to write (must not exist).
        #[arg(long)]
        to: PathBuf,
        /// The local data dir to back up (also accepted before `backup`).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Unpack a backup into an empty (or new) data dir.
    Restore {
        /// The archive written by `hub backup`.
        #[arg(long)]
        from: PathBuf,
        /// The local data dir to restore into (also accepted before `restore`).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Copy a hub's SQLite store into an empty PostgreSQL store (one
    /// transaction), for several hubs on one store.
    Migrate {
        /// The SQLite store (nextdeploy.db in the hub's data dir); stop its hub first.
        #[arg(long)]
        from: PathBuf,
        /// The PostgreSQL store (postgres://user:password@host:port/db), empty.
        #[arg(long, env = "NEXTDEPLOY_STORE", hide_env_values = true)]
        to: String,
    },
    /// The hubs of the cluster (a client command: it asks the hub named by
    /// --hub or the saved login).
    #[command(subcommand)]
    Cluster(crate::cli::cluster::ClusterCmd),
}

impl HubAction {
    /// `--data-dir` given after the subcommand.
    pub fn data_dir(&self) -> Option<&Path> {
        match self {
            HubAction::Backup { data_dir, .. } | HubAction::Restore { data_dir, .. } => {
                data_dir.as_deref()
            }
            HubAction::Migrate { .. } => None,
            HubAction::Cluster(_) => None,
        }
    }

    /// `backup` or `restore`.
    pub fn name(&self) -> &'static str {
        match self {
            HubAction::Backup { .. } => "backup",
            HubAction::Restore { .. } => "restore",
            HubAction::Migrate { .. } => "migrate",
            HubAction::Cluster(_) => "cluster",
        }
    }
}

/// Why a backup or restore failed.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The data dir lacks the store or the host key: nothing to back up.
    #[error(
        "{0} holds no hub store and host key (hub backup reads the data dir of a hub \
         on this machine; name it with --data-dir)"
    )]
    NoHub(PathBuf),
    /// The restore target already holds a hub, which a restore must not overwrite.
    #[error("{0} already holds a hub; restore into an empty directory")]
    NotEmpty(PathBuf),
    /// A file could not be opened, read or written.
    #[error("{what}: {source}")]
    Io {
        /// What was being done, naming the file.
        what: String,
        /// The system's reason.
        source: std::io::Error,
    },
    /// The store could not be migrated.
    #[error("{0}")]
    Store(#[from] crate::store::StoreError),
    /// SQLite could not open or snapshot the store.
    #[error("{what}: {source}")]
    Sqlite {
        /// What was being done.
        what: String,
        /// SQLite's reason.
        source: rusqlite::Error,
    },
    /// The archive is not a hub backup (a foreign member, a bad size, a
    /// missing store or key).
    #[error("{path} is not a NextDeploy hub backup: {why}")]
    NotBackup {
        /// The archive.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
}

/// The CLI's `--hub` and `--token` (or `NEXTDEPLOY_HUB`/`NEXTDEPLOY_TOKEN`),
/// which `hub backup|restore` does not use.
#[derive(Debug, Default)]
pub struct ClientFlags {
    /// `--hub`, if given.
    pub hub: Option<String>,
    /// Whether `--token` was given.
    pub token: bool,
}

/// Whether a hub URL points at this machine.
fn is_local_url(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or("");
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Tell the user, on stderr, that `hub backup|restore` works on the local
/// data dir `dir`, when they could think it talks to a hub: `--hub`/`--token`
/// given, or a saved login to a hub on another machine.
pub fn note_local(what: &str, dir: &Path, client: &ClientFlags) {
    let used = match (&client.hub, client.token) {
        (Some(url), _) => Some(format!("--hub {url}")),
        (None, true) => Some("--token".to_string()),
        (None, false) => None,
    };
    let told = match used {
        Some(flag) => format!("{flag} is not used"),
        None => match crate::cli::login::load_saved() {
            Ok(Some(l)) if !is_local_url(&l.hub) => {
                format!("the saved login to {} is not used", l.hub)
            }
            _ => return,
        },
    };
    eprintln!(
        "note: `hub {what}` does not talk to a hub: it works on the local data dir {} \
         ({told}); run it on the hub's machine, with --data-dir naming the hub's data dir",
        dir.display()
    );
}

/// Wrap an I/O error with what was being done.
fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> BackupError {
    let what = what.into();
    move |source| BackupError::Io { what, source }
}

/// Run a hub action against `data_dir`; with `--output json` the result is
/// `{"backup": FILE, "data_dir": DIR}` or `{"restored": FILE, "data_dir": DIR}`.
pub fn run(action: HubAction, data_dir: &Path, out: Output) -> Result<(), BackupError> {
    let (text, doc) = match action {
        HubAction::Backup { to, .. } => {
            backup(data_dir, &to)?;
            (
                format!(
                    "backup of {} written to {} (0600)",
                    data_dir.display(),
                    to.display()
                ),
                serde_json::json!({ "backup": to, "data_dir": data_dir }),
            )
        }
        HubAction::Restore { from, .. } => {
            restore(&from, data_dir)?;
            (
                format!(
                    "restored {} into {}; start the hub with --data-dir {}",
                    from.display(),
                    data_dir.display(),
                    data_dir.display()
                ),
                serde_json::json!({ "restored": from, "data_dir": data_dir }),
            )
        }
        HubAction::Migrate { from, to } => {
            let counts = crate::store::migrate::migrate(&from, &to)?;
            let shown = crate::store::postgres::url::redact(&to);
            let lines: Vec<String> = counts.iter().map(|(t, n)| format!("  {t}: {n}")).collect();
            let doc: serde_json::Map<String, serde_json::Value> = counts
                .iter()
                .map(|(t, n)| (t.to_string(), (*n).into()))
                .collect();
            (
                format!(
                    "copied {} into {shown}:\n{}\nstart the hubs with --store {shown}",
                    from.display(),
                    lines.join("\n")
                ),
                serde_json::json!({ "migrated": from, "to": shown, "rows": doc }),
            )
        }
        // A client command: `main` runs it through `cli::cluster`.
        HubAction::Cluster(_) => return Ok(()),
    };
    match out {
        Output::Json => println!("{doc:#}"),
        Output::Table => println!("{text}"),
    }
    Ok(())
}

/// Write the archive.
pub fn backup(data_dir: &Path, to: &Path) -> Result<(), BackupError> {
    let db = data_dir.join(STORE_FILE);
    let key = data_dir.join(HOST_KEY_FILE);
    if !db.is_file() || !key.is_file() {
        return Err(BackupError::NoHub(data_dir.to_path_buf()));
    }
    let key_bytes =
        std::fs::read(&key).map_err(io_err(format!("cannot read {}", key.display())))?;
    // The API's certificate and key, so that a restored hub keeps its pin.
    let mut extra = Vec::new();
    for name in TLS_FILES {
        let path = data_dir.join(name);
        if path.is_file() {
            let bytes =
                std::fs::read(&path).map_err(io_err(format!("cannot read {}", path.display())))?;
            extra.push((name, bytes));
        }
    }
    // The snapshot goes to a private folder beside the target, removed
    // however this ends (dropping it removes it).
    let (dir, snap) = private_snapshot(to)?;
    let result = snapshot_store(&db, &snap)
        .and_then(|db_bytes| write_archive(to, &db_bytes, &key_bytes, &extra));
    drop(dir);
    result
}

/// A new folder (0700, random name) beside `to` and in it an empty file
/// (0600) for the store's snapshot: no one else can read the copy, nor plant
/// a link where it is written.
fn private_snapshot(to: &Path) -> Result<(tempfile::TempDir, PathBuf), BackupError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let parent = match to.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let dir = tempfile::Builder::new()
        .prefix(".nextdeploy-backup-")
        .permissions(std::fs::Permissions::from_mode(0o700))
        .tempdir_in(parent)
        .map_err(io_err(format!(
            "cannot create a private folder in {}",
            parent.display()
        )))?;
    let snap = dir.path().join(STORE_FILE);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&snap)
        .map_err(io_err(format!("cannot create {}", snap.display())))?;
    Ok((dir, snap))
}

/// A consistent copy of the store at `db`, through `VACUUM INTO` at `snap`.
fn snapshot_store(db: &Path, snap: &Path) -> Result<Vec<u8>, BackupError> {
    let sqlite = |what: String| move |source| BackupError::Sqlite { what, source };
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(sqlite(format!("cannot open {}", db.display())))?;
    conn.busy_timeout(crate::limits::BACKUP_BUSY_TIMEOUT)
        .map_err(sqlite("cannot set the busy timeout".into()))?;
    conn.execute("VACUUM INTO ?1", [snap.to_string_lossy().as_ref()])
        .map_err(sqlite("cannot snapshot the store".into()))?;
    std::fs::read(snap).map_err(io_err(format!("cannot read {}", snap.display())))
}

/// Write the ustar archive `to` (0600, created new): the store, the host
/// key and the `extra` members.
fn write_archive(
    to: &Path,
    db_bytes: &[u8],
    key_bytes: &[u8],
    extra: &[(&str, Vec<u8>)],
) -> Result<(), BackupError> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(to)
        .map_err(io_err(format!(
            "cannot create {} (it must not exist)",
            to.display()
        )))?;
    let writing = io_err(format!("cannot write {}", to.display()));
    let mut w = std::io::BufWriter::new(file);
    let written = member(&mut w, STORE_FILE, db_bytes)
        .and_then(|()| member(&mut w, HOST_KEY_FILE, key_bytes))
        .and_then(|()| extra.iter().try_for_each(|(n, b)| member(&mut w, n, b)))
        .and_then(|()| w.write_all(&[0u8; 1024]))
        .and_then(|()| w.into_inner().map_err(|e| e.into_error()))
        .and_then(|f| f.sync_all());
    written.map_err(writing)
}

fn octal(field: &mut [u8], v: u64) {
    let s = format!("{:0width$o}\0", v, width = field.len() - 1);
    field.copy_from_slice(s.as_bytes());
}

/// One ustar member: header, data, padding to 512.
fn member(w: &mut impl Write, name: &str, data: &[u8]) -> std::io::Result<()> {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    octal(&mut h[100..108], 0o600);
    octal(&mut h[108..116], 0);
    octal(&mut h[116..124], 0);
    octal(&mut h[124..136], data.len() as u64);
    octal(
        &mut h[136..148],
        nextdeploy_shared::time::now_unix().max(0) as u64,
    );
    h[156] = b'0';
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u64 = h.iter().map(|b| *b as u64).sum();
    let s = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(s.as_bytes());
    w.write_all(&h)?;
    w.write_all(data)?;
    let pad = (512 - data.len() % 512) % 512;
    w.write_all(&vec![0u8; pad])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_urls_are_told_from_remote_ones() {
        for u in [
            "http://127.0.0.1:8080",
            "http://localhost:1",
            "http://[::1]:80/x",
        ] {
            assert!(is_local_url(u), "{u}");
        }
        for u in [
            "http://bastion:8080",
            "http://10.0.0.1:8080",
            "http://[2001:db8::1]:80",
        ] {
            assert!(!is_local_url(u), "{u}");
        }
    }

    #[test]
    fn backup_roundtrip() {
        let base = std::env::temp_dir().join(format!("nd-backup-{}", std::process::id()));
        let src = base.join("src");
        std::fs::create_dir_all(&src).unwrap();
        {
            let c = rusqlite::Connection::open(src.join(STORE_FILE)).unwrap();
            c.execute_batch(
                "PRAGMA journal_mode=WAL; CREATE TABLE t(x); INSERT INTO t VALUES (42);",
            )
            .unwrap();
        }
        std::fs::write(src.join(HOST_KEY_FILE), b"KEY").unwrap();
        let file = base.join("b.tar");
        backup(&src, &file).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(backup(&src, &file).is_err(), "must not overwrite");
        let dst = base.join("dst");
        restore(&file, &dst).unwrap();
        assert_eq!(std::fs::read(dst.join(HOST_KEY_FILE)).unwrap(), b"KEY");
        let c = rusqlite::Connection::open(dst.join(STORE_FILE)).unwrap();
        let x: i64 = c.query_row("SELECT x FROM t", [], |r| r.get(0)).unwrap();
        assert_eq!(x, 42);
        assert!(restore(&file, &dst).is_err(), "must not overwrite");
        let left: Vec<_> = std::fs::read_dir(&base)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            left.len(),
            3,
            "no snapshot left beside the archive: {left:?}"
        );
        let _ = std::fs::remove_dir_all(&base);
    }

    /// The snapshot's folder is 0700, its file 0600, and both are gone
    /// once dropped.
    #[test]
    fn the_snapshot_is_private_and_removed() {
        use std::os::unix::fs::PermissionsExt;
        let base = tempfile::tempdir().unwrap();
        let (dir, snap) = private_snapshot(&base.path().join("b.tar")).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(dir.path()), 0o700);
        assert_eq!(mode(&snap), 0o600);
        assert_eq!(snap.parent(), Some(dir.path()));
        let path = dir.path().to_path_buf();
        drop(dir);
        assert!(!path.exists());
        // A failed backup (the target exists) leaves nothing either.
        let src = base.path().join("src");
        std::fs::create_dir_all(&src).unwrap();
        rusqlite::Connection::open(src.join(STORE_FILE)).unwrap();
        std::fs::write(src.join(HOST_KEY_FILE), b"KEY").unwrap();
        std::fs::write(base.path().join("b.tar"), b"x").unwrap();
        assert!(backup(&src, &base.path().join("b.tar")).is_err());
        let left = std::fs::read_dir(base.path()).unwrap().count();
        assert_eq!(left, 2, "only src and b.tar");
    }
}
