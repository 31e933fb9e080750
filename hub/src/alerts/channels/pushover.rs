//! Pushover: `POST https://api.pushover.net/1/messages.json`, a form with
//! the application's `token`, the recipient's `user` key, `title`,
//! `message`, `priority` (1, high, for a critical alert firing; 0
//! otherwise; -1 for info) and `timestamp`. Pushover answers 200 with
//! `{"status":1}`.

use nextdeploy_shared::protocol::alerts::Severity;

use super::{cut, needed, Note, Request};
use crate::store::alerts::ChannelRecord;

/// The messages endpoint (`--url` replaces it).
pub const MESSAGES_URL: &str = "https://api.pushover.net/1/messages.json";

/// The form's fields (Pushover's limits: title 250, message 1024).
pub fn form(token: &str, user: &str, n: &Note) -> String {
    let priority = match (n.firing(), n.severity) {
        (true, Severity::Critical) => "1",
        (_, Severity::Info) => "-1",
        _ => "0",
    };
    let at = n.resolved_at.as_deref().unwrap_or(&n.started_at);
    let mut f = form_urlencoded::Serializer::new(String::new());
    f.append_pair("token", token)
        .append_pair("user", user)
        .append_pair("title", &cut(&n.title(), 250))
        .append_pair("message", &cut(&n.text(), 1024))
        .append_pair("priority", priority);
    if let Some(t) = nextdeploy_shared::time::parse_rfc3339(at) {
        f.append_pair("timestamp", &t.to_string());
    }
    f.finish()
}

/// The POST to the messages endpoint.
pub fn request(ch: &ChannelRecord, n: &Note) -> Result<Request, String> {
    let token = needed(&ch.config.token, "Pushover application token")?;
    let user = needed(&ch.config.user_key, "Pushover user key")?;
    Ok(Request {
        url: ch.url.clone(),
        headers: vec![(
            "Content-Type",
            "application/x-www-form-urlencoded".to_string(),
        )],
        body: form(token, user, n),
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests::note;
    use super::*;

    #[test]
    fn pushover_gets_a_form_with_token_and_user() {
        let f = form("app tok", "usr", &note("firing"));
        let pairs: Vec<(String, String)> =
            form_urlencoded::parse(f.as_bytes()).into_owned().collect();
        let get = |k: &str| pairs.iter().find(|(n, _)| n == k).unwrap().1.clone();
        assert_eq!(get("token"), "app tok");
        assert_eq!(get("user"), "usr");
        assert_eq!(get("priority"), "1");
        assert!(get("title").starts_with("[FIRING critical]"));
        assert_eq!(get("timestamp"), "1796378400");
    }
}
