//! ntfy: a POST to the topic's URL (`https://ntfy.sh/mytopic`) whose body
//! is the message text, with `Title`, `Priority` (5 for a critical alert
//! firing, 4 warning, 3 otherwise) and `Tags` (emoji short codes ntfy
//! shows, and the severity) headers; an access token as
//! `Authorization: Bearer`.

use nextdeploy_shared::protocol::alerts::Severity;

use super::{header_text, Note, Request};
use crate::store::alerts::ChannelRecord;

/// ntfy's priority, 1 (min) to 5 (max).
fn priority(n: &Note) -> u8 {
    match (n.firing(), n.severity) {
        (true, Severity::Critical) => 5,
        (true, Severity::Warning) => 4,
        _ => 3,
    }
}

/// The POST to the topic.
pub fn request(ch: &ChannelRecord, n: &Note) -> Request {
    let tag = if n.firing() {
        "rotating_light"
    } else {
        "white_check_mark"
    };
    let mut headers = vec![
        ("Content-Type", "text/plain; charset=utf-8".to_string()),
        ("Title", header_text(&n.title())),
        ("Priority", priority(n).to_string()),
        ("Tags", format!("{tag},{}", n.severity.as_str())),
    ];
    if let Some(t) = &ch.config.token {
        headers.push(("Authorization", format!("Bearer {}", header_text(t))));
    }
    Request {
        url: ch.url.clone(),
        headers,
        body: n.text(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::note;
    use super::*;
    use crate::store::alerts::ChannelConfig;

    #[test]
    fn ntfy_gets_text_and_headers() {
        let ch = ChannelRecord {
            name: "n".into(),
            kind: nextdeploy_shared::protocol::alerts::ChannelKind::Ntfy,
            url: "https://ntfy.example/alerts".into(),
            secret: None,
            config: ChannelConfig {
                token: Some("tk_x".into()),
                ..Default::default()
            },
            min_severity: Severity::Info,
            created_at: 0,
        };
        let r = request(&ch, &note("firing"));
        let h = |k: &str| r.headers.iter().find(|(n, _)| *n == k).unwrap().1.clone();
        assert_eq!(h("Priority"), "5");
        assert_eq!(h("Authorization"), "Bearer tk_x");
        assert!(h("Title").starts_with("[FIRING critical] died"));
        assert!(r.body.starts_with("web exited with code 3"));
    }
}
