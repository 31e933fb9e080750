//! Rules as the evaluator uses them: the stored record with its selector and
//! container pattern parsed once, and the cooldown of each severity.

use nextdeploy_shared::labels::{Labels, Selector};
use nextdeploy_shared::protocol::alerts::{Condition, Severity};

use crate::store::alerts::RuleRecord;

/// After an alert of a key resolves, a new one of the same key within this
/// many seconds fires without a notification (flapping damped); it is
/// announced if it is still firing once the cooldown has passed since it
/// started. Critical alerts are damped least: someone must act on them.
pub fn cooldown_s(s: Severity) -> i64 {
    match s {
        Severity::Critical => 60,
        Severity::Warning => 300,
        Severity::Info => 1800,
    }
}

/// A rule ready to match.
#[derive(Debug, Clone)]
pub struct Rule {
    /// As stored.
    pub record: RuleRecord,
    selector: Option<Selector>,
    container: Option<glob::Pattern>,
    /// Its quiet hours, if any.
    pub quiet: Option<super::hold::QuietHours>,
}

impl Rule {
    /// Parse a stored rule's selector and pattern; `None` (logged by the
    /// caller) if they no longer parse.
    pub fn compile(record: RuleRecord) -> Result<Rule, String> {
        let selector = record
            .selector
            .as_deref()
            .map(Selector::parse)
            .transpose()?;
        let container = record
            .container
            .as_deref()
            .map(glob::Pattern::new)
            .transpose()
            .map_err(|e| e.to_string())?;
        let x = &record.extra;
        let quiet = x
            .quiet_hours
            .as_deref()
            .map(|w| super::hold::QuietHours::parse(w, x.quiet_tz.as_deref()))
            .transpose()?;
        Ok(Rule {
            record,
            selector,
            container,
            quiet,
        })
    }

    /// Its condition.
    pub fn condition(&self) -> Condition {
        self.record.condition
    }

    /// Whether it watches an agent with these labels.
    pub fn matches_agent(&self, labels: &Labels) -> bool {
        self.selector.as_ref().is_none_or(|s| s.matches(labels))
    }

    /// Whether it watches this container (by name) of an agent with these
    /// labels.
    pub fn matches(&self, labels: &Labels, container: &str) -> bool {
        self.matches_agent(labels)
            && self
                .container
                .as_ref()
                .is_none_or(|p| p.matches(container.trim_start_matches('/')))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(selector: Option<&str>, container: Option<&str>) -> Rule {
        Rule::compile(RuleRecord {
            name: "r".into(),
            condition: Condition::ContainerDied,
            for_s: 0,
            selector: selector.map(Into::into),
            container: container.map(Into::into),
            severity: Severity::Warning,
            channel: "ops".into(),
            created_at: 0,
            extra: Default::default(),
        })
        .unwrap()
    }

    #[test]
    fn rules_match_by_selector_and_container_glob() {
        let prod: Labels = [("env".to_string(), "prod".to_string())].into();
        let r = rule(Some("env=prod"), Some("web*"));
        assert!(r.matches(&prod, "web-1"));
        assert!(!r.matches(&prod, "db"));
        assert!(!r.matches(&Labels::new(), "web-1"));
        assert!(rule(None, None).matches(&Labels::new(), "anything"));
        assert!(cooldown_s(Severity::Critical) < cooldown_s(Severity::Warning));
    }
}
