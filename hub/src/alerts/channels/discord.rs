//! Discord: an execute-webhook POST (`https://discord.com/api/webhooks/…`)
//! with one line of `content` (what a phone's notification shows) and an
//! embed: the summary, the facts as inline fields, red/amber/blue by
//! severity while firing, green when resolved. Mentions are disabled, so a
//! container named `@everyone` pings nobody. Discord answers 204.

use serde_json::{json, Value};

use super::{cut, Note, Request};
use crate::store::alerts::ChannelRecord;

/// The embed's colour.
fn color(n: &Note) -> u32 {
    use nextdeploy_shared::protocol::alerts::Severity;
    if !n.firing() {
        return 0x2e_b8_86;
    }
    match n.severity {
        Severity::Critical => 0xe0_1e_5a,
        Severity::Warning => 0xec_b2_2e,
        Severity::Info => 0x36_c5_f0,
    }
}

/// The message (Discord's limits: title 256, description 4096, field value
/// 1024 characters, content 2000).
pub fn message(n: &Note) -> Value {
    let fields: Vec<Value> = n
        .facts()
        .into_iter()
        .map(|(k, v)| json!({"name": k, "value": cut(&v, 1024), "inline": true}))
        .collect();
    json!({
        "username": "NextDeploy",
        "content": cut(&format!("{}: {}", n.title(), n.summary), 2000),
        "allowed_mentions": {"parse": []},
        "embeds": [{
            "title": cut(&n.title(), 256),
            "description": cut(&n.summary, 4096),
            "color": color(n),
            "fields": fields,
            "timestamp": n.resolved_at.as_deref().unwrap_or(&n.started_at),
            "footer": {"text": format!("NextDeploy notification {}", n.id)},
        }],
    })
}

/// The POST to the channel's webhook URL.
pub fn request(ch: &ChannelRecord, n: &Note) -> Request {
    Request::json(&ch.url, &message(n))
}

#[cfg(test)]
mod tests {
    use super::super::tests::note;
    use super::*;

    #[test]
    fn discord_gets_content_and_an_embed() {
        let m = message(&note("firing"));
        assert!(m["content"]
            .as_str()
            .unwrap()
            .contains("[FIRING critical] died"));
        assert_eq!(m["embeds"][0]["color"], 0xe01e5a);
        assert_eq!(m["embeds"][0]["fields"][1]["value"], "died");
        assert_eq!(message(&note("resolved"))["embeds"][0]["color"], 0x2eb886);
    }
}
