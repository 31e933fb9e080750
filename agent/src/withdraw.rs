//! `nextdeploy-agent withdraw`: undo this agent's recent enrolment on the hub
//! (an install that failed after enrolling). The agent logs in as
//! `nextdeploy-withdraw` with its key; the hub accepts only a key enrolled
//! within its withdrawal window, forgets it and frees the join token. The
//! local config and key are left for the caller to remove.

use std::path::Path;
use std::sync::Arc;

use nextdeploy_shared::protocol::WITHDRAW_USER;
use russh::Disconnect;
use tokio_util::sync::CancellationToken;

use crate::channel::Ctx;
use crate::config::AgentConfig;
use crate::connection::{self, DialError};
use crate::docker::Engine;
use crate::keyfile::KeyFile;
use crate::policy::Policy;
use crate::state::AgentState;

/// Withdraw the enrolment `config` describes; a sentence saying what happened.
pub async fn run(config: &Path) -> anyhow::Result<String> {
    let cfg = AgentConfig::load(config)?;
    let key = KeyFile::load(&cfg.key_path)?.current();
    let ctx = Arc::new(Ctx {
        state: AgentState::new(
            Engine::new(None),
            nextdeploy_shared::limits::HEARTBEAT_INTERVAL,
            std::env::temp_dir(),
            None,
            Policy::locked(),
        ),
        conn_cancel: CancellationToken::new(),
        enroll: None,
    });
    let handle = connection::dial_any(&cfg.hubs(), &cfg.hub_fingerprint, key, WITHDRAW_USER, ctx)
        .await
        .map_err(|e| match e {
            DialError::KeyRefused => anyhow::anyhow!(
                "the hub refused to withdraw {}: it is not enrolled with this key, or it \
                 enrolled too long ago (revoke it on the hub instead)",
                cfg.name
            ),
            other => other.into(),
        })?;
    let _ = handle
        .disconnect(Disconnect::ByApplication, "enrolment withdrawn", "en")
        .await;
    Ok(format!(
        "withdrew the enrolment of {} on the hub {} (its join token can be used again)",
        cfg.name, cfg.hub
    ))
}
