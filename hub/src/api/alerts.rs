//! The alert actions: channels and rules (admin), alerts firing and past
//! (viewer). Evaluation and delivery live in `crate::alerts`.

use nextdeploy_shared::labels::validate_name;
use nextdeploy_shared::protocol::alerts::{
    AlertChannelAdd, AlertHistory, AlertRemoved, AlertRuleAdd, ByName, ChannelTested,
};
use nextdeploy_shared::protocol::alerts::{
    AlertInfo, AlertStatus, ChannelKind, Condition, Severity,
};
use nextdeploy_shared::time::{now_unix, rfc3339};
use serde_json::{json, Value};

use super::admin::audit;
use super::{ApiError, Caller};
use crate::alerts::{body, channels, send};
use crate::limits::{ALERT_HISTORY_DEFAULT_LIMIT, ALERT_HISTORY_MAX_LIMIT};
use crate::store::alerts::{ChannelRecord, RuleRecord};
use crate::store::{self};
use crate::Services;

pub(super) fn to_value<T: serde::Serialize>(v: &T) -> Result<Value, ApiError> {
    serde_json::to_value(v).map_err(|e| ApiError::BadRequest(e.to_string()))
}

/// `alert_channel_add`.
pub async fn channel_add(
    svc: &Services,
    caller: &Caller,
    p: AlertChannelAdd,
) -> Result<Value, ApiError> {
    let rec = channel_record(p)?;
    let info = rec.info();
    store::blocking(&svc.store, move |s| s.add_alert_channel(&rec)).await?;
    audit(
        svc,
        caller,
        "alert_channel_add",
        &info.name,
        info.kind.as_str(),
    )
    .await;
    to_value(&info)
}

/// A channel checked and ready to store (`alert_channel_add`, `alert_apply`).
pub fn channel_record(p: AlertChannelAdd) -> Result<ChannelRecord, ApiError> {
    validate_name(&p.name).map_err(|e| ApiError::BadRequest(format!("payload.name: {e}")))?;
    channels::setup::record(p, now_unix()).map_err(ApiError::BadRequest)
}

/// `alert_channel_list`.
pub async fn channel_list(svc: &Services) -> Result<Value, ApiError> {
    let all = store::blocking(&svc.store, |s| s.alert_channels()).await?;
    to_value(&all.iter().map(ChannelRecord::info).collect::<Vec<_>>())
}

/// `alert_channel_remove`.
pub async fn channel_remove(svc: &Services, caller: &Caller, p: ByName) -> Result<Value, ApiError> {
    let name = p.name.clone();
    if !store::blocking(&svc.store, move |s| s.remove_alert_channel(&name)).await? {
        return Err(ApiError::NotFound(format!("no channel named {:?}", p.name)));
    }
    audit(svc, caller, "alert_channel_remove", &p.name, "").await;
    to_value(&AlertRemoved { name: p.name })
}

/// One test notification of `a` to `ch`: the answer, or why none.
async fn test_once(
    svc: &Services,
    ch: &ChannelRecord,
    a: &AlertInfo,
) -> (Option<u16>, Option<String>) {
    let id = body::notification_id(&a.id, a.status);
    match send::deliver(&svc.alerts.poster, ch, &body::webhook(&id, a)).await {
        Ok(code) if (200..300).contains(&code) => (Some(code), None),
        Ok(code) => (Some(code), Some(format!("HTTP {code}"))),
        Err(e) => (None, Some(e)),
    }
}

/// `alert_channel_test`: one message now, not through the outbox (for
/// PagerDuty a trigger, then its resolve).
pub async fn channel_test(svc: &Services, p: ByName) -> Result<Value, ApiError> {
    let name = p.name.clone();
    let ch = store::blocking(&svc.store, move |s| s.alert_channel(&name))
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no channel named {:?}", p.name)))?;
    let now = now_unix();
    let mut test = AlertInfo {
        id: format!("test-{}", hex::encode(rand::random::<[u8; 8]>())),
        rule: "test".into(),
        condition: Condition::ContainerDied,
        severity: Severity::Info,
        server: "nextdeploy-hub".into(),
        container: None,
        labels: Default::default(),
        status: AlertStatus::Firing,
        summary: format!(
            "a test message of channel {} from the NextDeploy hub",
            ch.name
        ),
        started_at: rfc3339(now),
        resolved_at: None,
        value: json!({"test": true}),
        notified: true,
        notifications: Vec::new(),
    };
    let (status, error) = test_once(svc, &ch, &test).await;
    if ch.kind == ChannelKind::Pagerduty && error.is_none() {
        // Close the incident the test opened (same dedup_key).
        test.status = AlertStatus::Resolved;
        test.resolved_at = Some(rfc3339(now_unix()));
        let _ = test_once(svc, &ch, &test).await;
    }
    to_value(&ChannelTested {
        name: ch.name,
        delivered: error.is_none(),
        status,
        error,
    })
}

/// `alert_rule_add`.
pub async fn rule_add(svc: &Services, caller: &Caller, p: AlertRuleAdd) -> Result<Value, ApiError> {
    let rec = super::alert_rules::rule_record(p)?;
    let channel = rec.channel.clone();
    if store::blocking(&svc.store, move |s| s.alert_channel(&channel))
        .await?
        .is_none()
    {
        return Err(ApiError::NotFound(format!(
            "no channel named {:?}",
            rec.channel
        )));
    }
    let mut info = rec.info();
    let scope = super::alert_rules::scope(svc, rec.selector.clone(), rec.container.clone());
    store::blocking(&svc.store, move |s| s.add_alert_rule(&rec)).await?;
    svc.alerts.rules_changed();
    audit(
        svc,
        caller,
        "alert_rule_add",
        &info.name,
        info.condition.as_str(),
    )
    .await;
    info.scope = Some(scope.await?);
    to_value(&info)
}

/// `alert_rule_list`.
pub async fn rule_list(svc: &Services) -> Result<Value, ApiError> {
    let all = store::blocking(&svc.store, |s| s.alert_rules()).await?;
    to_value(&all.iter().map(RuleRecord::info).collect::<Vec<_>>())
}

/// `alert_rule_remove`.
pub async fn rule_remove(svc: &Services, caller: &Caller, p: ByName) -> Result<Value, ApiError> {
    let name = p.name.clone();
    let removed = store::blocking(&svc.store, move |s| s.remove_alert_rule(&name, now_unix()));
    if !removed.await? {
        return Err(ApiError::NotFound(format!("no rule named {:?}", p.name)));
    }
    svc.alerts.rules_changed();
    audit(svc, caller, "alert_rule_remove", &p.name, "").await;
    to_value(&AlertRemoved { name: p.name })
}

/// `alert_list`: firing now.
pub async fn list(svc: &Services) -> Result<Value, ApiError> {
    to_value(&store::blocking(&svc.store, |s| s.firing_alerts()).await?)
}

/// `alert_history`: started since `since` (default 24 h).
pub async fn history(svc: &Services, p: AlertHistory) -> Result<Value, ApiError> {
    let back = super::fleet::since_seconds(p.since, 86_400)?;
    let limit = match p.limit {
        None => ALERT_HISTORY_DEFAULT_LIMIT,
        Some(n) if (1..=ALERT_HISTORY_MAX_LIMIT).contains(&n) => n,
        Some(_) => {
            return Err(ApiError::BadRequest(format!(
                "payload.limit must be between 1 and {ALERT_HISTORY_MAX_LIMIT}"
            )))
        }
    };
    let since = now_unix().saturating_sub(back.max(0));
    to_value(&store::blocking(&svc.store, move |s| s.alert_history(since, limit)).await?)
}
