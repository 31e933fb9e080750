//! Email: one message per notification through a real SMTP client
//! (lettre: EHLO, STARTTLS or implicit TLS over rustls with the system's
//! roots, AUTH PLAIN/LOGIN, the server's reply codes), one connection per
//! message (a few a minute need no pool). The subject is the note's title
//! (`[FIRING critical] died on prod-1/web`), the body its text; the
//! `Message-ID` is the notification's id, so a resent message is the same
//! message, and a resolved one answers (`In-Reply-To`) its firing one, so
//! mail clients thread them.
//!
//! A refusal (4xx or 5xx) or a connection that fails is an attempt with its
//! error, the server's answer in it (`SMTP smtp.example:587: permanent
//! error (550): 5.1.1 no such user`), retried like any other.

use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::extension::ClientId;
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use nextdeploy_shared::protocol::alerts::{EmailSettings, SmtpTls};

use super::channels::Note;
use crate::limits::{ALERT_CHANNEL_FIELD_MAX, ALERT_EMAIL_MAX_RECIPIENTS, SMTP_TIMEOUT};
use crate::store::alerts::ChannelRecord;

/// `host:port` (`[::1]:25` for IPv6) split, or why not.
pub fn server(text: &str) -> Result<(String, u16), String> {
    let bad = || format!("payload.email.smtp: {text:?} is not host:port");
    let (host, port) = text.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || port == 0 || host.contains(['/', ' ']) {
        return Err(bad());
    }
    Ok((host.to_string(), port))
}

/// `nextdeploy@<this machine's hostname>`.
fn default_from() -> String {
    match ClientId::default() {
        ClientId::Domain(d) => format!("nextdeploy@{d}"),
        _ => "nextdeploy@localhost".into(),
    }
}

/// `alert_channel_add`'s email settings checked, their defaults filled in
/// (`tls` by port, `from`).
pub fn settle(mut e: EmailSettings) -> Result<EmailSettings, String> {
    e.to.retain(|a| !a.trim().is_empty());
    if e.to.is_empty() || e.to.len() > ALERT_EMAIL_MAX_RECIPIENTS {
        return Err(format!(
            "payload.email.to: 1 to {ALERT_EMAIL_MAX_RECIPIENTS} recipients"
        ));
    }
    for a in &mut e.to {
        *a = a.trim().to_string();
        a.parse::<Address>()
            .map_err(|err| format!("payload.email.to: {a:?}: {err}"))?;
    }
    let (_, port) = server(&e.smtp)?;
    let empty = |o: Option<String>| o.filter(|s| !s.is_empty());
    e.user = empty(e.user.take());
    e.password = empty(e.password.take());
    e.from = empty(e.from.take());
    if e.user.is_some() != e.password.is_some() {
        return Err(
            "payload.email: an SMTP user needs its password, and a password its user".into(),
        );
    }
    let long = [&e.user, &e.password, &e.from]
        .into_iter()
        .flatten()
        .any(|s| s.chars().count() > ALERT_CHANNEL_FIELD_MAX);
    if long || e.smtp.len() > ALERT_CHANNEL_FIELD_MAX {
        return Err(format!(
            "payload.email: each field at most {ALERT_CHANNEL_FIELD_MAX} characters"
        ));
    }
    let from = e.from.take().unwrap_or_else(default_from);
    from.parse::<Mailbox>()
        .map_err(|err| format!("payload.email.from: {from:?}: {err}"))?;
    e.from = Some(from);
    e.tls = Some(e.tls.unwrap_or(if port == 465 {
        SmtpTls::Tls
    } else {
        SmtpTls::Starttls
    }));
    Ok(e)
}

/// The message of `n` to `e`'s recipients.
pub fn message(e: &EmailSettings, n: &Note) -> Result<Message, String> {
    let bad = |err: &dyn std::fmt::Display| format!("building the email: {err}");
    let from = e.from.clone().unwrap_or_else(default_from);
    let mut b = Message::builder()
        .from(from.parse::<Mailbox>().map_err(|x| bad(&x))?)
        .subject(n.title())
        .message_id(Some(format!("<{}@nextdeploy>", n.id)))
        .header(ContentType::TEXT_PLAIN);
    for to in &e.to {
        b = b.to(to.parse::<Mailbox>().map_err(|x| bad(&x))?);
    }
    if !n.firing() {
        let first = format!("<{}-firing@nextdeploy>", n.alert_id);
        b = b.in_reply_to(first.clone()).references(first);
    }
    let body = format!("{}\n\n-- \nNextDeploy notification {}\n", n.text(), n.id);
    b.body(body).map_err(|x| bad(&x))
}

