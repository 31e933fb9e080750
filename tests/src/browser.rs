//! The dashboard's browser tests: Debian's Chromium driven by a script in
//! `web/e2e/` (playwright-core, installed by `npm ci` in web/ from
//! scripts/test.sh). [`node_script`] checks both are there and gives the
//! `node` command with the page's URL and the screenshot folder set.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{ensure, Result};

use crate::paths::{target_dir, workspace_root};

/// Where Debian's `chromium` package puts the browser.
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// Where the browser tests write their screenshots.
pub fn shots_dir() -> PathBuf {
    target_dir().join("dashboard-screenshots")
}

/// `node e2e/SCRIPT` run in web/, with `DASH_URL` (the dashboard at `url`)
/// and `DASH_SHOTS` (created); fails loudly when Chromium or the npm
/// packages are missing.
pub fn node_script(script: &str, url: &str) -> Result<Command> {
    let web = workspace_root().join("web");
    ensure!(
        web.join("node_modules/playwright-core").is_dir(),
        "web/node_modules is missing: run `npm ci` in web/ (scripts/test.sh does)"
    );
    ensure!(
        std::path::Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: apt-get install chromium (scripts/test.sh does)"
    );
    std::fs::create_dir_all(shots_dir())?;
    let mut cmd = Command::new("node");
    cmd.arg(format!("e2e/{script}"))
        .current_dir(web)
        .env("DASH_URL", url)
        .env("DASH_SHOTS", shots_dir());
    Ok(cmd)
}
