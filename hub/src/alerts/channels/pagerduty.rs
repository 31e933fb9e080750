//! PagerDuty's Events API v2 (`POST https://events.pagerduty.com/v2/enqueue`):
//! `event_action` `trigger` when an alert fires, `resolve` when it resolves,
//! both with the alert's id as `dedup_key`, so the resolve closes the very
//! incident the trigger opened (and a retried trigger opens no second one).
//! PagerDuty answers 202.

use serde_json::json;

use super::{cut, needed, Note, Request};
use crate::store::alerts::ChannelRecord;

/// The Events API v2 endpoint (`--url` replaces it).
pub const EVENTS_URL: &str = "https://events.pagerduty.com/v2/enqueue";

/// The event.
pub fn event(routing_key: &str, n: &Note) -> serde_json::Value {
    if !n.firing() {
        return json!({
            "routing_key": routing_key,
            "event_action": "resolve",
            "dedup_key": n.alert_id,
        });
    }
    json!({
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": n.alert_id,
        "client": "NextDeploy",
        "payload": {
            // PagerDuty's limit is 1024 characters.
            "summary": cut(&format!("{}: {}", n.title(), n.summary), 1024),
            "source": n.server,
            "severity": n.severity.as_str(),
            "timestamp": n.started_at,
            "component": n.container,
            "group": n.rule,
            "class": n.condition,
            "custom_details": {
                "rule": n.rule,
                "server": n.server,
                "container": n.container,
                "value": n.value,
                "notification": n.id,
            },
        },
    })
}

/// The POST to the Events API.
pub fn request(ch: &ChannelRecord, n: &Note) -> Result<Request, String> {
    let key = needed(&ch.config.routing_key, "PagerDuty routing key")?;
    Ok(Request::json(&ch.url, &event(key, n)))
}

#[cfg(test)]
mod tests {
    use super::super::tests::note;
    use super::*;

    #[test]
    fn trigger_and_resolve_share_the_dedup_key() {
        let t = event("R0UT1NG", &note("firing"));
        assert_eq!(t["event_action"], "trigger");
        assert_eq!(t["payload"]["severity"], "critical");
        assert_eq!(t["payload"]["source"], "prod-1");
        let r = event("R0UT1NG", &note("resolved"));
        assert_eq!(r["event_action"], "resolve");
        assert_eq!(t["dedup_key"], r["dedup_key"]);
        assert_eq!(r["dedup_key"], "a1");
    }
}
