//! Hub administration: API tokens, join tokens, cancelling a request.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::action::Role;
use crate::labels::Labels;

/// Payload naming one thing by id: `revoke_token`, `delete_join_token`,
/// `deploys_show`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ById {
    /// The id.
    pub id: String,
}

/// `audit_list`: a page of the audit log, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditList {
    /// Most entries to return (1 to 1000, default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
    /// Only entries older than this one (an `id` of an earlier page).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<i64>,
}

/// One line of the audit log as `audit_list` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AuditRow {
    /// Its place in the log (increasing); `before` pages with it.
    pub id: i64,
    /// When (RFC 3339).
    pub time: String,
    /// Who: the token's name, `agent:<name>` or `hub`.
    pub actor: String,
    /// The id of the API token the action was made with (`null` for agents
    /// and the hub itself).
    pub actor_token: Option<String>,
    /// What (`create_token`, `enroll`, `revoke_agent`, `deploy`, ...).
    pub action: String,
    /// On what.
    pub target: String,
    /// Outcome or detail.
    pub detail: String,
}

/// `cancel`: an earlier request of this connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelRequest {
    /// The id of the request to cancel.
    pub id: u64,
}

/// `cancel`'s answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Cancelled {
    /// The request cancelled; `null` when none of that id was running.
    pub cancelled: Option<u64>,
}

/// `whoami`'s answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct WhoAmI {
    /// The token's id.
    pub id: String,
    /// The token's name.
    pub name: String,
    /// Its role.
    pub role: Role,
    /// The hub's SSH host-key fingerprint, `SHA256:...`.
    pub hub_fingerprint: String,
    /// The port the hub's SSH server listens on (for agents).
    pub ssh_port: u16,
    /// `HOST:PORT` agents dial (`--ssh-public-address`, else the SSH listen
    /// address unless it is a wildcard).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_public_address: Option<String>,
    /// The API's URL as clients reach it (`--api-public-url`, else the HTTP
    /// listen address unless it is a wildcard).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_public_url: Option<String>,
}

impl WhoAmI {
    /// The SSH address agents should dial: the public address, else the host
    /// of `hub_url` (the URL this client reached the API at) with the hub's
    /// SSH port.
    pub fn agent_ssh_address(&self, hub_url: &str) -> String {
        if let Some(a) = &self.ssh_public_address {
            return a.clone();
        }
        let rest = hub_url.split_once("://").map_or(hub_url, |(_, r)| r);
        let authority = rest.split('/').next().unwrap_or(rest);
        let host = match authority.strip_prefix('[') {
            Some(v6) => format!("[{}]", v6.split(']').next().unwrap_or("")),
            None => authority
                .rsplit_once(':')
                .map_or(authority, |(h, _)| h)
                .to_string(),
        };
        format!("{host}:{}", self.ssh_port)
    }
}

/// `create_token`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// admin, operator or viewer.
    pub role: Role,
    /// 1 to 64 characters (default `unnamed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Lifetime in seconds; absent: 90 days, unless `no_expiry`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_s: Option<u64>,
    /// True: the token never expires (valid until revoked); `ttl_s` must
    /// then be absent.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_expiry: bool,
    /// True: the token may not `exec` (an operator or admin that acts on
    /// containers but gets no shell in them).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_exec: bool,
}

/// `create_join_token`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateJoinToken {
    /// The agent's name-to-be.
    pub name: String,
    /// Its labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<LabelsArg>,
    /// Lifetime in seconds (default one hour).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_s: Option<u64>,
}

/// Labels as `k=v,k2=v2` text or as an object of strings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum LabelsArg {
    /// `env=prod,role=web`.
    Text(String),
    /// `{"env": "prod"}`.
    Map(Labels),
}

/// An API token as `list_tokens` and `create_token` show it (never its secret).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ApiTokenInfo {
    /// Public id.
    pub id: String,
    /// A name for people.
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// When it was created (RFC 3339).
    #[serde(deserialize_with = "crate::time::de_rfc3339")]
    pub created_at: String,
    /// When it expires (RFC 3339), if ever.
    #[serde(default, deserialize_with = "crate::time::de_rfc3339_opt")]
    pub expires_at: Option<String>,
    /// When it was revoked (RFC 3339).
    #[serde(default, deserialize_with = "crate::time::de_rfc3339_opt")]
    pub revoked_at: Option<String>,
    /// Created with `no_exec`: it may not `exec`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_exec: bool,
}

/// `create_token`'s answer: the record and the token, shown once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TokenCreated {
    /// The record.
    #[serde(flatten)]
    pub info: ApiTokenInfo,
    /// `nda_<id>_<secret>`.
    pub token: String,
}

/// A join token as `list_join_tokens` and `create_join_token` show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct JoinTokenInfo {
    /// Public id.
    pub id: String,
    /// The agent's name-to-be.
    pub name: String,
    /// Its labels.
    pub labels: Labels,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub expires_at: String,
    /// Whether an agent enrolled with it.
    pub used: bool,
    /// When (RFC 3339).
    pub used_at: Option<String>,
    /// Whether it expired.
    pub expired: bool,
    /// The API token name that made it.
    pub created_by: String,
}

/// `create_join_token`'s answer: the record, the token (shown once) and the
/// hub's fingerprint the agent pins.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct JoinTokenCreated {
    /// The record.
    #[serde(flatten)]
    pub info: JoinTokenInfo,
    /// `ndj_...`.
    pub token: String,
    /// `SHA256:...` of the hub's host key.
    pub hub_fingerprint: String,
    /// Where agents dial the hub (`--ssh-public-address`), when it knows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_address: Option<String>,
}

/// `revoke_token`'s answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TokenRevoked {
    /// The token's id.
    pub id: String,
    /// Always true.
    pub revoked: bool,
}

/// `delete_join_token`'s answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct JoinTokenDeleted {
    /// The join token's id.
    pub id: String,
    /// Always true.
    pub deleted: bool,
}
