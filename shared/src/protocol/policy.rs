//! The agent's own policy: the `[policy]` section of agent.toml. The agent
//! checks every request it receives against it ([`AgentPolicy::check`],
//! [`AgentPolicy::check_exec`]), whatever the hub asks: a compromised hub
//! must not be root on every server. The agent reports it in its hello; the
//! hub runs the same checks there to refuse early, but the agent decides.
//!
//! What each rule forbids:
//!
//! | rule                     | refuses                                                      |
//! |--------------------------|--------------------------------------------------------------|
//! | `read_only = true`       | start, stop, restart, kill, rm, pull, deploy, rollback, exec |
//! | `lifecycle = false`      | start, stop, restart, kill, rm                               |
//! | `deploy_images = [...]`  | deploy and pull of an image no pattern matches               |
//! | `exec = false`           | exec                                                         |
//! | `exec_allow_root = false`| exec with no user, or as `root` / uid 0                      |
//!
//! Reading (ping, info, ps, inspect, logs, stats, images) and key rotation
//! are never refused. A rollback brings no new image: only `read_only`
//! refuses it.

use glob::{MatchOptions, Pattern};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::deploy::DeployRequest;
use super::{Action, ActionKind, ErrorCode};

/// `[policy]` of agent.toml; every field optional, the default allows all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct AgentPolicy {
    /// No lifecycle action, rm, pull, deploy, rollback or exec.
    pub read_only: bool,
    /// Exec into containers at all.
    pub exec: bool,
    /// Exec as root (no user named, `root`, uid 0).
    pub exec_allow_root: bool,
    /// Images `deploy` and `pull` may use, as glob patterns on the reference
    /// as written (`registry.example.com/team/*`; `*` stops at `/`, `**`
    /// spans path components). Empty: any image.
    pub deploy_images: Vec<String>,
    /// start, stop, restart, kill and rm.
    pub lifecycle: bool,
}

impl Default for AgentPolicy {
    fn default() -> Self {
        AgentPolicy {
            read_only: false,
            exec: true,
            exec_allow_root: true,
            deploy_images: Vec::new(),
            lifecycle: true,
        }
    }
}

/// The rule that refused a request; its name is what agent.toml calls it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyRule {
    /// `policy.read_only`.
    ReadOnly,
    /// `policy.exec`.
    Exec,
    /// `policy.exec_allow_root`.
    ExecAllowRoot,
    /// `policy.deploy_images`.
    DeployImages,
    /// `policy.lifecycle`.
    Lifecycle,
}

impl PolicyRule {
    /// `policy.read_only`, ... as in agent.toml.
    pub fn name(self) -> &'static str {
        match self {
            PolicyRule::ReadOnly => "policy.read_only",
            PolicyRule::Exec => "policy.exec",
            PolicyRule::ExecAllowRoot => "policy.exec_allow_root",
            PolicyRule::DeployImages => "policy.deploy_images",
            PolicyRule::Lifecycle => "policy.lifecycle",
        }
    }
}

/// A request the policy refuses: the rule and why, for people.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {reason}", rule.name())]
pub struct PolicyDenied {
    /// The rule.
    pub rule: PolicyRule,
    /// What it refused.
    pub reason: String,
}

impl PolicyDenied {
    /// Its wire code.
    pub fn code(&self) -> ErrorCode {
        ErrorCode::ForbiddenByPolicy
    }
}

/// A `deploy_images` entry that is not a glob pattern.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("policy.deploy_images: {pattern:?} is not a pattern: {message}")]
pub struct BadPattern {
    /// The entry.
    pub pattern: String,
    /// What is wrong with it.
    pub message: String,
}

/// `*` and `?` stop at `/`, so `registry/team/*` does not reach into
/// `registry/team/sub/...`; case matters, as in image references.
const MATCH: MatchOptions = MatchOptions {
    case_sensitive: true,
    require_literal_separator: true,
    require_literal_leading_dot: false,
};

fn deny(rule: PolicyRule, reason: String) -> Result<(), PolicyDenied> {
    Err(PolicyDenied { rule, reason })
}

impl AgentPolicy {
    /// Every `deploy_images` entry is a non-empty glob pattern.
    pub fn validate(&self) -> Result<(), BadPattern> {
        for p in &self.deploy_images {
            if p.trim().is_empty() {
                return Err(BadPattern {
                    pattern: p.clone(),
                    message: "empty".into(),
                });
            }
            Pattern::new(p).map_err(|e| BadPattern {
                pattern: p.clone(),
                message: e.to_string(),
            })?;
        }
        Ok(())
    }

