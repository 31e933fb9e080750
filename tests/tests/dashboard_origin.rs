#![allow(clippy::unwrap_used, clippy::expect_used)]
//! A page of another origin cannot use the dashboard's session cookie, in a
//! real browser: `web/e2e/origin.mjs` signs in on the hub, then opens a
//! page served from `https://127.0.0.1:<other port>` (the same site, so
//! SameSite=Strict lets the cookie go along) in the same browser, which
//! tries the WebSocket, reading, ending and starting a session with
//! `fetch`, and a login CSRF with a plain form post. The hub is started with
//! that origin in `--allowed-origin` (as for a script with a bearer token),
//! which must not extend to the cookie. The hub's log names each refusal.

use std::time::Duration;

use nextdeploy_tests::*;

/// The whole browser session, each wait in the script bounded at 20 s.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(90);

#[test]
fn a_foreign_page_cannot_use_the_session_cookie() {
    let evil_port = free_port().unwrap();
    let evil_origin = format!("https://127.0.0.1:{evil_port}");
    let hub = Hub::start(HubOpts::args(["--allowed-origin", evil_origin.as_str()])).unwrap();
    let admin_name = hub.cli_json(&["whoami"]).unwrap()["name"]
        .as_str()
        .unwrap()
        .to_string();
    let viewer = hub
        .cli_json(&["token", "create", "--role", "viewer", "--name", "attacker"])
        .unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();

    let mut cmd = browser::node_script("origin.mjs", &format!("{}/", hub.url())).unwrap();
    cmd.env("DASH_TOKEN", &hub.admin_token)
        .env("DASH_ADMIN_NAME", &admin_name)
        .env("DASH_VIEWER", &viewer)
        .env("DASH_CERT", hub.data_dir.join("api-cert.pem"))
        .env("DASH_KEY", hub.data_dir.join("api-key.pem"))
        .env("DASH_EVIL_PORT", evil_port.to_string());
    let out = run_bounded(cmd, BROWSER_TIMEOUT).unwrap();
    eprintln!("{}", out.stdout);
    assert!(
        out.success() && out.stdout.contains("origin test passed"),
        "{}\n{}",
        out.describe(),
        hub.log_tail()
    );
    // The browser did send the cookie on the attacker's upgrade and form
    // post (same site): the hub's Origin checks refused them, by name.
    let log = hub.log_text();
    for refusal in [
        "refused a session cookie on a WebSocket from a foreign origin",
        "refused a cross-site session request",
    ] {
        assert!(
            log.lines()
                .any(|l| l.contains(refusal) && l.contains(&evil_origin)),
            "no `{refusal}` for {evil_origin} in the hub's log:\n{log}"
        );
    }
    assert!(browser::shots_dir().join("foreign-origin.png").is_file());
}
