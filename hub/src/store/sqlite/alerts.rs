//! [`AlertStore`] on SQLite: the main connection, as every write.

use nextdeploy_shared::protocol::alerts::AlertInfo;

use super::SqliteStore;
use crate::store::alert_state::{self, Attempt, Due, NewAlert, Outbox};
use crate::store::alerts::{self, AlertStore, ChannelRecord, RuleRecord};
use crate::store::StoreResult;

impl AlertStore for SqliteStore {
    fn add_alert_channel(&self, ch: &ChannelRecord) -> StoreResult<()> {
        self.with(|c| alerts::add_channel(c, ch))
    }
    fn alert_channels(&self) -> StoreResult<Vec<ChannelRecord>> {
        self.with(|c| alerts::channels(c))
    }
    fn alert_channel(&self, name: &str) -> StoreResult<Option<ChannelRecord>> {
        self.with(|c| alerts::channel(c, name))
    }
    fn remove_alert_channel(&self, name: &str) -> StoreResult<bool> {
        self.with(|c| alerts::remove_channel(c, name))
    }
    fn add_alert_rule(&self, r: &RuleRecord) -> StoreResult<()> {
        self.with(|c| alerts::add_rule(c, r))
    }
    fn alert_rules(&self) -> StoreResult<Vec<RuleRecord>> {
        self.with(|c| alerts::rules(c))
    }
    fn remove_alert_rule(&self, name: &str, at: i64) -> StoreResult<bool> {
        self.with(|c| alerts::remove_rule(c, name, at))
    }
    fn fire_alert(&self, a: &NewAlert, note: Option<&Outbox>) -> StoreResult<bool> {
        self.with(|c| alert_state::fire(c, a, note))
    }
    fn resolve_alert(&self, id: &str, at: i64, note: Option<&Outbox>) -> StoreResult<bool> {
        self.with(|c| alert_state::resolve(c, id, at, note))
    }
    fn announce_alert(&self, id: &str, note: &Outbox) -> StoreResult<()> {
        self.with(|c| alert_state::announce(c, id, note))
    }
    fn last_resolved(&self, rule: &str, server: &str, container: &str) -> StoreResult<Option<i64>> {
        self.with(|c| alert_state::last_resolved(c, rule, server, container))
    }
    fn firing_alerts(&self) -> StoreResult<Vec<AlertInfo>> {
        self.with(|c| alert_state::firing(c))
    }
    fn alert_history(&self, since: i64, limit: u32) -> StoreResult<Vec<AlertInfo>> {
        self.with(|c| alert_state::history(c, since, limit))
    }
    fn due_notifications(&self, now: i64, limit: u32) -> StoreResult<Vec<Due>> {
        self.with(|c| alert_state::due(c, now, limit))
    }
    fn record_attempt(&self, a: &Attempt) -> StoreResult<()> {
        self.with(|c| alert_state::record_attempt(c, a))
    }
}
