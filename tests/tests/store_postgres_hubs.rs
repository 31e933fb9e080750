#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Two hub processes on one PostgreSQL store (each its own data dir: the
//! keys are not shared yet): the first makes the initial admin token, the
//! second none; a token created through one hub works on the other; a
//! revocation made through one closes the token's WebSocket on the other
//! within a second.

use std::time::{Duration, Instant};

use nextdeploy_tests::postgres::Postgres;
use nextdeploy_tests::*;
use serde_json::Value;

const CLOSE_WITHIN: Duration = Duration::from_secs(1);

#[test]
fn a_token_made_on_one_hub_works_on_the_other_and_its_revocation_closes_it_there() {
    let pg = Postgres::start();
    let url = pg.create_db();
    let a = Hub::start(HubOpts::args(["--store", url.as_str()])).unwrap();
    let b = Hub::start(HubOpts {
        extra_args: vec!["--store".into(), url.clone()],
        admin_token: Some(a.admin_token.clone()),
        ..HubOpts::default()
    })
    .unwrap();
    assert!(
        !b.data_dir.join("initial-admin-token").exists(),
        "the second hub made another admin token"
    );
    let made = a
        .cli_json(&["token", "create", "--role", "operator", "--name", "ci"])
        .unwrap();
    let (id, token) = (
        made["id"].as_str().unwrap(),
        made["token"].as_str().unwrap(),
    );
    let who = b.cli_json_as(token, &["whoami"]).unwrap();
    assert!(who.to_string().contains("ci"), "{who}");
    let listed: Value = b.cli_json(&["token", "list"]).unwrap();
    assert!(listed.to_string().contains(id), "{listed}");

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut ws = ws_connect(&b, Some(token), None).await.unwrap();
        let req = json!({"id": 1, "action": "whoami", "payload": {}});
        let r = ws.request(&req, Duration::from_secs(10)).await.unwrap();
        assert_eq!(r["type"], "result", "{r}");

        a.cli(&["token", "revoke", id]).unwrap().ok().unwrap();
        let revoked = Instant::now();
        let end = loop {
            let left = (revoked + CLOSE_WITHIN).saturating_duration_since(Instant::now());
            match ws.next_event(left).await {
                WsEvent::Text(_) => continue,
                other => break other,
            }
        };
        assert!(
            matches!(end, WsEvent::Close | WsEvent::End | WsEvent::Error(_)),
            "hub B did not close the revoked token's socket within {CLOSE_WITHIN:?}: {end:?}\n{}",
            b.log_tail()
        );
        eprintln!(
            "closed on the other hub {:?} after the revocation",
            revoked.elapsed()
        );
    });
    // (The CLI's own run takes longer than the announcement: the socket is
    // often closed before `revoke` returns.)
    assert!(
        b.log_text().contains("token revoked"),
        "hub B gave another reason\n{}",
        b.log_tail()
    );
    let out = b.cli_as(token, &["whoami"]).unwrap();
    assert!(
        !out.success(),
        "a revoked token works on the other hub: {}",
        out.describe()
    );

    // A hub on PostgreSQL shuts down cleanly (its connections closed off the
    // async workers).
    let mut b = b;
    b.signal("TERM").unwrap();
    let status = b.wait_exit(Duration::from_secs(20)).unwrap();
    assert!(status.success(), "{status}\n{}", b.log_tail());
    assert!(!b.log_text().contains("panicked"), "{}", b.log_tail());
}
