//! The alert actions beyond [`super::alerts`]: a rule checked into its
//! record, its scope's preview, `alert_apply` (admin) and silences
//! (operators add and end them, viewers list them).

use std::collections::BTreeSet;

use nextdeploy_shared::labels::{validate_name, Selector};
use nextdeploy_shared::protocol::admin::ById;
use nextdeploy_shared::protocol::alert_rules::{
    AlertApplied, AlertApply, AlertRulePreview, AlertSilenceAdd, ScopePreview,
};
use nextdeploy_shared::protocol::alerts::{AlertRuleAdd, Condition};
use nextdeploy_shared::time::now_unix;
use serde_json::Value;

use super::admin::audit;
use super::alerts::{channel_record, to_value};
use super::{ApiError, Caller};
use crate::alerts::hold::QuietHours;
use crate::limits::{
    ALERT_MAX_FOR, ALERT_MAX_SILENCE, ALERT_MIN_REPEAT, ALERT_RESTART_MAX_COUNT, SCOPE_SAMPLE,
};
use crate::store;
use crate::store::alert_rules::{ApplyPlan, SilenceRecord};
use crate::store::alerts::{RuleExtra, RuleRecord};
use crate::Services;

fn bad(field: &str, e: impl std::fmt::Display) -> ApiError {
    ApiError::BadRequest(format!("payload.{field}: {e}"))
}

fn check_scope(selector: Option<&str>, container: Option<&str>) -> Result<(), ApiError> {
    if let Some(s) = selector {
        Selector::parse(s).map_err(|e| bad("selector", e))?;
    }
    if let Some(c) = container {
        glob::Pattern::new(c).map_err(|e| bad("container", e))?;
    }
    Ok(())
}

/// The settings only some conditions take, checked.
fn rule_extra(p: &AlertRuleAdd) -> Result<RuleExtra, ApiError> {
    let usage = matches!(p.condition, Condition::Cpu | Condition::Memory);
    match p.above {
        Some(_) if !usage => return Err(bad("above", "only cpu and memory rules take it")),
        Some(a) if !(a.is_finite() && a > 0.0 && a <= 10_000.0) => {
            return Err(bad("above", format!("{a}: give a percent above 0")))
        }
        None if usage => return Err(bad("above", "cpu and memory rules need a threshold")),
        _ => {}
    }
    let restart = p.condition == Condition::RestartLoop;
    if !restart && (p.count.is_some() || p.within_s.is_some()) {
        return Err(ApiError::BadRequest(
            "payload.count and payload.within_s are for restart_loop rules".into(),
        ));
    }
    if p.count
        .is_some_and(|c| c == 0 || c > ALERT_RESTART_MAX_COUNT)
    {
        return Err(bad("count", format!("1 to {ALERT_RESTART_MAX_COUNT}")));
    }
    if p.within_s
        .is_some_and(|w| w == 0 || w > ALERT_MAX_FOR.as_secs())
    {
        return Err(bad(
            "within_s",
            format!("1 to {} seconds", ALERT_MAX_FOR.as_secs()),
        ));
    }
    if p.repeat_s.is_some_and(|r| r < ALERT_MIN_REPEAT.as_secs()) {
        let min = ALERT_MIN_REPEAT.as_secs();
        return Err(bad("repeat_s", format!("at least {min} seconds")));
    }
    match (&p.quiet_hours, &p.quiet_tz) {
        (Some(w), tz) => {
            QuietHours::parse(w, tz.as_deref()).map_err(|e| bad("quiet_hours", e))?;
        }
        (None, Some(_)) => return Err(bad("quiet_tz", "give quiet_hours with it")),
        (None, None) => {}
    }
    Ok(RuleExtra {
        above: p.above,
        count: p
            .count
            .or(restart.then_some(crate::alerts::restarts::DEFAULT_COUNT)),
        within_s: p
            .within_s
            .or(restart.then_some(crate::alerts::restarts::DEFAULT_WITHIN_S)),
        repeat_s: p.repeat_s,
        quiet_hours: p.quiet_hours.clone(),
        quiet_tz: p.quiet_tz.clone(),
    })
}

