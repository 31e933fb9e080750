//! The first admin token's file (`<data-dir>/initial-admin-token`, 0600):
//! written at the first start for the person installing the hub, and removed
//! as soon as the token in it has logged in once ([`retire_on_first_use`]:
//! whoever read the file has it now), or once a second admin token exists
//! (`--local-agent` saved a CLI login) or the first one is revoked or
//! expired, so the secret does not stay on disk for good. The token is printed only to a terminal:
//! under systemd stdout is the journal, which the `adm` group reads.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nextdeploy_shared::keys;
use nextdeploy_shared::secret::Secret;
use nextdeploy_shared::time::now_unix;
use nextdeploy_shared::token;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::store::{self, Role, SharedStore};

/// How often the hub looks for a second admin token while the file exists:
/// one read of the small api_tokens table, and the file goes within seconds
/// of the person's own token.
pub const RETIRE_CHECK_INTERVAL: Duration = Duration::from_secs(5);

/// Write the file and say where it is (and the token itself on a terminal).
pub fn write(path: &Path, token: &Secret<String>) -> anyhow::Result<()> {
    keys::write_private_atomic(path, format!("{}\n", token.expose()).as_bytes())?;
    if std::io::stdout().is_terminal() {
        println!(
            "Initial admin token (shown once; also in {} until its first login):",
            path.display()
        );
        println!("  {}", token.expose());
    } else {
        // Not a terminal (a journal, a log file): the secret stays in the file.
        println!(
            "Initial admin token written to {} (0600; removed at its first login)",
            path.display()
        );
    }
    Ok(())
}

/// The name the first admin token is created with.
pub const INITIAL_TOKEN_NAME: &str = "initial-admin";

/// After API token `token_id` (named `name`) authenticated: if it is the
/// token in `<data_dir>/initial-admin-token`, remove the file. Best effort:
/// a failure is logged, and the periodic check still removes it later.
pub fn retire_on_first_use(data_dir: &Path, token_id: &str, name: &str) {
    // Names are not unique; the check is only a cheap filter before the read.
    if name != INITIAL_TOKEN_NAME {
        return;
    }
    let path = data_dir.join(super::INITIAL_TOKEN_FILE);
    let Ok(text) = std::fs::read_to_string(&path) else {
        return; // gone already
    };
    if token::parse(&text).ok().map(|t| t.id).as_deref() != Some(token_id) {
        return;
    }
    match std::fs::remove_file(&path) {
        Ok(()) => {
            info!(file = %path.display(), "removed the initial admin token file: its token has logged in")
        }
        Err(e) => {
            warn!(file = %path.display(), error = %e, "cannot remove the initial admin token file")
        }
    }
}

/// Remove `path` once the token in it is no longer the only admin token;
/// returns when it is gone or at shutdown.
pub async fn retire_when_replaced(store: SharedStore, path: PathBuf, cancel: CancellationToken) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(RETIRE_CHECK_INTERVAL) => {}
            _ = cancel.cancelled() => return,
        }
        let Ok(text) = std::fs::read_to_string(&path) else {
            return; // gone already (removed by hand, or never written)
        };
        let Ok(parsed) = token::parse(&text) else {
            return;
        };
        match replaced(&store, parsed.id).await {
            Ok(false) => {}
            Ok(true) => {
                match std::fs::remove_file(&path) {
                    Ok(()) => {
                        info!(file = %path.display(), "removed the initial admin token file: another admin token exists")
                    }
                    Err(e) => {
                        warn!(file = %path.display(), error = %e, "cannot remove the initial admin token file")
                    }
                }
                return;
            }
            Err(e) => warn!(error = %e, "cannot check the API tokens"),
        }
    }
}

/// Whether another usable admin token exists, or `initial_id` is unusable.
async fn replaced(store: &SharedStore, initial_id: String) -> store::StoreResult<bool> {
    let tokens = store::blocking(store, |s| s.list_api_tokens()).await?;
    let now = now_unix();
    let usable = |t: &&crate::store::ApiTokenRecord| {
        t.role == Role::Admin && t.revoked_at.is_none() && t.expires_at.is_none_or(|e| e > now)
    };
    let initial_usable = tokens.iter().filter(usable).any(|t| t.id == initial_id);
    let other = tokens.iter().filter(usable).any(|t| t.id != initial_id);
    Ok(other || !initial_usable)
}

/// On a fresh store, the initial admin token, written to `file` (0600).
pub async fn create_first(store: &crate::store::SharedStore, file: &Path) -> anyhow::Result<()> {
    if crate::store::blocking(store, |s| s.api_token_count()).await? != 0 {
        return Ok(());
    }
    let name = INITIAL_TOKEN_NAME;
    let role = crate::store::Role::Admin;
    let (_, token) = crate::api::admin::create_api_token(store, name, role, None, false).await?;
    write(file, &token)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_token_in_the_file_removes_it() {
        let dir = std::env::temp_dir().join(format!("nd-initial-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(crate::serve::INITIAL_TOKEN_FILE);
        let (id, text) = token::new_api_token();
        std::fs::write(&path, format!("{}\n", text.expose())).unwrap();
        let (other, _) = token::new_api_token();
        // Another token that took the name, and the right id under another name.
        retire_on_first_use(&dir, &other, INITIAL_TOKEN_NAME);
        retire_on_first_use(&dir, &id, "me");
        assert!(path.exists());
        retire_on_first_use(&dir, &id, INITIAL_TOKEN_NAME);
        assert!(!path.exists());
        // Gone already: nothing to do, no panic.
        retire_on_first_use(&dir, &id, INITIAL_TOKEN_NAME);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
