#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Every channel kind end to end: one hub, one agent and a container that
//! exits 3 under `container-died` rules, each rule to one channel: Discord,
//! Teams, ntfy, Gotify, PagerDuty and Pushover pointed at HTTP receivers on
//! loopback (tests/src/receiver.rs), email through a real SMTP server on
//! loopback (Python's aiosmtpd, tests/src/smtp.rs). Each gets exactly one
//! firing and, after `docker start`, one resolved notification in its
//! service's shape (PagerDuty's resolve carries the trigger's `dedup_key`).
//! A channel with `--min-severity critical` gets the critical rule's
//! notifications and none of the warning rule's, whose alert is in the
//! history all the same; an email the SMTP server refuses stays queued,
//! each attempt logged with the server's answer. Without Docker: `channel test` for every kind (an
//! SMTP refusal comes back with the server's answer, AUTH uses the password
//! file), `channel list` and the hub's log without a secret, and unusable
//! channels refused clearly; email over STARTTLS and implicit TLS to a
//! server whose certificate the hub trusts (`SSL_CERT_FILE`), and not to one
//! it does not.

use std::time::Duration;

use nextdeploy_tests::channel_receivers::*;
use nextdeploy_tests::docker::*;
use nextdeploy_tests::smtp::SmtpServer;
use nextdeploy_tests::{run_bounded, Hub, HubOpts, TempDir};
use serde_json::Value;