    /// Whether the policy allows `action`. Every action is named, so a new
    /// one does not compile until it is given its rule here.
    pub fn check(&self, action: &Action) -> Result<(), PolicyDenied> {
        use Action as A;
        match action {
            A::Start(_) | A::Stop(_) | A::Restart(_) | A::Kill(_) | A::Rm(_) => {
                self.writable(action.kind())?;
                if !self.lifecycle {
                    let name = action.kind().name();
                    return deny(
                        PolicyRule::Lifecycle,
                        format!("this agent does not {name} containers"),
                    );
                }
                Ok(())
            }
            A::Pull(p) => {
                self.writable(ActionKind::Pull)?;
                self.image_allowed(&p.image)
            }
            A::Deploy(d) => self.check_deploy(d),
            A::Rollback(_) => self.writable(ActionKind::Rollback),
            A::Exec(e) => {
                self.check_exec(e.user.as_deref())?;
                if e.privileged && !self.exec_allow_root {
                    return deny(
                        PolicyRule::ExecAllowRoot,
                        "a privileged exec is root in all but name, which this agent refuses"
                            .into(),
                    );
                }
                Ok(())
            }
            A::ExecInput(_) | A::ExecResize(_) | A::ExecSessionsList(_) => Ok(()),
            A::ExecSessionsShow(_) | A::ExecSessionsRecording(_) => Ok(()),
            A::AlertChannelAdd(_) | A::AlertChannelList(_) | A::AlertChannelRemove(_) => Ok(()),
            A::AlertChannelTest(_) | A::AlertRuleAdd(_) | A::AlertRuleList(_) => Ok(()),
            A::AlertRuleRemove(_) | A::AlertList(_) | A::AlertHistory(_) => Ok(()),
            A::AlertRulePreview(_) | A::AlertApply(_) | A::AlertSilenceAdd(_) => Ok(()),
            A::AlertSilenceList(_) | A::AlertSilenceRemove(_) => Ok(()),
            A::ListAgents(_) | A::Whoami(_) | A::RevokeAgent(_) | A::CreateToken(_) => Ok(()),
            A::ListTokens(_) | A::RevokeToken(_) | A::CreateJoinToken(_) => Ok(()),
            A::ListJoinTokens(_) | A::DeleteJoinToken(_) | A::AuditList(_) => Ok(()),
            A::ClusterStatus(_) => Ok(()),
            A::Cancel(_) | A::Ping(_) | A::Info(_) | A::RotateKey(_) => Ok(()),
            A::RotateKeyCommit(_) | A::Ps(_) | A::Inspect(_) | A::Logs(_) => Ok(()),
            A::Stats(_) | A::Images(_) | A::Events(_) | A::Status(_) => Ok(()),
            A::History(_) | A::DeploysList(_) | A::DeploysShow(_) | A::DiagStream(_) => Ok(()),
        }
    }

    /// A deploy: not on a read-only agent, and (unless a rollback, which
    /// brings no new image) an image `deploy_images` allows.
    pub fn check_deploy(&self, d: &DeployRequest) -> Result<(), PolicyDenied> {
        if d.rollback {
            return self.writable(ActionKind::Rollback);
        }
        self.writable(ActionKind::Deploy)?;
        self.image_allowed(&d.image)
    }

    /// An exec as `user` (`None`: the image's default user). Refused on a
    /// read-only agent, with `exec = false`, and with `exec_allow_root =
    /// false` unless a user other than root is named: no user, an empty one,
    /// `root` or uid 0 (with or without a group) count as root, since the
    /// agent cannot know the image's default user for sure.
    pub fn check_exec(&self, user: Option<&str>) -> Result<(), PolicyDenied> {
        if self.read_only {
            return deny(
                PolicyRule::ReadOnly,
                "this agent is read-only: it refuses exec".into(),
            );
        }
        if !self.exec {
            return deny(PolicyRule::Exec, "exec is turned off on this agent".into());
        }
        if !self.exec_allow_root && is_root_user(user) {
            let who = user.map_or_else(
                || "the image's default user".to_string(),
                |u| format!("{u:?}"),
            );
            return deny(
                PolicyRule::ExecAllowRoot,
                format!("exec as {who} may be root, which this agent refuses: name a non-root user (--user)"),
            );
        }
        Ok(())
    }

