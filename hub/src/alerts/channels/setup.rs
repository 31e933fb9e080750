//! `alert_channel_add`'s checks: which fields each kind takes, needs or
//! refuses, each bounded, and the channel as it is stored (the services'
//! default endpoints and the email defaults filled in).

use nextdeploy_shared::protocol::alerts::{AlertChannelAdd, ChannelKind, Severity};

use super::{pagerduty, pushover};
use crate::alerts::email;
use crate::limits::ALERT_CHANNEL_FIELD_MAX;
use crate::store::alerts::{ChannelConfig, ChannelRecord};

/// Whether a kind needs, may take or refuses a field.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Takes {
    Needs,
    May,
    No,
}

/// The `url`, `token`, `routing_key` and `user_key` each kind takes.
fn takes(kind: ChannelKind) -> [Takes; 4] {
    use Takes::*;
    match kind {
        ChannelKind::Webhook | ChannelKind::Slack | ChannelKind::Discord | ChannelKind::Teams => {
            [Needs, No, No, No]
        }
        ChannelKind::Ntfy => [Needs, May, No, No],
        ChannelKind::Gotify => [Needs, Needs, No, No],
        ChannelKind::Pagerduty => [May, No, Needs, No],
        ChannelKind::Pushover => [May, Needs, No, Needs],
        ChannelKind::Email => [No, No, No, No],
    }
}

/// The CLI's flag for a field, for messages people act on.
fn flag(field: &str) -> &'static str {
    match field {
        "url" => "url (--url or the kind's URL)",
        "token" => "token (--channel-token)",
        "routing_key" => "routing_key (--pagerduty KEY)",
        "user_key" => "user_key (--pushover USER_KEY)",
        "secret" => "secret (--secret)",
        _ => "email (--email and --smtp)",
    }
}

/// `a gotify`, `an email`: the kind with its article.
fn a(kind: ChannelKind) -> String {
    let k = kind.as_str();
    let article = if k.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    format!("{article} {k}")
}

/// A field checked against what `kind` takes: empty counts as absent.
fn field(
    kind: ChannelKind,
    name: &str,
    value: Option<String>,
    takes: Takes,
) -> Result<Option<String>, String> {
    let value = value.filter(|v| !v.is_empty());
    match (&value, takes) {
        (None, Takes::Needs) => return Err(format!("{} channel needs a {}", a(kind), flag(name))),
        (Some(_), Takes::No) => return Err(format!("{} channel takes no {}", a(kind), flag(name))),
        _ => {}
    }
    if let Some(v) = &value {
        if v.chars().count() > ALERT_CHANNEL_FIELD_MAX {
            return Err(format!(
                "payload.{name}: at most {ALERT_CHANNEL_FIELD_MAX} characters"
            ));
        }
        // Tokens and keys travel in HTTP headers or forms: printable ASCII.
        if name != "url" && !v.chars().all(|c| c.is_ascii_graphic()) {
            return Err(format!(
                "payload.{name}: printable ASCII without spaces only"
            ));
        }
    }
    Ok(value)
}

/// An http(s) URL with a host.
fn check_url(url: &str) -> Result<(), String> {
    let uri: hyper::Uri = url.parse().map_err(|e| format!("payload.url: {e}"))?;
    match (uri.scheme_str(), uri.host()) {
        (Some("http" | "https"), Some(h)) if !h.is_empty() => Ok(()),
        _ => Err("payload.url must be an http:// or https:// URL with a host".into()),
    }
}

/// The channel `p` asks for, as stored, or why not.
pub fn record(p: AlertChannelAdd, now: i64) -> Result<ChannelRecord, String> {
    let kind = p.kind;
    let [url_t, token_t, key_t, user_t] = takes(kind);
    let secret_t = match kind {
        ChannelKind::Webhook => Takes::May,
        _ => Takes::No,
    };
    let url = field(kind, "url", p.url, url_t)?;
    let secret = field(kind, "secret", p.secret, secret_t)?;
    let config = ChannelConfig {
        token: field(kind, "token", p.token, token_t)?,
        routing_key: field(kind, "routing_key", p.routing_key, key_t)?,
        user_key: field(kind, "user_key", p.user_key, user_t)?,
        email: match (kind, p.email) {
            (ChannelKind::Email, Some(e)) => Some(email::settle(*e)?),
            (ChannelKind::Email, None) => {
                return Err(format!("an email channel needs {}", flag("email")))
            }
            (_, Some(_)) => return Err(format!("{} channel takes no {}", a(kind), flag("email"))),
            (_, None) => None,
        },
    };
    let url = match (kind, url, &config.email) {
        (_, _, Some(e)) => format!("smtp://{}", e.smtp),
        (_, Some(u), _) => u,
        (ChannelKind::Pagerduty, None, _) => pagerduty::EVENTS_URL.to_string(),
        (ChannelKind::Pushover, None, _) => pushover::MESSAGES_URL.to_string(),
        (_, None, _) => return Err(format!("{} channel needs a {}", a(kind), flag("url"))),
    };
    if kind != ChannelKind::Email {
        check_url(&url)?;
    }
    Ok(ChannelRecord {
        name: p.name,
        kind,
        url,
        secret,
        config,
        min_severity: p.min_severity.unwrap_or(Severity::Info),
        created_at: now,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(kind: ChannelKind) -> AlertChannelAdd {
        AlertChannelAdd {
            name: "c".into(),
            kind,
            url: None,
            secret: None,
            token: None,
            routing_key: None,
            user_key: None,
            email: None,
            min_severity: None,
        }
    }

    #[test]
    fn each_kind_takes_its_fields_and_refuses_the_others() {
        let err = |p: AlertChannelAdd| record(p, 0).unwrap_err();
        assert!(err(add(ChannelKind::Discord)).contains("needs a url"));
        let mut g = add(ChannelKind::Gotify);
        g.url = Some("https://gotify.example".into());
        assert!(err(g.clone()).contains("needs a token"));
        g.token = Some("AbC.123".into());
        let rec = record(g.clone(), 0).unwrap();
        assert_eq!(rec.config.token.as_deref(), Some("AbC.123"));
        assert!(rec.info().has_token);
        assert!(!format!("{rec:?}").contains("AbC.123"), "{rec:?}");
        g.secret = Some("s".into());
        assert!(err(g).contains("takes no secret"));
        let mut pd = add(ChannelKind::Pagerduty);
        pd.routing_key = Some("R0UT1NGKEY".into());
        pd.min_severity = Some(Severity::Critical);
        let rec = record(pd.clone(), 0).unwrap();
        assert_eq!(rec.url, pagerduty::EVENTS_URL);
        assert_eq!(rec.info().target, "https://events.pagerduty.com/…");
        assert_eq!(rec.min_severity, Severity::Critical);
        pd.token = Some("t".into());
        assert!(err(pd).contains("takes no token"));
        let mut po = add(ChannelKind::Pushover);
        po.token = Some("app".into());
        assert!(err(po.clone()).contains("user_key"));
        po.user_key = Some("has space".into());
        assert!(err(po).contains("printable ASCII"));
        let mut w = add(ChannelKind::Webhook);
        w.url = Some("ftp://x".into());
        assert!(err(w).contains("http://"));
        assert!(err(add(ChannelKind::Email)).contains("--smtp"));
    }
}
