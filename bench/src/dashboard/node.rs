//! One run of `web/bench/dashboard.mjs`: `node` under `timeout`, its JSON
//! lines read as they come, the part's `{"result": ...}` returned.

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::Value;

use crate::hub::workspace;

/// `node` and web's packages (playwright-core) are there, and Chromium.
pub fn check() -> anyhow::Result<()> {
    let ok = Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        bail!("`node` is not on PATH (the dashboard bench drives Chromium from Node)");
    }
    if !workspace()
        .join("web/node_modules/playwright-core")
        .is_dir()
    {
        bail!("web/node_modules/playwright-core is missing: run `npm ci` in web/");
    }
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !std::path::Path::new(&chromium).exists() {
        bail!("{chromium} is missing (set CHROMIUM to another Chromium)");
    }
    Ok(())
}

/// Run `part` with `env`, killed after `limit`; `on_line` sees every JSON
/// line before the result.
pub fn run(
    part: &str,
    env: &[(&str, &str)],
    limit: Duration,
    mut on_line: impl FnMut(&Value),
) -> anyhow::Result<Value> {
    let mut child = Command::new("timeout")
        .arg(limit.as_secs().to_string())
        .arg("node")
        .arg(super::script())
        .arg(part)
        .envs(env.iter().map(|(k, v)| (*k, *v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("run node")?;
    let out = child.stdout.take().context("no stdout")?;
    let mut result = None;
    for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
        let Ok(v) = serde_json::from_str::<Value>(&line) else {
            eprintln!("dashboard.mjs {part}: {line}");
            continue;
        };
        on_line(&v);
        if let Some(r) = v.get("result") {
            result = Some(r.clone());
        }
    }
    let status = child.wait()?;
    match result {
        Some(r) if status.success() => Ok(r),
        _ => {
            bail!("dashboard.mjs {part} failed ({status}; a status of 124 is the {limit:?} limit)")
        }
    }
}
