//! Microsoft Teams: a workflow's "when a Teams webhook request is received"
//! URL (or a legacy incoming webhook) takes a message whose one attachment
//! is an Adaptive Card: a bold title coloured by status, the summary, and
//! the facts as a FactSet.

use serde_json::{json, Value};

use super::{Note, Request};
use crate::store::alerts::ChannelRecord;

/// The message with its Adaptive Card (schema 1.4, what Teams renders).
pub fn message(n: &Note) -> Value {
    let facts: Vec<Value> = n
        .facts()
        .into_iter()
        .map(|(k, v)| json!({"title": k, "value": v}))
        .collect();
    let color = if n.firing() { "Attention" } else { "Good" };
    json!({
        "type": "message",
        "summary": n.title(),
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.4",
                "body": [
                    {"type": "TextBlock", "size": "Medium", "weight": "Bolder",
                     "color": color, "wrap": true, "text": n.title()},
                    {"type": "TextBlock", "wrap": true, "text": n.summary},
                    {"type": "FactSet", "facts": facts},
                ],
            },
        }],
    })
}

/// The POST to the channel's workflow URL.
pub fn request(ch: &ChannelRecord, n: &Note) -> Request {
    Request::json(&ch.url, &message(n))
}

#[cfg(test)]
mod tests {
    use super::super::tests::note;
    use super::*;

    #[test]
    fn teams_gets_an_adaptive_card() {
        let m = message(&note("resolved"));
        let card = &m["attachments"][0]["content"];
        assert_eq!(card["type"], "AdaptiveCard");
        assert_eq!(card["body"][0]["color"], "Good");
        assert_eq!(card["body"][2]["facts"][0]["value"], "resolved");
    }
}
