//! The store's test suite, one set of cases run against both backends:
//! SQLite as unit tests (`sqlite::tests`), PostgreSQL from
//! `tests/tests/store_postgres.rs` on a server it starts. Each case takes
//! a fresh, empty store. A test suite: it panics on the first failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use tokio::sync::broadcast;

use super::backend::Backend;

mod alert_rules;
mod cluster;
mod core;
mod health;
mod misc;

/// A case: its name and what it runs on a fresh store.
pub type Case<B> = (&'static str, fn(&B));

macro_rules! cases {
    ($($m:ident::$f:ident),* $(,)?) => {
        /// Every case of the suite.
        pub fn cases<B: Backend>() -> Vec<Case<B>> {
            vec![$((concat!(stringify!($m), "::", stringify!($f)), $m::$f::<B>)),*]
        }
    };
}

cases!(
    core::join_token_consumed_once,
    core::name_taken_until_revoked,
    core::the_label_index_follows_enrolments_and_revocations,
    core::api_tokens_and_audit,
    core::audit_pages_newest_first_with_the_token_id,
    core::withdraw_forgets_a_recent_enrolment_and_frees_its_token,
    core::rotation_swaps_a_key_once,
    core::a_key_enrols_under_one_name_only,
    health::every_tier_reads_the_same_before_and_after_packing,
    health::rows_that_come_late_merge_into_the_packed_block,
    health::an_outage_replayed_later_fills_its_gap_in_every_tier,
    health::retention_drops_old_tiers_and_names_of_containers_gone,
    health::batches_past_one_transaction_are_all_written,
    health::blocks_written_straight_are_read_and_not_rolled_up,
    alert_rules::apply_adds_updates_replaces_and_prunes_in_one_transaction,
    alert_rules::held_notes_wait_and_a_resolve_is_held_with_its_firing_notice,
    alert_rules::silences_end_early_and_list_only_while_not_ended,
    misc::old_deploy_records_load_and_times_leave_as_rfc3339,
    misc::a_pushed_outcome_lands_only_on_the_agents_unfinished_deploy,
    misc::deploys_list_newest_first_and_count_by_status,
    misc::sessions_record_and_prune_oldest_recordings_first,
    misc::channels_and_rules_keep_names_unique_and_rules_pin_their_channel,
    misc::a_channel_above_the_alerts_severity_gets_no_notification,
    misc::one_alert_fires_per_key_and_its_notifications_are_retried_until_delivered,
    misc::buffer_seqs_are_kept_per_agent,
    cluster::leases_move_extend_and_drop_only_for_their_holder,
    cluster::changes_name_revocations_since_and_the_enrolment_mark,
    cluster::dashboard_sessions_are_seen_by_every_hub_until_they_end,
);

/// Run every case, each on a store made by `fresh`.
pub fn run<B: Backend>(fresh: impl Fn() -> B) {
    for (name, case) in cases::<B>() {
        eprintln!("store suite: {name}");
        case(&fresh());
    }
}

/// How long a revocation may take to be announced (PostgreSQL hears its
/// own `NOTIFY` back through its listener).
pub const ANNOUNCE_WITHIN: Duration = Duration::from_secs(1);

/// The next revoked id heard within [`ANNOUNCE_WITHIN`], if any.
pub fn recv_within(rx: &mut broadcast::Receiver<String>) -> Option<String> {
    let until = Instant::now() + ANNOUNCE_WITHIN;
    while Instant::now() < until {
        match rx.try_recv() {
            Ok(id) => return Some(id),
            Err(broadcast::error::TryRecvError::Empty) => {
                std::thread::sleep(Duration::from_millis(10))
            }
            Err(_) => return None,
        }
    }
    None
}
