//! `nextdeploy-agent enroll`: make a key pair here (the private key never
//! leaves), connect to the hub pinning the fingerprint carried by the join
//! token, and only then present the token's secret.

use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context};
use nextdeploy_shared::keys;
use nextdeploy_shared::protocol::{AgentPolicy, ENROLL_USER_PREFIX};
use nextdeploy_shared::token::{self, JOIN_PREFIX};
use russh::Disconnect;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use crate::channel::{Ctx, EnrollSlot};
use crate::config::AgentConfig;
use crate::connection::{self, DialError};
use crate::docker::Engine;
use crate::limits::{DEFAULT_HEALTH_INTERVAL_S, ENROLL_OUTCOME_WAIT};
use crate::policy::Policy;
use crate::state::AgentState;

/// Enrol and write the config (0600, with `policy` as its `[policy]`) and
/// key (0600) beside it.
pub async fn run(
    hub: &str,
    token_text: &str,
    config_path: &Path,
    force: bool,
    policy: AgentPolicy,
) -> anyhow::Result<AgentConfig> {
    let parsed = token::parse(token_text).map_err(anyhow::Error::msg)?;
    if parsed.kind != JOIN_PREFIX {
        bail!("that is not a join token (join tokens start with ndj_)");
    }
    let pin = parsed
        .hub_fingerprint
        .clone()
        .context("the join token carries no hub fingerprint")?;
    if config_path.exists() && !force {
        bail!(
            "{} exists: this machine is already enrolled (pass --force to enrol again with a new key)",
            config_path.display()
        );
    }
    let dir = config_path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let key_path = dir.join("agent_ed25519");
    let key = keys::generate(&format!("nextdeploy-agent@{}", crate::sysinfo::hostname()))?;

    let (tx, rx) = oneshot::channel();
    let state = AgentState::new(
        Engine::new(None),
        nextdeploy_shared::limits::HEARTBEAT_INTERVAL,
        dir.join("deploys"),
        None,
        Policy::locked(),
    );
    let ctx = Arc::new(Ctx {
        state,
        conn_cancel: CancellationToken::new(),
        enroll: Some(EnrollSlot {
            secret: parsed.secret.clone(),
            done: Mutex::new(Some(tx)),
        }),
    });
    let user = format!("{ENROLL_USER_PREFIX}{}", parsed.id);
    let hubs = crate::config::hub_addresses(hub);
    let handle = connection::dial_any(&hubs, &pin, Arc::new(key.clone()), &user, ctx)
        .await
        .map_err(|e| match e {
            DialError::KeyRefused => anyhow::anyhow!(
                "the hub refused this join token: it is used, expired, deleted or forged (or this is the wrong hub)"
            ),
            other => other.into(),
        })?;
    let outcome = tokio::time::timeout(ENROLL_OUTCOME_WAIT, rx).await;
    let _ = handle
        .disconnect(Disconnect::ByApplication, "enrolment done", "en")
        .await;
    let outcome = match outcome {
        Err(_) => bail!("the hub did not complete the enrolment in time"),
        Ok(Err(_)) => bail!("the hub closed the connection during enrolment"),
        Ok(Ok(Err(reason))) => bail!("enrolment refused: {reason}"),
        Ok(Ok(Ok(o))) => o,
    };
    if key_path.exists() {
        std::fs::remove_file(&key_path)
            .with_context(|| format!("cannot replace {}", key_path.display()))?;
    }
    keys::write_private(&key, &key_path)?;
    let cfg = AgentConfig {
        hub: hub.to_string(),
        hub_fingerprint: pin,
        name: outcome.name,
        labels: outcome.labels,
        key_path,
        heartbeat_interval_s: nextdeploy_shared::limits::HEARTBEAT_INTERVAL.as_secs(),
        health_interval_s: DEFAULT_HEALTH_INTERVAL_S,
        scope_label: None,
        buffer_max_bytes: None,
        buffer_dir: None,
        policy,
    };
    cfg.save(config_path)?;
    Ok(cfg)
}
