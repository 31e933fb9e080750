//! The agent enforces its own `[policy]` (agent.toml) on every request it
//! receives, whatever the hub asks: [`Policy::check`] runs in
//! [`crate::dispatch::handle`] before any handler, and [`Policy::check_exec`]
//! is the check an exec runs with its user. The rules themselves live in
//! [`nextdeploy_shared::protocol::policy`], so the hub refuses early with the
//! same code; here they are enforced and every refusal is logged.

use nextdeploy_shared::protocol::{Action, AgentPolicy, PolicyDenied, Reply};
use tracing::warn;

/// The policy this agent process enforces.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Policy(AgentPolicy);

impl Policy {
    /// Enforce `rules` (validated with the config).
    pub fn new(rules: AgentPolicy) -> Policy {
        Policy(rules)
    }

    /// For the short connections of `enroll` and `withdraw`, which serve no
    /// request: should a hub send one anyway, nothing that changes the host.
    pub fn locked() -> Policy {
        Policy(AgentPolicy {
            read_only: true,
            exec: false,
            exec_allow_root: false,
            deploy_images: Vec::new(),
            lifecycle: false,
        })
    }

    /// The rules, as the hello and `info` report them.
    pub fn rules(&self) -> &AgentPolicy {
        &self.0
    }

    /// Whether `action` may run here; a refusal is logged with its rule.
    pub fn check(&self, action: &Action) -> Result<(), PolicyDenied> {
        self.0.check(action).inspect_err(|d| {
            warn!(
                action = action.kind().name(),
                rule = d.rule.name(),
                "refused by policy: {d}"
            )
        })
    }

    /// Whether an exec as `user` (`None`: the image's default) may run here;
    /// a refusal is logged with its rule.
    pub fn check_exec(&self, user: Option<&str>) -> Result<(), PolicyDenied> {
        self.0.check_exec(user).inspect_err(|d| {
            warn!(
                action = "exec",
                rule = d.rule.name(),
                "refused by policy: {d}"
            )
        })
    }

    /// The `error` reply to request `id` that `action` gets, if refused.
    pub fn refusal(&self, id: Option<u64>, action: &Action) -> Option<Reply> {
        self.check(action)
            .err()
            .map(|d| Reply::error(id, d.code(), d.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nextdeploy_shared::protocol::{PolicyRule, ReplyType};
    use serde_json::json;

    fn action(name: &str, payload: serde_json::Value) -> Action {
        Action::parse(name, payload).unwrap()
    }

    #[test]
    fn a_refusal_is_an_error_reply_naming_the_rule() {
        let p = Policy::new(AgentPolicy {
            lifecycle: false,
            ..AgentPolicy::default()
        });
        let r = p
            .refusal(Some(4), &action("kill", json!({"container": "web"})))
            .expect("refused");
        assert_eq!((r.id, r.kind), (Some(4), ReplyType::Error));
        assert_eq!(r.data["code"], "forbidden_by_policy");
        let msg = r.data["message"].as_str().unwrap();
        assert!(msg.starts_with("policy.lifecycle: "), "{msg}");
        assert!(p.refusal(Some(5), &action("ps", json!({}))).is_none());
    }

    #[test]
    fn the_default_allows_and_locked_refuses_every_change() {
        let open = Policy::default();
        let locked = Policy::locked();
        for (name, payload) in [
            ("stop", json!({"container": "web"})),
            ("deploy", json!({"image": "x:1"})),
            ("pull", json!({"image": "x:1"})),
        ] {
            assert!(open.check(&action(name, payload.clone())).is_ok(), "{name}");
            assert_eq!(
                locked.check(&action(name, payload)).unwrap_err().rule,
                PolicyRule::ReadOnly
            );
        }
        assert!(open.check_exec(None).is_ok());
        assert!(locked.check_exec(Some("app")).is_err());
        assert!(locked.check(&action("ping", json!({}))).is_ok());
    }

    #[test]
    fn check_exec_names_its_rule() {
        let p = Policy::new(AgentPolicy {
            exec_allow_root: false,
            ..AgentPolicy::default()
        });
        let d = p.check_exec(Some("0:0")).unwrap_err();
        assert_eq!(d.rule, PolicyRule::ExecAllowRoot);
        assert!(d.to_string().starts_with("policy.exec_allow_root: "), "{d}");
        assert!(p.check_exec(Some("1000")).is_ok());
        let off = Policy::new(AgentPolicy {
            exec: false,
            ..AgentPolicy::default()
        });
        assert_eq!(
            off.check_exec(Some("app")).unwrap_err().rule,
            PolicyRule::Exec
        );
    }
}