/// The firing notifications, in each service's shape; PagerDuty's
/// `dedup_key`.
fn check_firing(rx: &Receivers, server: &str, container: &str) -> String {
    let place = format!("{server}/{container}");
    let d = rx
        .discord
        .wait_for("discord", 1, |v| v["content"].is_string());
    let content = d[0]["content"].as_str().unwrap();
    assert!(
        content.starts_with(&format!("[FIRING warning] r-discord on {place}")),
        "{content}"
    );
    let embed = &d[0]["embeds"][0];
    assert!(
        embed["description"].as_str().unwrap().contains('3'),
        "{}",
        d[0]
    );
    let fields = embed["fields"].as_array().unwrap();
    assert!(fields.iter().any(|f| f["value"] == "r-discord"), "{}", d[0]);
    let t = rx
        .teams
        .wait_for("teams", 1, |v| v["attachments"].is_array());
    let card = &t[0]["attachments"][0];
    assert_eq!(
        card["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    assert_eq!(card["content"]["type"], "AdaptiveCard", "{}", t[0]);
    let n = &rx
        .ntfy
        .wait_for_raw("ntfy", 1, |r| ntfy_status(r) == "firing")[0];
    assert_eq!(n.header("authorization"), format!("Bearer {NTFY_TOKEN}"));
    assert_eq!(
        n.header("priority"),
        "5",
        "a critical alert firing is ntfy's max"
    );
    assert!(
        n.header("tags").contains("rotating_light"),
        "{:?}",
        n.headers
    );
    assert!(n.header("content-type").starts_with("text/plain"));
    assert!(
        n.text().contains("Rule: r-ntfy") && n.text().contains("exit_code=3"),
        "{}",
        n.text()
    );
    let g = &rx
        .gotify
        .wait_for_raw("gotify", 1, |r| gotify_status(r) == "firing")[0];
    assert_eq!(
        (g.path.as_str(), g.header("x-gotify-key")),
        ("/gotify/message", GOTIFY_TOKEN)
    );
    assert_eq!(g.json()["priority"], 5, "{}", g.text());
    assert!(
        json_str(g, "/message").contains(&format!("Server: {server}")),
        "{}",
        g.text()
    );
    let p = rx
        .pagerduty
        .wait_for("pagerduty", 1, |v| v["event_action"] == "trigger");
    assert_eq!(p[0]["routing_key"], PD_KEY);
    let payload = &p[0]["payload"];
    assert_eq!(
        (payload["severity"].as_str(), payload["source"].as_str()),
        (Some("critical"), Some(server))
    );
    assert_eq!(payload["component"], container);
    let po = &rx
        .pushover
        .wait_for_raw("pushover", 1, |r| pushover_status(r) == "firing")[0];
    assert_eq!(po.path, "/1/messages.json");
    assert_eq!(
        (field(po, "token"), field(po, "user")),
        (PUSH_TOKEN.into(), PUSH_USER.into())
    );
    assert!(
        field(po, "message").contains("Rule: r-push"),
        "{}",
        po.text()
    );
    let m = &rx
        .smtp
        .wait_for("the firing email", 1, |m| mail_status(m) == "firing")[0];
    assert_eq!(m.to, ["ops@example.test", "oncall@example.test"]);
    assert_eq!(
        m.header("Subject"),
        format!("[FIRING warning] r-mail on {place}")
    );
    assert!(
        m.data.contains("Rule: r-mail") && m.data.contains("Value: exit_code=3"),
        "{}",
        m.data
    );
    let picky = rx.picky.wait_for("picky", 1, |v| v["status"] == "firing");
    assert_eq!(picky[0]["rule"], "r-picky-crit");
    p[0]["dedup_key"].as_str().unwrap().to_string()
}

/// The resolved notifications; PagerDuty resolves the trigger's incident.
fn check_resolved(rx: &Receivers, place: &str, dedup: &str) {
    let r = rx
        .pagerduty
        .wait_for("pagerduty resolve", 1, |v| v["event_action"] == "resolve");
    assert_eq!(
        r[0]["dedup_key"].as_str(),
        Some(dedup),
        "resolves the trigger's incident"
    );
    assert_eq!(r[0]["routing_key"], PD_KEY);
    for (kind, receiver, status_of) in kinds(rx) {
        receiver.wait_for_raw(kind, 1, |r| status_of(r) == "resolved");
    }
    let m = &rx
        .smtp
        .wait_for("the resolved email", 1, |m| mail_status(m) == "resolved")[0];
    assert_eq!(
        m.header("Subject"),
        format!("[RESOLVED warning] r-mail on {place}")
    );
    assert!(
        m.header("In-Reply-To").ends_with("-firing@nextdeploy>"),
        "{}",
        m.data
    );
    rx.picky
        .wait_for("picky's resolve", 1, |v| v["status"] == "resolved");
}

/// Exactly one firing and one resolved everywhere; the warning rule's
/// alert reached no critical-only channel but is in the history.
fn check_totals(rx: &Receivers, history: &Value) {
    for (kind, r, status_of) in kinds(rx) {
        let got: Vec<String> = r.delivered().iter().map(status_of).collect();
        assert_eq!(got, ["firing", "resolved"], "{kind}: {:?}", r.delivered());
    }
    let mails: Vec<String> = rx.smtp.messages().iter().map(mail_status).collect();
    assert_eq!(mails, ["firing", "resolved"], "{:?}", rx.smtp.messages());
    let picky: Vec<String> = rx
        .picky
        .delivered()
        .iter()
        .map(|r| json_str(r, "/rule"))
        .collect();
    assert_eq!(
        picky,
        ["r-picky-crit", "r-picky-crit"],
        "no warning reaches it"
    );
    let alerts = history.as_array().unwrap();
    let of = |rule: &'static str| alerts.iter().filter(move |a| a["rule"] == rule);
    assert!(
        of("r-picky-warn").count() >= 1,
        "the warning alert is kept: {history}"
    );
    let notes = |a: &Value| a["notifications"].as_array().cloned().unwrap_or_default();
    assert!(of("r-picky-warn").all(|a| notes(a).is_empty()), "{history}");
    for rule in ["r-mail", "r-pd", "r-ntfy"] {
        let delivered = of(rule)
            .flat_map(notes)
            .filter(|n| n["state"] == "delivered");
        assert_eq!(
            delivered.count(),
            2,
            "{rule}'s deliveries are logged: {history}"
        );
    }
    // The refused email stays in the outbox, each attempt logged with the
    // SMTP server's answer, to be retried.
    let bounced: Vec<Value> = of("r-bounce").flat_map(notes).collect();
    let first = &bounced[0];
    assert_eq!(first["state"], "pending", "{history}");
    assert!(first["attempts"].as_u64().unwrap() >= 1, "{history}");
    let error = first["last_error"].as_str().unwrap_or("");
    assert!(
        error.contains("550") && error.contains("no such mailbox here"),
        "{history}"
    );
}

#[test]
fn every_channel_kind_gets_one_firing_and_one_resolved_in_its_services_shape() {
    let env = DockerEnv::start("alert-channels", &[]).unwrap();
    let rx = Receivers::start();
    rx.add_channels(&env.hub, "ops@example.test,oncall@example.test");
    let smtp = rx.smtp.address();
    let bounce = format!("bounce --email x@refused.test --smtp {smtp} --smtp-tls none");
    run(&env.hub, &format!("alert channel add {bounce}"), &[]);
    let sel = format!("test={}", env.server().trim_start_matches("dk-"));
    let glob = format!("{}*", env.names.prefix);
    for (name, channel, severity) in [
        ("r-discord", "discord", "warning"),
        ("r-teams", "teams", "warning"),
        ("r-ntfy", "ntfy", "critical"),
        ("r-gotify", "gotify", "warning"),
        ("r-pd", "pd", "critical"),
        ("r-push", "push", "warning"),
        ("r-mail", "mail", "warning"),
        ("r-picky-crit", "picky", "critical"),
        ("r-picky-warn", "picky", "warning"),
        ("r-bounce", "bounce", "warning"),
    ] {
        let words = format!(
            "alert rule add {name} --on container-died --selector {sel} --container {glob} \
             --severity {severity} --channel {channel}"
        );
        run(&env.hub, &words, &[]);
    }
    let c = env.run("exit3", &[], &["exit", "3", "1"]).unwrap();
    let dedup = check_firing(&rx, env.server(), &c.name);
    docker(&["start", &c.id]).unwrap();
    check_resolved(&rx, &format!("{}/{}", env.server(), c.name), &dedup);
    // It exits again a second later: inside every cooldown, so nothing more
    // is sent anywhere.
    std::thread::sleep(Duration::from_secs(4));
    check_totals(&rx, &run(&env.hub, "alert history --since 1h", &[]));
}

#[test]
fn every_kind_can_be_tested_is_listed_without_secrets_and_bad_channels_are_refused() {
    let hub = nextdeploy_tests::start_hub().unwrap();
    let rx = Receivers::start();
    rx.add_channels(&hub, "ops@example.test");
    let pw = TempDir::new("smtp-pw").unwrap();
    let pw_file = pw.path().join("password");
    std::fs::write(&pw_file, format!("{}\n", SmtpServer::PASSWORD)).unwrap();
    // An email channel that authenticates (the password from a file), and
    // one whose only recipient the server refuses.
    let smtp = rx.smtp.address();
    let pw_file = pw_file.to_str().unwrap();
    let words = format!(
        "alert channel add mail-auth --email auth@example.test --smtp {smtp} --smtp-tls none \
         --smtp-user nd --smtp-password-file {pw_file}"
    );
    let a = run(
        &hub,
        &words,
        &["--from", "NextDeploy <alerts@example.test>"],
    );
    assert_eq!(
        a["target"],
        format!("auth@example.test via {smtp} (none)"),
        "{a}"
    );
    assert_eq!(a["has_token"], true);
    let words =
        format!("alert channel add bounce --email x@refused.test --smtp {smtp} --smtp-tls none");
    run(&hub, &words, &[]);

    for name in [
        "discord", "teams", "ntfy", "gotify", "pd", "push", "mail", "picky",
    ] {
        let t = run(&hub, "alert channel test", &[name]);
        assert_eq!(t["delivered"], true, "{name}: {t}");
    }
    let pd: Vec<String> = rx
        .pagerduty
        .delivered()
        .iter()
        .map(pagerduty_status)
        .collect();
    assert_eq!(
        pd,
        ["firing", "resolved"],
        "a PagerDuty test triggers, then resolves"
    );
    let keys: Vec<String> = rx
        .pagerduty
        .delivered()
        .iter()
        .map(|r| json_str(r, "/dedup_key"))
        .collect();
    assert_eq!(keys[0], keys[1]);
    let mail = &rx.smtp.wait_for("the test email", 1, |_| true)[0];
    assert_eq!(
        mail.header("Subject"),
        "[FIRING info] test on nextdeploy-hub"
    );
    assert!(
        mail.header("From").starts_with("nextdeploy@"),
        "the default sender: {}",
        mail.data
    );
    assert_eq!(mail.user, None, "no credentials, no AUTH");
    let t = run(&hub, "alert channel test mail-auth", &[]);
    assert_eq!(
        (t["delivered"].as_bool(), t["status"].as_u64()),
        (Some(true), Some(250)),
        "{t}"
    );
    let m = &rx.smtp.wait_for("the authenticated email", 1, |m| {
        m.to == ["auth@example.test"]
    })[0];
    assert_eq!(
        m.user.as_deref(),
        Some("nd"),
        "AUTH with the file's password"
    );
    assert_eq!(m.header("From"), "NextDeploy <alerts@example.test>");
    let out = hub.cli(&["alert", "channel", "test", "bounce"]).unwrap();
    let answer = out.stdout.contains("550") && out.stdout.contains("no such mailbox here");
    assert!(
        answer && out.stdout.contains("not delivered to bounce"),
        "{}",
        out.describe()
    );

    let list = run(&hub, "alert channel list", &[]);
    let table = hub
        .cli(&["alert", "channel", "list"])
        .unwrap()
        .ok()
        .unwrap()
        .stdout;
    for secret in SECRETS {
        let listed = list.to_string().contains(secret) || table.contains(secret);
        assert!(!listed, "{secret} listed: {list}\n{table}");
        assert!(
            !hub.log_text().contains(secret),
            "{secret} in the hub's log"
        );
    }
    let by_name = |n: &str| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == n)
            .cloned()
            .unwrap()
    };
    assert_eq!(
        by_name("pd")["target"],
        format!("http://127.0.0.1:{}/…", rx.pagerduty.port)
    );
    assert_eq!(by_name("pd")["min_severity"], "critical");
    assert_eq!(
        by_name("mail")["target"],
        format!("ops@example.test via {smtp} (none)")
    );
    assert_eq!(by_name("gotify")["has_token"], true);
    assert_eq!(by_name("discord")["has_token"], false);
    assert!(table.contains("MIN") && table.contains("TOKEN"), "{table}");

    for (words, why) in [
        ("g2 --gotify http://127.0.0.1:9/", "needs a token"),
        ("p2 --pushover U", "needs a token"),
        ("m2 --email a@example.test", "--smtp"),
        (
            "m3 --email not-an-address --smtp 127.0.0.1:25",
            "payload.email.to",
        ),
        (
            "d2 --discord http://127.0.0.1:9/ --channel-token x",
            "takes no token",
        ),
    ] {
        let mut args = vec!["alert", "channel", "add"];
        args.extend(words.split_whitespace());
        let out = hub.cli(&args).unwrap();
        assert!(
            !out.success() && out.stderr.contains(why),
            "{words}: {}",
            out.describe()
        );
    }
}

