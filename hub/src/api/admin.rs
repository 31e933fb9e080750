//! Hub-local actions: agents list and revocation, API tokens, join tokens.

use crate::limits::{AUDIT_LIST_DEFAULT, AUDIT_LIST_MAX, MAX_TOKEN_NAME_LEN, MAX_TTL_S};
use std::time::Duration;

use nextdeploy_shared::labels::{format_labels, parse_labels, validate_name, Labels};
use nextdeploy_shared::limits::{API_TOKEN_DEFAULT_TTL, JOIN_TOKEN_DEFAULT_TTL};
use nextdeploy_shared::protocol::admin::{
    AuditList, AuditRow, ById, CreateJoinToken, CreateToken, JoinTokenCreated, JoinTokenDeleted,
    JoinTokenInfo, LabelsArg, TokenCreated, TokenRevoked, WhoAmI,
};
use nextdeploy_shared::protocol::agents::{AgentRevoked, HubRef, RevokeAgent};
use nextdeploy_shared::protocol::{Action, AgentSummary};
use nextdeploy_shared::secret::Secret;
use nextdeploy_shared::time::{now_unix, rfc3339};
use nextdeploy_shared::token::{self, hash_secret};
use serde_json::Value;

use super::{ApiError, Caller};
use crate::store::{self, ApiTokenRecord, AuditEntry, JoinTokenRecord, Role, SharedStore};
use crate::Services;

/// Answer a hub-local action.
pub async fn hub_action(
    svc: &Services,
    caller: &Caller,
    action: Action,
) -> Result<Value, ApiError> {
    match action {
        Action::Whoami(_) => Ok(to_value(WhoAmI {
            id: caller.token_id.clone(),
            name: caller.name.clone(),
            role: caller.role,
            hub_fingerprint: svc.host_fingerprint.clone(),
            ssh_port: svc.ssh_port,
            ssh_public_address: svc.config.ssh_public_address.clone(),
            api_public_url: svc.config.api_public_url.clone(),
        })),
        Action::ListAgents(_) => Ok(to_value(list_agents(svc).await?)),
        Action::RevokeAgent(p) => revoke_agent(svc, caller, p).await,
        Action::CreateToken(p) => create_token(svc, caller, p).await,
        Action::ListTokens(_) => {
            let list = store::blocking(&svc.store, |s| s.list_api_tokens()).await?;
            Ok(to_value(
                list.iter().map(ApiTokenRecord::info).collect::<Vec<_>>(),
            ))
        }
        Action::RevokeToken(ById { id }) => {
            let i = id.clone();
            if !store::blocking(&svc.store, move |s| s.revoke_api_token(&i, now_unix())).await? {
                return Err(ApiError::NotFound(format!(
                    "no active API token with id {id}"
                )));
            }
            audit(svc, caller, "revoke_token", &id, "revoked").await;
            Ok(to_value(TokenRevoked { id, revoked: true }))
        }
        Action::CreateJoinToken(p) => create_join(svc, caller, p).await,
        Action::ListJoinTokens(_) => {
            let list = store::blocking(&svc.store, |s| s.list_join_tokens()).await?;
            Ok(to_value(
                list.iter().map(join_token_info).collect::<Vec<_>>(),
            ))
        }
        Action::DeleteJoinToken(ById { id }) => {
            let i = id.clone();
            if !store::blocking(&svc.store, move |s| s.delete_join_token(&i)).await? {
                return Err(ApiError::NotFound(format!("no join token with id {id}")));
            }
            audit(svc, caller, "delete_join_token", &id, "deleted").await;
            Ok(to_value(JoinTokenDeleted { id, deleted: true }))
        }
        Action::AuditList(p) => audit_list(svc, p).await,
        other => Err(ApiError::BadRequest(format!(
            "{} is not a hub action",
            other.kind().name()
        ))),
    }
}

fn to_value<T: serde::Serialize>(v: T) -> Value {
    serde_json::to_value(v).unwrap_or_default()
}

/// `audit_list`: a page of the audit log, newest first.
async fn audit_list(svc: &Services, p: AuditList) -> Result<Value, ApiError> {
    let limit = match p.limit {
        None => AUDIT_LIST_DEFAULT,
        Some(n) if (1..=AUDIT_LIST_MAX).contains(&n) => n,
        Some(_) => {
            return Err(ApiError::BadRequest(format!(
                "payload.limit must be between 1 and {AUDIT_LIST_MAX}"
            )))
        }
    };
    let before = p.before;
    let rows = store::blocking(&svc.store, move |s| s.audit_page(limit as u32, before)).await?;
    Ok(to_value(
        rows.into_iter()
            .map(|r| AuditRow {
                id: r.seq,
                time: rfc3339(r.entry.at),
                actor: r.entry.actor,
                actor_token: r.actor_token,
                action: r.entry.action,
                target: r.entry.target,
                detail: r.entry.detail,
            })
            .collect::<Vec<_>>(),
    ))
}

