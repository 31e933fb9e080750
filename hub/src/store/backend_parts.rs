//! The sub-traits of [`super::Store`] on any [`Backend`]: exec sessions,
//! alerts, alert rules, buffer sequences and the cluster's presence, on the
//! main connection as every write.

use nextdeploy_shared::protocol::alerts::AlertInfo;
use nextdeploy_shared::protocol::exec::ExecSession;

use super::alert_rules::{self, AlertRuleStore, ApplyPlan, HeldNote, SilenceRecord};
use super::alert_state::{self, Attempt, Due, NewAlert, Outbox};
use super::alerts::{self, AlertStore, ChannelRecord, RuleRecord};
use super::backend::Backend;
use super::buffer_seqs::{self, BufferSeqs};
use super::cluster::{self, Changes, ClusterStore, HubRow, LeaseRow};
use super::exec::{self, ExecSessions, NewSession, SessionEnd};
use super::sessions::{self, SessionRow, SessionStore};
use super::StoreResult;

impl<B: Backend> ExecSessions for B {
    fn insert_exec_session(&self, s: &NewSession) -> StoreResult<()> {
        self.main(|c| exec::insert(c, s))
    }
    fn finish_exec_session(&self, id: &str, end: &SessionEnd) -> StoreResult<()> {
        self.main(|c| exec::finish(c, id, end))
    }
    fn append_exec_recording(&self, id: &str, data: &[u8]) -> StoreResult<()> {
        self.main(|c| exec::append(c, id, data))
    }
    fn list_exec_sessions(
        &self,
        server: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<ExecSession>> {
        self.main(|c| exec::list(c, server, limit))
    }
    fn exec_session(&self, id: &str) -> StoreResult<Option<ExecSession>> {
        self.main(|c| exec::get(c, id))
    }
    fn exec_recording(&self, id: &str) -> StoreResult<Vec<Vec<u8>>> {
        self.main(|c| exec::recording(c, id))
    }
    fn prune_recordings(&self, max: u64) -> StoreResult<usize> {
        self.main(|c| exec::prune(c, max))
    }
}

impl<B: Backend> AlertStore for B {
    fn add_alert_channel(&self, ch: &ChannelRecord) -> StoreResult<()> {
        self.main(|c| alerts::add_channel(c, ch))
    }
    fn alert_channels(&self) -> StoreResult<Vec<ChannelRecord>> {
        self.main(alerts::channels)
    }
    fn alert_channel(&self, name: &str) -> StoreResult<Option<ChannelRecord>> {
        self.main(|c| alerts::channel(c, name))
    }
    fn remove_alert_channel(&self, name: &str) -> StoreResult<bool> {
        self.main(|c| alerts::remove_channel(c, name))
    }
    fn add_alert_rule(&self, r: &RuleRecord) -> StoreResult<()> {
        self.main(|c| alerts::add_rule(c, r))
    }
    fn alert_rules(&self) -> StoreResult<Vec<RuleRecord>> {
        self.main(alerts::rules)
    }
    fn remove_alert_rule(&self, name: &str, at: i64) -> StoreResult<bool> {
        self.main(|c| alerts::remove_rule(c, name, at))
    }
    fn fire_alert(&self, a: &NewAlert, note: Option<&Outbox>) -> StoreResult<bool> {
        self.main(|c| alert_state::fire(c, a, note))
    }
    fn resolve_alert(&self, id: &str, at: i64, note: Option<&Outbox>) -> StoreResult<bool> {
        self.main(|c| alert_state::resolve(c, id, at, note))
    }
    fn announce_alert(&self, id: &str, note: &Outbox) -> StoreResult<()> {
        self.main(|c| alert_state::announce(c, id, note))
    }
    fn last_resolved(&self, rule: &str, server: &str, container: &str) -> StoreResult<Option<i64>> {
        self.main(|c| alert_state::last_resolved(c, rule, server, container))
    }
    fn firing_alerts(&self) -> StoreResult<Vec<AlertInfo>> {
        self.main(alert_state::firing)
    }
    fn alert_history(&self, since: i64, limit: u32) -> StoreResult<Vec<AlertInfo>> {
        self.main(|c| alert_state::history(c, since, limit))
    }
    fn due_notifications(&self, now: i64, limit: u32) -> StoreResult<Vec<Due>> {
        self.main(|c| alert_state::due(c, now, limit))
    }
    fn record_attempt(&self, a: &Attempt) -> StoreResult<()> {
        self.main(|c| alert_state::record_attempt(c, a))
    }
}

impl<B: Backend> AlertRuleStore for B {
    fn update_alert_rule(&self, r: &RuleRecord) -> StoreResult<bool> {
        self.main(|c| alert_rules::update_rule(c, r))
    }
    fn apply_alerts(&self, p: &ApplyPlan, at: i64) -> StoreResult<()> {
        self.main(|c| alert_rules::apply(c, p, at))
    }
    fn add_silence(&self, s: &SilenceRecord) -> StoreResult<()> {
        self.main(|c| alert_rules::add_silence(c, s))
    }
    fn silences(&self, at: i64) -> StoreResult<Vec<SilenceRecord>> {
        self.main(|c| alert_rules::silences(c, at))
    }
    fn end_silence(&self, id: &str, at: i64) -> StoreResult<Option<SilenceRecord>> {
        self.main(|c| alert_rules::end_silence(c, id, at))
    }
    fn held_notifications(&self) -> StoreResult<Vec<HeldNote>> {
        self.main(alert_rules::held)
    }
    fn release_notification(&self, id: &str, send: bool, at: i64) -> StoreResult<()> {
        self.main(|c| alert_rules::release(c, id, send, at))
    }
    fn last_notes(&self) -> StoreResult<Vec<(String, i64)>> {
        self.main(alert_rules::last_notes)
    }
}

impl<B: Backend> BufferSeqs for B {
    fn buffer_seqs(&self, agent: &str) -> StoreResult<Option<(String, String)>> {
        self.main(|c| buffer_seqs::get(c, agent))
    }
    fn set_buffer_seqs(&self, agent: &str, id: &str, ranges: &str) -> StoreResult<()> {
        self.main(|c| buffer_seqs::set(c, agent, id, ranges))
    }
}

impl<B: Backend> SessionStore for B {
    fn put_session(&self, s: &SessionRow, forget_before: i64) -> StoreResult<()> {
        self.main(|db| sessions::put(db, s, forget_before))
    }
    fn live_session(&self, hash: &str, now: i64) -> StoreResult<Option<SessionRow>> {
        self.main(|db| sessions::live(db, hash, now))
    }
    fn end_session(&self, hash: &str, now: i64) -> StoreResult<bool> {
        self.main(|db| sessions::end(db, hash, now))
    }
    fn sessions_ended_since(&self, since: i64) -> StoreResult<Vec<String>> {
        self.main(|db| sessions::ended_since(db, since))
    }
}

impl<B: Backend> ClusterStore for B {
    fn cluster_item(&self, name: &str) -> StoreResult<Option<Vec<u8>>> {
        self.main(|db| cluster::item(db, name))
    }
    fn insert_cluster_item(&self, name: &str, value: &[u8]) -> StoreResult<bool> {
        self.main(|db| cluster::insert_item(db, name, value))
    }
    fn heartbeat(&self, hub: &HubRow, lease_until: i64, forget_before: i64) -> StoreResult<u64> {
        self.main(|db| cluster::heartbeat(db, hub, lease_until, forget_before))
    }
    fn hubs(&self) -> StoreResult<Vec<HubRow>> {
        self.main(cluster::hubs)
    }
    fn take_lease(&self, agent: &str, hub_id: &str, expires_at: i64) -> StoreResult<()> {
        self.main(|db| cluster::take_lease(db, agent, hub_id, expires_at))
    }
    fn take_leases(&self, hub_id: &str, leases: &[(String, i64)]) -> StoreResult<()> {
        self.main(|db| cluster::take_leases(db, hub_id, leases))
    }
    fn drop_lease(&self, agent: &str, hub_id: &str) -> StoreResult<bool> {
        self.main(|db| cluster::drop_lease(db, agent, hub_id))
    }
    fn leases(&self) -> StoreResult<Vec<LeaseRow>> {
        self.main(cluster::leases)
    }
    fn changes_since(&self, since: i64) -> StoreResult<Changes> {
        self.main(|db| cluster::changes_since(db, since))
    }
    fn changed_elsewhere(&self, tokens_revoked: &[String], agents_changed: bool) {
        if agents_changed {
            self.label_cache().drop_index();
        }
        for id in tokens_revoked {
            self.heard_revocation(id);
        }
    }
}
