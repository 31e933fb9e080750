//! The protocol's JSON Schema, generated from the types: every request (its
//! envelope with each action's payload), the reply envelope, the error body and
//! the typed answers by action. Committed as docs/protocol.schema.json; a test
//! fails when the file and the types differ
//! (`UPDATE_SCHEMA=1 cargo test -p nextdeploy-shared schema` rewrites it).

use schemars::JsonSchema;
use serde_json::Value;

use super::action::Action;
use super::admin::{
    ApiTokenInfo, AuditRow, Cancelled, JoinTokenCreated, JoinTokenDeleted, JoinTokenInfo,
    TokenCreated, TokenRevoked, WhoAmI,
};
use super::agents::{
    AgentInfo, AgentRevoked, AgentSummary, KeyRotated, Pong, RotateKeyCommitted, RotateKeyProof,
};
use super::alert_rules::{AlertApplied, ScopePreview, SilenceInfo};
use super::alerts::{AlertChannelInfo, AlertInfo, AlertRemoved, AlertRuleInfo, ChannelTested};
use super::channel::{ControlOpen, EnrollOpen, HeartbeatData, PushedOutcome};
use super::cluster::ClusterStatus;
use super::containers::{ImageRow, LifecycleDone, LogChunk, PullProgress, Pulled, Removed};
use super::deploy::{DeployEntry, DeployOutcome, DeployProgress, FleetOutcome};
use super::envelope::ReplyType;
use super::errors::ErrorBody;
use super::exec::{ExecExit, ExecSession, InputCredit};
use super::streams::{DiagSummary, HistoryAnswer, StatusRow};
use crate::docker::{ContainerRow, Event, StatsSample};

/// A request as a client sends it.
#[derive(JsonSchema)]
#[allow(dead_code)]
struct Request {
    /// Chosen by the client; every reply to this request carries it.
    id: u64,
    /// Target agent by name.
    server: Option<String>,
    /// Target agents by label selector (`env=prod,role=web`).
    selector: Option<String>,
    /// `action` and its `payload`.
    #[serde(flatten)]
    action: Action,
}

/// A reply as a client receives it.
#[derive(JsonSchema)]
#[allow(dead_code)]
struct Reply {
    /// The request's id; `null` only for a message that had no readable id.
    id: Option<u64>,
    /// What this reply is.
    #[serde(rename = "type")]
    kind: ReplyType,
    /// In replies about an agent (fan-out, events): which one.
    server: Option<String>,
    /// The content: an answer below, a log chunk, an event, an error body.
    data: Value,
}

/// The `data` of `result` (and stream) replies, by action.
#[derive(JsonSchema)]
#[allow(dead_code)]
struct Answers {
    list_agents: Vec<AgentSummary>,
    whoami: WhoAmI,
    revoke_agent: AgentRevoked,
    create_token: TokenCreated,
    list_tokens: Vec<ApiTokenInfo>,
    revoke_token: TokenRevoked,
    create_join_token: JoinTokenCreated,
    list_join_tokens: Vec<JoinTokenInfo>,
    delete_join_token: JoinTokenDeleted,
    audit_list: Vec<AuditRow>,
    cluster_status: ClusterStatus,
    cancel: Cancelled,
    ping: Pong,
    info: AgentInfo,
    rotate_key: KeyRotated,
    ps: Vec<ContainerRow>,
    lifecycle: LifecycleDone,
    rm: Removed,
    images: Vec<ImageRow>,
    pull_progress: PullProgress,
    pull: Pulled,
    logs: LogChunk,
    stats: Vec<StatsSample>,
    events: Event,
    status: Vec<StatusRow>,
    history: HistoryAnswer,
    diag_stream_sink_hub: DiagSummary,
    /// `progress` replies of `deploy` and `rollback`.
    deploy_progress: DeployProgress,
    /// `deploy` to one server, `rollback`.
    deploy: DeployOutcome,
    /// `deploy` with a selector.
    deploy_fleet: FleetOutcome,
    deploys_list: Vec<DeployEntry>,
    deploys_show: DeployEntry,
    /// `exec`'s last `result` (its output comes as `logs` chunks).
    exec: ExecExit,
    exec_sessions_list: Vec<ExecSession>,
    exec_sessions_show: ExecSession,
    alert_channel_add: AlertChannelInfo,
    alert_channel_list: Vec<AlertChannelInfo>,
    alert_channel_remove: AlertRemoved,
    alert_channel_test: ChannelTested,
    alert_rule_add: AlertRuleInfo,
    alert_rule_list: Vec<AlertRuleInfo>,
    alert_rule_remove: AlertRemoved,
    alert_list: Vec<AlertInfo>,
    alert_history: Vec<AlertInfo>,
    alert_rule_preview: ScopePreview,
    alert_apply: AlertApplied,
    alert_silence_add: SilenceInfo,
    alert_silence_list: Vec<SilenceInfo>,
    alert_silence_remove: SilenceInfo,
}

/// Hub <-> agent payloads beyond the client's actions.
#[derive(JsonSchema)]
#[allow(dead_code)]
struct AgentChannel {
    control_open: ControlOpen,
    enroll_open: EnrollOpen,
    heartbeat: HeartbeatData,
    pushed_outcome: PushedOutcome,
    rotate_key_proof: RotateKeyProof,
    rotate_key_committed: RotateKeyCommitted,
    /// `credit` replies on exec channels.
    exec_input_credit: InputCredit,
}

/// The NextDeploy WebSocket protocol.
#[derive(JsonSchema)]
#[allow(dead_code)]
struct Protocol {
    request: Request,
    reply: Reply,
    error: ErrorBody,
    answers: Answers,
    agent_channel: AgentChannel,
}

/// The whole schema as JSON.
pub fn document() -> Value {
    serde_json::to_value(schemars::schema_for!(Protocol)).unwrap_or(Value::Null)
}

/// The schema as the committed file holds it (pretty, newline-terminated).
pub fn document_text() -> String {
    let mut s = serde_json::to_string_pretty(&document()).unwrap_or_default();
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ActionKind;
    use std::path::PathBuf;
    use strum::IntoEnumIterator;

    fn docs(file: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../docs")
            .join(file)
    }

    #[test]
    fn schema_file_matches_the_types() {
        let path = docs("protocol.schema.json");
        let want = document_text();
        if std::env::var_os("UPDATE_SCHEMA").is_some() {
            std::fs::write(&path, &want).unwrap();
        }
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            have == want,
            "docs/protocol.schema.json differs from the types: run \
             `UPDATE_SCHEMA=1 cargo test -p nextdeploy-shared schema` and commit it"
        );
    }

    #[test]
    fn every_action_is_in_the_schema_and_in_protocol_md() {
        let text = document_text();
        let md = std::fs::read_to_string(docs("protocol.md")).unwrap();
        for k in ActionKind::iter() {
            assert!(
                text.contains(&format!("\"{}\"", k.name())),
                "{} not in the schema",
                k.name()
            );
            let row = format!("| `{}`", k.name());
            assert!(
                md.lines().any(|l| l.starts_with(&row)),
                "docs/protocol.md has no table row for {} (a line starting with {row:?})",
                k.name()
            );
        }
    }
}