/// `revoke_agent`: revoke the key and cut the connection.
async fn revoke_agent(svc: &Services, caller: &Caller, p: RevokeAgent) -> Result<Value, ApiError> {
    let name = p.name;
    let n = name.clone();
    if !store::blocking(&svc.store, move |s| s.revoke_agent(&n, now_unix())).await? {
        return Err(ApiError::NotFound(format!(
            "no enrolled, unrevoked agent named {name:?}"
        )));
    }
    // Held by another hub of a cluster: that hub cuts it within a poll
    // (cluster/changes.rs).
    let elsewhere = svc
        .config
        .cluster
        .as_ref()
        .and_then(|c| c.remote_holder(&name));
    let was_online = svc.registry.kick(&name) || elsewhere.is_some();
    svc.recent.forget(&name);
    audit(svc, caller, "revoke_agent", &name, "revoked").await;
    Ok(to_value(AgentRevoked {
        name,
        revoked: true,
        was_online,
    }))
}

/// `create_token`: the record plus the secret, shown once.
async fn create_token(svc: &Services, caller: &Caller, p: CreateToken) -> Result<Value, ApiError> {
    let name = p.name.unwrap_or_else(|| "unnamed".into());
    if name.is_empty() || name.len() > MAX_TOKEN_NAME_LEN {
        return Err(ApiError::BadRequest(format!(
            "token name must be 1 to {MAX_TOKEN_NAME_LEN} characters"
        )));
    }
    let ttl = match (p.ttl_s, p.no_expiry) {
        (Some(_), true) => {
            return Err(ApiError::BadRequest(
                "give payload.ttl_s or payload.no_expiry, not both".into(),
            ))
        }
        (None, true) => None,
        (None, false) => Some(API_TOKEN_DEFAULT_TTL),
        (ttl_s, false) => ttl_arg(ttl_s)?,
    };
    let role = p.role;
    let (rec, secret) = create_api_token(&svc.store, &name, role, ttl, p.no_exec).await?;
    let no_exec = if p.no_exec { ", no exec" } else { "" };
    let what = format!("{name} ({}{no_exec})", role.as_str());
    audit(svc, caller, "create_token", &rec.id, &what).await;
    Ok(to_value(TokenCreated {
        info: rec.info(),
        token: secret.expose().clone(),
    }))
}

/// `create_join_token`: the record plus the token, shown once.
async fn create_join(
    svc: &Services,
    caller: &Caller,
    p: CreateJoinToken,
) -> Result<Value, ApiError> {
    let name = p.name;
    validate_name(&name).map_err(ApiError::BadRequest)?;
    let labels = match p.labels {
        None => Labels::new(),
        Some(LabelsArg::Text(s)) => parse_labels(&s).map_err(ApiError::BadRequest)?,
        // Checked as text is, so both forms obey the same rules.
        Some(LabelsArg::Map(l)) => {
            parse_labels(&format_labels(&l)).map_err(ApiError::BadRequest)?
        }
    };
    let ttl = ttl_arg(p.ttl_s)?.unwrap_or(JOIN_TOKEN_DEFAULT_TTL);
    let (rec, secret) = create_join_token(
        &svc.store,
        &svc.host_fingerprint,
        &name,
        labels,
        ttl,
        &caller.name,
    )
    .await?;
    audit(
        svc,
        caller,
        "create_join_token",
        &rec.id,
        &format!("for {name}"),
    )
    .await;
    Ok(to_value(JoinTokenCreated {
        info: join_token_info(&rec),
        token: secret.expose().clone(),
        hub_fingerprint: svc.host_fingerprint.clone(),
        ssh_address: crate::cluster::agent_addresses(svc),
    }))
}

fn ttl_arg(ttl_s: Option<u64>) -> Result<Option<Duration>, ApiError> {
    match ttl_s {
        None => Ok(None),
        Some(s) if s > 0 && s <= MAX_TTL_S => Ok(Some(Duration::from_secs(s))),
        Some(_) => Err(ApiError::BadRequest(format!(
            "payload.ttl_s must be a number of seconds between 1 and {MAX_TTL_S}"
        ))),
    }
}

fn join_token_info(rec: &JoinTokenRecord) -> JoinTokenInfo {
    JoinTokenInfo {
        id: rec.id.clone(),
        name: rec.name.clone(),
        labels: rec.labels.clone(),
        created_at: rfc3339(rec.created_at),
        expires_at: rfc3339(rec.expires_at),
        used: rec.used_at.is_some(),
        used_at: rec.used_at.map(rfc3339),
        expired: rec.expires_at <= now_unix(),
        created_by: rec.created_by.clone(),
    }
}