    fn writable(&self, kind: ActionKind) -> Result<(), PolicyDenied> {
        if self.read_only {
            return deny(
                PolicyRule::ReadOnly,
                format!("this agent is read-only: it refuses {}", kind.name()),
            );
        }
        Ok(())
    }

    fn image_allowed(&self, image: &str) -> Result<(), PolicyDenied> {
        if self.deploy_images.is_empty() || self.image_matches(image) {
            return Ok(());
        }
        deny(
            PolicyRule::DeployImages,
            format!(
                "image {image:?} matches none of the allowed patterns {:?}",
                self.deploy_images
            ),
        )
    }

    /// Whether some `deploy_images` pattern matches `image` (a pattern that
    /// does not parse matches nothing).
    pub fn image_matches(&self, image: &str) -> bool {
        self.deploy_images.iter().any(|p| {
            Pattern::new(p)
                .map(|p| p.matches_with(image, MATCH))
                .unwrap_or(false)
        })
    }

    /// The rules that differ from the default, for a one-line summary
    /// (`read_only, deploy_images=[...]`); empty when everything is allowed.
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        if self.read_only {
            parts.push("read_only".to_string());
        }
        if !self.lifecycle {
            parts.push("lifecycle=false".to_string());
        }
        if !self.exec {
            parts.push("exec=false".to_string());
        }
        if !self.exec_allow_root {
            parts.push("exec_allow_root=false".to_string());
        }
        if !self.deploy_images.is_empty() {
            parts.push(format!("deploy_images={:?}", self.deploy_images));
        }
        parts.join(", ")
    }
}

