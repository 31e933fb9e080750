//! The saved login (`~/.config/nextdeploy/login.json`, mode 0600), and
//! `NEXTDEPLOY_HUB` / `NEXTDEPLOY_TOKEN`, which override it.

use std::path::PathBuf;

use anyhow::{bail, Context};
use nextdeploy_shared::secret::Secret;
use serde::{Deserialize, Serialize};

/// Where to reach the hub and with which token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Login {
    /// `http://host:port`.
    pub hub: String,
    /// API token.
    pub token: String,
    /// The API certificate's pin (`sha256:<hex>`), for a hub whose
    /// certificate no system root vouches for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_pin: Option<String>,
}

/// The pin to trust for `hub`: NEXTDEPLOY_TLS_PIN, else the one saved with
/// this hub's login, else none (the system's roots).
pub fn tls_pin_for(hub: &str) -> anyhow::Result<Option<String>> {
    if let Some(p) = std::env::var("NEXTDEPLOY_TLS_PIN")
        .ok()
        .filter(|p| !p.is_empty())
    {
        return nextdeploy_shared::tls::parse_pin(&p)
            .map(Some)
            .map_err(|e| anyhow::anyhow!("NEXTDEPLOY_TLS_PIN: {e}"));
    }
    Ok(load_saved()?
        .filter(|l| l.hub.trim_end_matches('/') == hub.trim_end_matches('/'))
        .and_then(|l| l.tls_pin))
}

/// The directory of the CLI's configuration.
pub fn config_dir() -> anyhow::Result<PathBuf> {
    if let Some(d) = std::env::var_os("NEXTDEPLOY_CONFIG_DIR") {
        return Ok(PathBuf::from(d));
    }
    if let Some(d) = std::env::var_os("XDG_CONFIG_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(d).join("nextdeploy"));
    }
    match std::env::var_os("HOME") {
        Some(h) => Ok(PathBuf::from(h).join(".config").join("nextdeploy")),
        None => bail!("cannot find the config directory: set HOME or NEXTDEPLOY_CONFIG_DIR"),
    }
}

/// Path of the login file.
pub fn login_path() -> anyhow::Result<PathBuf> {
    Ok(config_dir()?.join("login.json"))
}

/// Read the saved login, if any.
pub fn load_saved() -> anyhow::Result<Option<Login>> {
    let path = login_path()?;
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            Ok(Some(serde_json::from_str(&text).with_context(|| {
                format!("{} is corrupt", path.display())
            })?))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Save a login with mode 0600 in a 0700 directory.
pub fn save(login: &Login) -> anyhow::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let dir = config_dir()?;
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700));
    let path = dir.join("login.json");
    let text = serde_json::to_vec_pretty(login)?;
    nextdeploy_shared::keys::write_private_atomic(&path, &text)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// Resolve hub and token: flags/env first, then the saved login.
pub fn resolve(
    hub: Option<String>,
    token: Option<String>,
) -> anyhow::Result<(String, Secret<String>)> {
    let saved = if hub.is_none() || token.is_none() {
        load_saved()?
    } else {
        None
    };
    let hub = hub
        .or_else(|| saved.as_ref().map(|l| l.hub.clone()))
        .context(
        "no hub configured: run `nextdeploy login --hub URL --token TOKEN` or set NEXTDEPLOY_HUB",
    )?;
    let token = token
        .or_else(|| saved.as_ref().map(|l| l.token.clone()))
        .context("no token configured: run `nextdeploy login` or set NEXTDEPLOY_TOKEN")?;
    Ok((hub, Secret::new(token)))
}