/// Every enrolled, unrevoked agent with its live state: online here, or
/// (in a cluster) through the live hub holding its lease.
pub async fn list_agents(svc: &Services) -> Result<Vec<AgentSummary>, ApiError> {
    let records = store::blocking(&svc.store, |s| s.list_agents()).await?;
    let cluster = svc.config.cluster.as_deref();
    Ok(records
        .into_iter()
        .filter(|r| r.revoked_at.is_none())
        .map(|r| match svc.registry.get(&r.name) {
            Some(c) => AgentSummary {
                conflict: svc.registry.conflict(&r.name),
                online: true,
                last_seen: Some(rfc3339(
                    c.last_seen.load(std::sync::atomic::Ordering::Relaxed),
                )),
                version: Some(c.hello.version.clone()),
                address: Some(c.address.to_string()),
                hostname: Some(c.hello.hostname.clone()),
                docker: Some(c.hello.docker.clone()),
                policy: c.hello.policy.clone(),
                hub: cluster.map(|c| hub_ref(&c.me)),
                name: r.name,
                labels: r.labels,
                fingerprint: r.fingerprint,
                enrolled_at: rfc3339(r.enrolled_at),
            },
            None => {
                let holder = cluster.and_then(|c| c.remote_holder(&r.name));
                AgentSummary {
                    conflict: svc.registry.conflict(&r.name),
                    online: holder.is_some(),
                    last_seen: r.last_seen.map(rfc3339),
                    version: r.version,
                    address: r.last_address,
                    hostname: r.hostname,
                    docker: None,
                    policy: None,
                    hub: holder.map(|h| HubRef {
                        id: h.hub_id,
                        ssh_address: h.ssh_address,
                        api_url: h.api_url,
                    }),
                    name: r.name,
                    labels: r.labels,
                    fingerprint: r.fingerprint,
                    enrolled_at: rfc3339(r.enrolled_at),
                }
            }
        })
        .collect())
}

/// A hub row as clients see it.
pub fn hub_ref(h: &crate::store::cluster::HubRow) -> HubRef {
    HubRef {
        id: h.id.clone(),
        ssh_address: h.ssh_address.clone(),
        api_url: h.api_url.clone(),
    }
}

/// Create and store an API token; the secret is returned once and never stored.
pub async fn create_api_token(
    store: &SharedStore,
    name: &str,
    role: Role,
    ttl: Option<Duration>,
    no_exec: bool,
) -> Result<(ApiTokenRecord, Secret<String>), ApiError> {
    let (id, text) = token::new_api_token();
    let secret = token::parse(text.expose())
        .map_err(|e| ApiError::Conflict(e.into()))?
        .secret;
    let now = now_unix();
    let rec = ApiTokenRecord {
        id,
        secret_hash: hash_secret(secret.expose()),
        name: name.to_string(),
        role,
        created_at: now,
        expires_at: ttl.map(|t| now + t.as_secs() as i64),
        revoked_at: None,
        no_exec,
    };
    let r = rec.clone();
    store::blocking(store, move |s| s.insert_api_token(&r)).await?;
    Ok((rec, text))
}

/// Create and store a join token bound to the hub's fingerprint.
pub async fn create_join_token(
    store: &SharedStore,
    hub_fingerprint: &str,
    name: &str,
    labels: Labels,
    ttl: Duration,
    created_by: &str,
) -> Result<(JoinTokenRecord, Secret<String>), ApiError> {
    let (id, text) = token::new_join_token(hub_fingerprint);
    let secret = token::parse(text.expose())
        .map_err(|e| ApiError::Conflict(e.into()))?
        .secret;
    let now = now_unix();
    let rec = JoinTokenRecord {
        id,
        secret_hash: hash_secret(secret.expose()),
        name: name.to_string(),
        labels,
        created_at: now,
        expires_at: now + ttl.as_secs() as i64,
        used_at: None,
        created_by: created_by.to_string(),
    };
    let r = rec.clone();
    store::blocking(store, move |s| s.insert_join_token(&r)).await?;
    Ok((rec, text))
}

/// Append to the audit log an action `caller` made: its token's name and id.
pub(super) async fn audit(
    svc: &Services,
    caller: &Caller,
    action: &str,
    target: &str,
    detail: &str,
) {
    let entry = AuditEntry {
        at: now_unix(),
        actor: caller.name.clone(),
        action: action.into(),
        target: target.into(),
        detail: detail.into(),
    };
    let token = caller.token_id.clone();
    let write = move |s: &dyn store::Store| s.audit_by_token(&entry, Some(&token));
    if let Err(e) = store::blocking(&svc.store, write).await {
        tracing::warn!(error = %e, "audit write failed");
    }
}
