//! The `--local-agent` companion: enrol (once) and run `nextdeploy-agent`
//! as a child process that dials the hub over SSH like any remote agent.

use super::*;

fn agent_binary() -> PathBuf {
    if let Ok(exe) = std::env::current_exe() {
        if let Some(dir) = exe.parent() {
            let p = dir.join("nextdeploy-agent");
            if p.exists() {
                return p;
            }
        }
    }
    PathBuf::from("nextdeploy-agent")
}

fn local_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let clean: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .take(nextdeploy_shared::limits::MAX_NAME_LEN)
        .collect();
    if nextdeploy_shared::labels::validate_name(&clean).is_ok() {
        clean
    } else {
        "local".into()
    }
}

/// Enrol if needed, then run the agent until `shutdown`.
pub async fn run(
    store: SharedStore,
    fingerprint: String,
    dir: PathBuf,
    ssh_target: String,
    api: super::ApiEndpoint,
    shutdown: CancellationToken,
    pid: Arc<LocalAgentPid>,
) {
    if let Err(e) = run_inner(
        &store,
        &fingerprint,
        &dir,
        &ssh_target,
        &api,
        &shutdown,
        &pid,
    )
    .await
    {
        warn!("local agent: {e:#}");
        eprintln!("local agent failed: {e:#}");
    }
}

async fn run_inner(
    store: &SharedStore,
    fingerprint: &str,
    dir: &Path,
    ssh_target: &str,
    api: &super::ApiEndpoint,
    shutdown: &CancellationToken,
    pid: &LocalAgentPid,
) -> anyhow::Result<()> {
    ensure_local_login(store, api).await?;
    let bin = agent_binary();
    let config = dir.join("agent.toml");
    prepare_dir(dir)?;
    if !config.exists() {
        enrol_once(store, fingerprint, &bin, ssh_target, &config).await?;
    }
    let mut child = tokio::process::Command::new(&bin)
        .arg("run")
        .arg("--config")
        .arg(&config)
        // The agent exits when this hub does, `kill -9` included, so a
        // restarted hub never meets a second agent with the same key.
        .arg("--parent-pid")
        .arg(std::process::id().to_string())
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start {}", bin.display()))?;
    if let Some(id) = child.id() {
        pid.set(id);
    }
    let name = configured_name(&config).unwrap_or_else(local_name);
    println!("Local agent {name:?} is connecting over SSH. Try:");
    println!("  nextdeploy agent list");
    println!("  nextdeploy agent info --server={name}");
    println!("  nextdeploy agent ping --server={name}");
    tokio::select! {
        status = child.wait() => {
            bail!("the local agent exited: {}", status.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string()));
        }
        _ = shutdown.cancelled() => {
            if let Some(id) = child.id() {
                // SIGTERM lets the agent close its connection cleanly.
                send_signal(id, Signal::SIGTERM);
            }
            if tokio::time::timeout(limits::LOCAL_AGENT_STOP_GRACE, child.wait()).await.is_err() {
                let _ = child.kill().await;
            }
        }
    }
    Ok(())
}

/// Mint a join token for this machine and run `nextdeploy-agent enroll`
/// with it, writing the agent's `config`.
async fn enrol_once(
    store: &SharedStore,
    fingerprint: &str,
    bin: &Path,
    ssh_target: &str,
    config: &Path,
) -> anyhow::Result<()> {
    let mut name = local_name();
    let exists = {
        let n = name.clone();
        crate::store::blocking(store, move |s| s.agent_by_name(&n)).await?
    };
    if exists.is_some_and(|a| a.revoked_at.is_none()) {
        name = format!("{name}-local");
    }
    let labels = parse_labels("local=true").map_err(anyhow::Error::msg)?;
    let (_, token) = admin::create_join_token(
        store,
        fingerprint,
        &name,
        labels,
        limits::LOCAL_JOIN_TOKEN_TTL,
        "hub --local-agent",
    )
    .await?;
    let out = tokio::process::Command::new(bin)
        .arg("enroll")
        .arg("--hub")
        .arg(ssh_target)
        .arg("--token")
        .arg(token.expose())
        .arg("--config")
        .arg(config)
        .stdin(Stdio::null())
        .output()
        .await
        .with_context(|| {
            format!(
                "cannot run {} (build it with cargo build --workspace)",
                bin.display()
            )
        })?;
    if !out.status.success() {
        bail!(
            "enrolment failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// The part of the agent's config the hub reads: its name.
#[derive(serde::Deserialize)]
struct NamedConfig {
    name: Option<String>,
}

/// The agent name in its TOML `config`, if it can be read.
fn configured_name(config: &Path) -> Option<String> {
    let text = std::fs::read_to_string(config).ok()?;
    toml::from_str::<NamedConfig>(&text).ok()?.name
}
