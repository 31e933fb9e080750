//! Gotify: `POST <server>/message` with the application token as the
//! `X-Gotify-Key` header and `{title, message, priority}` (8 for a critical
//! alert firing, 5 warning, 2 otherwise: Gotify's apps make a sound from 4
//! and wake the screen from 8).

use nextdeploy_shared::protocol::alerts::Severity;
use serde_json::json;

use super::{header_text, needed, Note, Request};
use crate::store::alerts::ChannelRecord;

/// `<server>/message`, unless the URL already ends in `/message`.
pub fn message_url(server: &str) -> String {
    let base = server.trim_end_matches('/');
    if base.ends_with("/message") {
        base.to_string()
    } else {
        format!("{base}/message")
    }
}

/// The POST to the server.
pub fn request(ch: &ChannelRecord, n: &Note) -> Result<Request, String> {
    let token = needed(&ch.config.token, "Gotify application token")?;
    let priority = match (n.firing(), n.severity) {
        (true, Severity::Critical) => 8,
        (true, Severity::Warning) => 5,
        _ => 2,
    };
    let body = json!({
        "title": n.title(),
        "message": n.text(),
        "priority": priority,
        "extras": {"client::display": {"contentType": "text/plain"}},
    });
    let mut r = Request::json(&message_url(&ch.url), &body);
    r.headers.push(("X-Gotify-Key", header_text(token)));
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_endpoint_is_appended_once() {
        assert_eq!(
            message_url("https://g.example"),
            "https://g.example/message"
        );
        assert_eq!(
            message_url("https://g.example/gotify/"),
            "https://g.example/gotify/message"
        );
        assert_eq!(
            message_url("https://g.example/message"),
            "https://g.example/message"
        );
    }
}