/// A rule checked and ready to store (`alert_rule_add`, `alert_apply`).
pub fn rule_record(p: AlertRuleAdd) -> Result<RuleRecord, ApiError> {
    validate_name(&p.name).map_err(|e| bad("name", e))?;
    check_scope(p.selector.as_deref(), p.container.as_deref())?;
    let for_s = p.for_s.unwrap_or(0);
    if for_s > ALERT_MAX_FOR.as_secs() {
        return Err(bad(
            "for_s",
            format!("at most {} seconds", ALERT_MAX_FOR.as_secs()),
        ));
    }
    let agent_level = matches!(
        p.condition,
        Condition::AgentOffline | Condition::DockerUnavailable
    );
    if p.container.is_some() && agent_level {
        return Err(ApiError::BadRequest(format!(
            "{} rules take no container pattern",
            p.condition.as_str()
        )));
    }
    let extra = rule_extra(&p)?;
    Ok(RuleRecord {
        name: p.name,
        condition: p.condition,
        for_s,
        selector: p.selector,
        container: p.container,
        severity: p.severity.unwrap_or_default(),
        channel: p.channel,
        created_at: now_unix(),
        extra,
    })
}

/// What a scope matches now: enrolled agents by label, connected ones, and
/// the containers in their latest snapshots.
pub async fn scope(
    svc: &Services,
    selector: Option<String>,
    container: Option<String>,
) -> Result<ScopePreview, ApiError> {
    check_scope(selector.as_deref(), container.as_deref())?;
    let sel = selector.as_deref().map(Selector::parse).transpose();
    let sel = sel.map_err(|e| bad("selector", e))?;
    let pat = container.as_deref().map(glob::Pattern::new).transpose();
    let pat = pat.map_err(|e| bad("container", e))?;
    let agents = store::blocking(&svc.store, |s| s.agent_labels()).await?;
    let mut p = ScopePreview::default();
    for (name, labels) in agents.iter() {
        if !sel.as_ref().is_none_or(|s| s.matches(labels)) {
            continue;
        }
        p.agents += 1;
        let Some(conn) = svc.registry.get(name) else {
            continue;
        };
        p.agents_connected += 1;
        let Some(snap) = conn.latest_health() else {
            continue;
        };
        for c in &snap.containers {
            let n = c.name.trim_start_matches('/');
            if pat.as_ref().is_none_or(|g| g.matches(n)) {
                p.containers += 1;
                if p.sample.len() < SCOPE_SAMPLE {
                    p.sample.push(format!("{name}/{n}"));
                }
            }
        }
    }
    Ok(p)
}

/// `alert_rule_preview`.
pub async fn preview(svc: &Services, p: AlertRulePreview) -> Result<Value, ApiError> {
    to_value(&scope(svc, p.selector, p.container).await?)
}

/// The plan that makes the store say what `p` says, and its summary.
async fn plan(svc: &Services, p: AlertApply) -> Result<(ApplyPlan, AlertApplied), ApiError> {
    let (have_ch, have_rules) =
        store::blocking(&svc.store, |s| Ok((s.alert_channels()?, s.alert_rules()?))).await?;
    let mut plan = ApplyPlan::default();
    let mut sum = AlertApplied {
        dry_run: p.dry_run,
        ..Default::default()
    };
    let mut seen = BTreeSet::new();
    for c in p.channels {
        let mut rec = channel_record(c)?;
        if !seen.insert(format!("channel {}", rec.name)) {
            return Err(bad("channels", format!("{:?} appears twice", rec.name)));
        }
        let label = format!("channel {}", rec.name);
        match have_ch.iter().find(|h| h.name == rec.name) {
            None => (plan.add_channels.push(rec), sum.added.push(label)).1,
            Some(h) => {
                rec.created_at = h.created_at;
                if *h == rec {
                    sum.unchanged.push(label);
                } else {
                    plan.replace_channels.push(rec);
                    sum.updated.push(label);
                }
            }
        }
    }
    let known: BTreeSet<String> = have_ch.iter().map(|c| c.name.clone()).collect();
    for r in p.rules {
        let mut rec = rule_record(r)?;
        if !seen.insert(format!("rule {}", rec.name)) {
            return Err(bad("rules", format!("{:?} appears twice", rec.name)));
        }
        if !known.contains(&rec.channel) && !seen.contains(&format!("channel {}", rec.channel)) {
            let why = format!("rule {:?}: no channel named {:?}", rec.name, rec.channel);
            return Err(ApiError::NotFound(why));
        }
        let label = format!("rule {}", rec.name);
        match have_rules.iter().find(|h| h.name == rec.name) {
            None => (plan.add_rules.push(rec), sum.added.push(label)).1,
            Some(h) => {
                rec.created_at = h.created_at;
                if *h == rec {
                    sum.unchanged.push(label);
                } else {
                    plan.update_rules.push(rec);
                    sum.updated.push(label);
                }
            }
        }
    }
    if p.prune {
        for h in &have_rules {
            if !seen.contains(&format!("rule {}", h.name)) {
                plan.remove_rules.push(h.name.clone());
                sum.removed.push(format!("rule {}", h.name));
            }
        }
    }
    Ok((plan, sum))
}

