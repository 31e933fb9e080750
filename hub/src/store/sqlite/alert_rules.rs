//! [`AlertRuleStore`] on SQLite: the main connection, as every write.

use super::SqliteStore;
use crate::store::alert_rules::{self, AlertRuleStore, ApplyPlan, HeldNote, SilenceRecord};
use crate::store::alerts::RuleRecord;
use crate::store::StoreResult;

impl AlertRuleStore for SqliteStore {
    fn update_alert_rule(&self, r: &RuleRecord) -> StoreResult<bool> {
        self.with(|c| alert_rules::update_rule(c, r))
    }
    fn apply_alerts(&self, p: &ApplyPlan, at: i64) -> StoreResult<()> {
        self.with(|c| alert_rules::apply(c, p, at))
    }
    fn add_silence(&self, s: &SilenceRecord) -> StoreResult<()> {
        self.with(|c| alert_rules::add_silence(c, s))
    }
    fn silences(&self, at: i64) -> StoreResult<Vec<SilenceRecord>> {
        self.with(|c| alert_rules::silences(c, at))
    }
    fn end_silence(&self, id: &str, at: i64) -> StoreResult<Option<SilenceRecord>> {
        self.with(|c| alert_rules::end_silence(c, id, at))
    }
    fn held_notifications(&self) -> StoreResult<Vec<HeldNote>> {
        self.with(|c| alert_rules::held(c))
    }
    fn release_notification(&self, id: &str, send: bool, at: i64) -> StoreResult<()> {
        self.with(|c| alert_rules::release(c, id, send, at))
    }
    fn last_notes(&self) -> StoreResult<Vec<(String, i64)>> {
        self.with(|c| alert_rules::last_notes(c))
    }
}