/// The SMTP client for `e`.
fn transport(e: &EmailSettings) -> Result<AsyncSmtpTransport<Tokio1Executor>, String> {
    type Smtp = AsyncSmtpTransport<Tokio1Executor>;
    let (host, port) = server(&e.smtp)?;
    let tls_err = |err: lettre::transport::smtp::Error| format!("SMTP TLS setup: {err}");
    let builder = match e.tls.unwrap_or(SmtpTls::Starttls) {
        SmtpTls::None => Smtp::builder_dangerous(host),
        SmtpTls::Starttls => Smtp::starttls_relay(&host).map_err(tls_err)?,
        SmtpTls::Tls => Smtp::relay(&host).map_err(tls_err)?,
    };
    let mut builder = builder.port(port).timeout(Some(SMTP_TIMEOUT));
    if let (Some(u), Some(p)) = (&e.user, &e.password) {
        builder = builder.credentials(Credentials::new(u.clone(), p.clone()));
    }
    Ok(builder.build())
}

/// Send `n` to the email channel `ch`: the server's reply code, or its
/// answer as the error.
pub async fn send(ch: &ChannelRecord, n: &Note) -> Result<u16, String> {
    let e = ch
        .config
        .email
        .as_ref()
        .ok_or("the channel has no email settings")?;
    let msg = message(e, n)?;
    let smtp = transport(e)?;
    match tokio::time::timeout(SMTP_TIMEOUT, smtp.send(msg)).await {
        Err(_) => Err(format!(
            "SMTP {}: no answer within {}s",
            e.smtp,
            SMTP_TIMEOUT.as_secs()
        )),
        Ok(Err(err)) => Err(format!("SMTP {}: {err}", e.smtp)),
        Ok(Ok(answer)) => Ok(u16::from(answer.code())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> EmailSettings {
        EmailSettings {
            to: vec!["ops@example.com".into(), " oncall@example.com ".into()],
            smtp: "smtp.example.com:465".into(),
            tls: None,
            user: None,
            password: None,
            from: Some("NextDeploy <nd@example.com>".into()),
        }
    }

    #[test]
    fn settings_are_checked_and_defaulted() {
        let e = settle(settings()).unwrap();
        assert_eq!(e.tls, Some(SmtpTls::Tls));
        assert_eq!(e.to[1], "oncall@example.com");
        let mut s = settings();
        s.smtp = "smtp.example.com:587".into();
        s.from = None;
        let e = settle(s).unwrap();
        assert_eq!(e.tls, Some(SmtpTls::Starttls));
        assert!(e.from.unwrap().starts_with("nextdeploy@"));
        let mut s = settings();
        s.to = vec!["not an address".into()];
        assert!(settle(s).unwrap_err().contains("payload.email.to"));
        let mut s = settings();
        s.smtp = "smtp.example.com".into();
        assert!(settle(s).unwrap_err().contains("host:port"));
        let mut s = settings();
        s.user = Some("u".into());
        assert!(settle(s).unwrap_err().contains("password"));
        assert_eq!(server("[::1]:2525").unwrap(), ("::1".into(), 2525));
    }

    #[test]
    fn the_message_has_the_title_as_subject_and_threads_its_resolve() {
        let e = settle(settings()).unwrap();
        let n = crate::alerts::channels::tests::note("resolved");
        let text = String::from_utf8(message(&e, &n).unwrap().formatted()).unwrap();
        assert!(
            text.contains("Subject: [RESOLVED critical] died on prod-1/web"),
            "{text}"
        );
        assert!(
            text.contains("Message-ID: <a1-resolved@nextdeploy>"),
            "{text}"
        );
        assert!(
            text.contains("In-Reply-To: <a1-firing@nextdeploy>"),
            "{text}"
        );
        assert!(
            text.contains("To: ops@example.com, oncall@example.com"),
            "{text}"
        );
    }
}