/// `alert_apply`: all of it in one transaction, or nothing.
pub async fn apply(svc: &Services, caller: &Caller, p: AlertApply) -> Result<Value, ApiError> {
    let dry = p.dry_run;
    let (plan, sum) = plan(svc, p).await?;
    if dry || sum.is_noop() {
        return to_value(&sum);
    }
    store::blocking(&svc.store, move |s| s.apply_alerts(&plan, now_unix())).await?;
    svc.alerts.rules_changed();
    let detail = format!(
        "added {}, updated {}, removed {}",
        sum.added.len(),
        sum.updated.len(),
        sum.removed.len()
    );
    audit(svc, caller, "alert_apply", "alerts", &detail).await;
    to_value(&sum)
}

/// `alert_silence_add`.
pub async fn silence_add(
    svc: &Services,
    caller: &Caller,
    p: AlertSilenceAdd,
) -> Result<Value, ApiError> {
    if p.selector.is_none() && p.container.is_none() && p.rule.is_none() {
        return Err(ApiError::BadRequest(
            "a silence needs at least one of selector, container, rule".into(),
        ));
    }
    check_scope(p.selector.as_deref(), p.container.as_deref())?;
    if let Some(r) = &p.rule {
        glob::Pattern::new(r).map_err(|e| bad("rule", e))?;
    }
    if p.for_s == 0 || p.for_s > ALERT_MAX_SILENCE.as_secs() {
        let max = ALERT_MAX_SILENCE.as_secs();
        return Err(bad("for_s", format!("1 to {max} seconds")));
    }
    let now = now_unix();
    let rec = SilenceRecord {
        id: hex::encode(rand::random::<[u8; 6]>()),
        selector: p.selector,
        container: p.container,
        rule: p.rule,
        comment: p.comment.filter(|c| !c.is_empty()),
        created_by: caller.name.clone(),
        starts_at: now,
        ends_at: now + p.for_s as i64,
    };
    let info = rec.info(now);
    store::blocking(&svc.store, move |s| s.add_silence(&rec)).await?;
    svc.alerts.rules_changed();
    audit(svc, caller, "alert_silence_add", &info.id, &info.ends_at).await;
    to_value(&info)
}

/// `alert_silence_list`: silences not ended.
pub async fn silence_list(svc: &Services) -> Result<Value, ApiError> {
    let now = now_unix();
    let all = store::blocking(&svc.store, move |s| s.silences(now)).await?;
    to_value(&all.iter().map(|s| s.info(now)).collect::<Vec<_>>())
}

/// `alert_silence_remove`: end it now; what it held and still fires is
/// announced at the evaluator's next tick.
pub async fn silence_remove(svc: &Services, caller: &Caller, p: ById) -> Result<Value, ApiError> {
    let now = now_unix();
    let id = p.id.clone();
    let ended = store::blocking(&svc.store, move |s| s.end_silence(&id, now)).await?;
    let Some(rec) = ended else {
        return Err(ApiError::NotFound(format!("no silence {:?}", p.id)));
    };
    svc.alerts.rules_changed();
    audit(svc, caller, "alert_silence_remove", &p.id, "").await;
    to_value(&rec.info(now))
}