/// Whether an exec user is, or may be, root.
fn is_root_user(user: Option<&str>) -> bool {
    let Some(user) = user else { return true };
    let name = user.split(':').next().unwrap_or("").trim();
    name.is_empty() || name == "root" || name.parse::<u64>() == Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn action(name: &str, payload: serde_json::Value) -> Action {
        Action::parse(name, payload).unwrap()
    }

    fn rule(r: Result<(), PolicyDenied>) -> Option<&'static str> {
        r.err().map(|d| d.rule.name())
    }

    #[test]
    fn the_default_allows_everything() {
        let p = AgentPolicy::default();
        for (name, payload) in [
            ("stop", json!({"container": "web"})),
            ("rm", json!({"container": "web"})),
            ("pull", json!({"image": "x:1"})),
            ("deploy", json!({"image": "x:1"})),
            ("rollback", json!({"container": "web"})),
        ] {
            assert_eq!(rule(p.check(&action(name, payload))), None, "{name}");
        }
        assert_eq!(rule(p.check_exec(None)), None);
        // An empty section reads as the default; unknown keys are refused.
        let empty: AgentPolicy = serde_json::from_value(json!({})).unwrap();
        assert_eq!(empty, p);
        assert!(serde_json::from_value::<AgentPolicy>(json!({"readonly": true})).is_err());
    }

    #[test]
    fn read_only_refuses_every_change_and_allows_reading() {
        let p = AgentPolicy {
            read_only: true,
            ..AgentPolicy::default()
        };
        for (name, payload) in [
            ("start", json!({"container": "web"})),
            ("stop", json!({"container": "web"})),
            ("restart", json!({"container": "web"})),
            ("kill", json!({"container": "web"})),
            ("rm", json!({"container": "web"})),
            ("pull", json!({"image": "x:1"})),
            ("deploy", json!({"image": "x:1"})),
            (
                "deploy",
                json!({"image": "", "container": "web", "rollback": true}),
            ),
            ("rollback", json!({"container": "web"})),
        ] {
            let d = p.check(&action(name, payload)).unwrap_err();
            assert_eq!(d.rule, PolicyRule::ReadOnly, "{name}");
            assert!(d.to_string().starts_with("policy.read_only: "), "{d}");
            assert_eq!(d.code(), ErrorCode::ForbiddenByPolicy);
        }
        for (name, payload) in [
            ("ping", json!({})),
            ("info", json!({})),
            ("ps", json!({})),
            ("inspect", json!({"container": "web"})),
            ("logs", json!({"container": "web"})),
            ("stats", json!({})),
            ("images", json!({})),
            ("rotate_key", json!({})),
        ] {
            assert_eq!(rule(p.check(&action(name, payload))), None, "{name}");
        }
        assert_eq!(rule(p.check_exec(Some("app"))), Some("policy.read_only"));
    }

    #[test]
    fn lifecycle_off_refuses_start_stop_restart_kill_rm_only() {
        let p = AgentPolicy {
            lifecycle: false,
            ..AgentPolicy::default()
        };
        for name in ["start", "stop", "restart", "kill", "rm"] {
            let r = p.check(&action(name, json!({"container": "web"})));
            assert_eq!(rule(r), Some("policy.lifecycle"), "{name}");
        }
        assert_eq!(
            rule(p.check(&action("deploy", json!({"image": "x:1"})))),
            None
        );
        assert_eq!(
            rule(p.check(&action("pull", json!({"image": "x:1"})))),
            None
        );
    }

    #[test]
    fn deploy_images_match_globs_on_the_reference_as_written() {
        let p = AgentPolicy {
            deploy_images: vec![
                "registry.example.com/team/*".into(),
                "nextdeploy-fixture:*".into(),
                "mirror.example.com/**".into(),
            ],
            ..AgentPolicy::default()
        };
        assert!(p.validate().is_ok());
        for ok in [
            "registry.example.com/team/app:1.2",
            "registry.example.com/team/app",
            "registry.example.com/team/app@sha256:abc",
            "nextdeploy-fixture:v2",
            "mirror.example.com/a/b/c:1",
        ] {
            assert!(p.image_matches(ok), "{ok}");
        }
        for no in [
            "registry.example.com/team/sub/app:1",
            "registry.example.com/other/app:1",
            "evil.example.com/registry.example.com/team/app:1",
            "REGISTRY.EXAMPLE.COM/team/app:1",
            "nextdeploy-fixture",
            "docker.io/library/nginx:1",
        ] {
            assert!(!p.image_matches(no), "{no}");
        }
        let d = p
            .check(&action("deploy", json!({"image": "nginx:1"})))
            .unwrap_err();
        assert_eq!(d.rule, PolicyRule::DeployImages);
        assert!(d.to_string().contains("\"nginx:1\""), "{d}");
        assert_eq!(
            rule(p.check(&action("pull", json!({"image": "nginx:1"})))),
            Some("policy.deploy_images")
        );
        // A rollback brings no image: allowed.
        let rb = action(
            "deploy",
            json!({"image": "", "container": "w", "rollback": true}),
        );
        assert_eq!(rule(p.check(&rb)), None);
        assert_eq!(
            rule(p.check(&action("rollback", json!({"container": "w"})))),
            None
        );
        let bad = AgentPolicy {
            deploy_images: vec!["a/**b".into()],
            ..AgentPolicy::default()
        };
        assert!(bad.validate().unwrap_err().to_string().contains("a/**b"));
        assert!(AgentPolicy {
            deploy_images: vec![" ".into()],
            ..AgentPolicy::default()
        }
        .validate()
        .is_err());
    }

    #[test]
    fn exec_rules() {
        let off = AgentPolicy {
            exec: false,
            ..AgentPolicy::default()
        };
        assert_eq!(rule(off.check_exec(Some("app"))), Some("policy.exec"));
        let no_root = AgentPolicy {
            exec_allow_root: false,
            ..AgentPolicy::default()
        };
        for u in [
            None,
            Some(""),
            Some("root"),
            Some("0"),
            Some("0:0"),
            Some("root:app"),
            Some("00"),
            Some("+0"),
        ] {
            assert_eq!(
                rule(no_root.check_exec(u)),
                Some("policy.exec_allow_root"),
                "{u:?}"
            );
        }
        for u in ["app", "1000", "1000:1000", "nobody:nogroup", "rooter"] {
            assert_eq!(rule(no_root.check_exec(Some(u))), None, "{u}");
        }
        assert_eq!(rule(AgentPolicy::default().check_exec(Some("root"))), None);
    }

    #[test]
    fn summary_lists_what_differs() {
        assert_eq!(AgentPolicy::default().summary(), "");
        let p = AgentPolicy {
            read_only: true,
            exec: false,
            deploy_images: vec!["a/*".into()],
            ..AgentPolicy::default()
        };
        assert_eq!(
            p.summary(),
            "read_only, exec=false, deploy_images=[\"a/*\"]"
        );
    }
}