/// A self-signed certificate for 127.0.0.1 (openssl), and its key.
fn loopback_cert(dir: &TempDir) -> (std::path::PathBuf, std::path::PathBuf) {
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let mut cmd = std::process::Command::new("openssl");
    cmd.args([
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
    ])
    .args(["-nodes", "-days", "2", "-subj", "/CN=127.0.0.1", "-keyout"])
    .arg(&key)
    .arg("-out")
    .arg(&cert)
    .args(["-addext", "subjectAltName=IP:127.0.0.1"])
    .args(["-addext", "basicConstraints=critical,CA:FALSE"])
    .args(["-addext", "extendedKeyUsage=serverAuth"]);
    run_bounded(cmd, Duration::from_secs(30))
        .unwrap()
        .ok()
        .unwrap();
    (cert, key)
}

#[test]
fn email_goes_over_starttls_or_implicit_tls_to_a_server_the_hub_trusts() {
    let dir = TempDir::new("smtp-tls").unwrap();
    let (cert, key) = loopback_cert(&dir);
    let starttls = SmtpServer::start_tls("starttls", &cert, &key);
    let implicit = SmtpServer::start_tls("tls", &cert, &key);
    let trust = (
        "SSL_CERT_FILE".to_string(),
        cert.to_str().unwrap().to_string(),
    );
    let hub = Hub::start(HubOpts {
        env: vec![trust],
        ..HubOpts::default()
    })
    .unwrap();
    let (s, t) = (starttls.address(), implicit.address());
    let added = run(
        &hub,
        &format!("alert channel add s --email s@example.test --smtp {s}"),
        &[],
    );
    assert_eq!(
        added["target"],
        format!("s@example.test via {s} (starttls)"),
        "the default"
    );
    run(
        &hub,
        &format!("alert channel add t --email t@example.test --smtp {t} --smtp-tls tls"),
        &[],
    );
    run(
        &hub,
        &format!("alert channel add p --email p@example.test --smtp {s} --smtp-tls none"),
        &[],
    );
    for (name, server) in [("s", &starttls), ("t", &implicit)] {
        let r = run(&hub, "alert channel test", &[name]);
        assert_eq!(r["delivered"], true, "{name}: {r}");
        let m = &server.wait_for(name, 1, |_| true)[0];
        assert!(m.tls, "{name} went over TLS");
    }
    let plain = run(&hub, "alert channel test p", &[]);
    let error = plain["error"].as_str().unwrap_or("");
    assert!(
        plain["delivered"] == false && error.contains("530"),
        "STARTTLS required: {plain}"
    );
    // A hub that does not trust the certificate sends nothing.
    let stranger = nextdeploy_tests::start_hub().unwrap();
    run(
        &stranger,
        &format!("alert channel add s --email s@example.test --smtp {s}"),
        &[],
    );
    let r = run(&stranger, "alert channel test s", &[]);
    let error = r["error"].as_str().unwrap_or("");
    assert!(
        r["delivered"] == false && error.contains("invalid peer certificate"),
        "{r}"
    );
    assert_eq!(starttls.messages().len(), 1, "{r}");
}
