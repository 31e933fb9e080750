use super::*;
use crate::store::alert_rules::SilenceRecord;

fn silence(selector: Option<&str>, container: Option<&str>, rule: Option<&str>) -> Silence {
    Silence::compile(SilenceRecord {
        id: "s1".into(),
        selector: selector.map(Into::into),
        container: container.map(Into::into),
        rule: rule.map(Into::into),
        comment: None,
        created_by: "ops".into(),
        starts_at: 100,
        ends_at: 200,
    })
    .unwrap()
}

fn staging() -> Labels {
    [("env".to_string(), "staging".to_string())].into()
}

fn subject<'a>(labels: &'a Labels, container: &'a str, severity: Severity) -> Subject<'a> {
    Subject {
        rule: "hot",
        severity,
        labels,
        container,
    }
}

#[test]
fn quiet_hours_cross_midnight_in_their_time_zone() {
    let q = QuietHours::parse("22:00-07:00", None).unwrap();
    let day = 20_000 * 86_400; // a UTC midnight
    assert!(q.contains(day + 23 * 3600));
    assert!(q.contains(day + 3600));
    assert!(q.contains(day + 6 * 3600 + 59 * 60));
    assert!(!q.contains(day + 7 * 3600));
    assert!(!q.contains(day + 12 * 3600));
    assert!(q.contains(day + 22 * 3600));
    // 22:00-07:00 at +02:00 is 20:00-05:00 UTC.
    let q2 = QuietHours::parse("22:00-07:00", Some("+02:00")).unwrap();
    assert!(q2.contains(day + 21 * 3600));
    assert!(!q2.contains(day + 6 * 3600));
    // A window within one day.
    let q3 = QuietHours::parse("12:00-13:30", Some("-05:30")).unwrap();
    assert!(q3.contains(day + 17 * 3600 + 40 * 60));
    assert!(!q3.contains(day + 12 * 3600));
    for bad in ["22-07", "25:00-01:00", "10:00-10:00", "x"] {
        assert!(QuietHours::parse(bad, None).is_err(), "{bad}");
    }
    assert!(parse_tz("Europe/Paris").is_err());
    assert_eq!(parse_tz("utc"), Ok(0));
    assert_eq!(parse_tz("-03:00"), Ok(-180));
}

#[test]
fn silences_match_by_labels_container_and_rule_while_they_last() {
    let l = staging();
    let s = silence(Some("env=staging"), Some("web*"), Some("hot"));
    assert!(s.matches(150, "hot", &l, "web-1"));
    assert!(!s.matches(99, "hot", &l, "web-1"), "not started");
    assert!(!s.matches(200, "hot", &l, "web-1"), "ended");
    assert!(!s.matches(150, "cold", &l, "web-1"));
    assert!(!s.matches(150, "hot", &l, "db"));
    assert!(
        !s.matches(150, "hot", &l, ""),
        "agent-level alerts have no container"
    );
    assert!(!s.matches(150, "hot", &Labels::new(), "web-1"));
    let any = silence(Some("env=staging"), None, None);
    assert!(any.matches(150, "offline", &l, ""));
}

#[test]
fn quiet_hours_hold_all_but_critical_and_silences_hold_all() {
    let l = staging();
    let q = QuietHours::parse("00:00-12:00", None).unwrap();
    let night = 20_000 * 86_400 + 3600;
    let noon = night + 12 * 3600;
    assert!(is_held(
        &[],
        Some(&q),
        subject(&l, "web", Severity::Warning),
        night
    ));
    assert!(!is_held(
        &[],
        Some(&q),
        subject(&l, "web", Severity::Critical),
        night
    ));
    assert!(!is_held(
        &[],
        Some(&q),
        subject(&l, "web", Severity::Warning),
        noon
    ));
    let s = [silence(Some("env=staging"), None, None)];
    assert!(is_held(
        &s,
        None,
        subject(&l, "web", Severity::Critical),
        150
    ));
    assert!(!is_held(
        &s,
        None,
        subject(&l, "web", Severity::Critical),
        250
    ));
}

fn held(status: AlertStatus, alert_firing: bool) -> HeldNote {
    HeldNote {
        id: "n".into(),
        status,
        alert: "a".into(),
        alert_firing,
        rule: "hot".into(),
        severity: Severity::Warning,
        server: "s".into(),
        container: "web".into(),
        labels: Labels::new(),
    }
}

#[test]
fn release_sends_what_still_matters_and_drops_what_expired() {
    // Still firing when the silence ends: announced then.
    assert!(release(&held(AlertStatus::Firing, true), false));
    // Fired and resolved inside: neither notice is ever sent.
    assert!(!release(&held(AlertStatus::Firing, false), false));
    assert!(!release(&held(AlertStatus::Resolved, false), true));
    // Announced before, resolved inside: the resolve goes out.
    assert!(release(&held(AlertStatus::Resolved, false), false));
}

#[test]
fn repeats_come_every_interval_and_never_without_one() {
    assert!(!repeat_due(None, 0, 1_000_000));
    assert!(!repeat_due(Some(3600), 100, 3699));
    assert!(repeat_due(Some(3600), 100, 3700));
}
