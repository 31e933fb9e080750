#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The dashboard's HTTP side against a real hub over TLS: sign-in gives an
//! HttpOnly, Secure, SameSite=Strict cookie; a bad token gets 401; the
//! cookie opens `/ws` from the hub's own origin only; cross-site sign-in and
//! sign-out are refused; revoking the token or signing out closes the
//! cookie's WebSocket within a second and ends the session; the page and its
//! assets come gzipped, with cache headers and a CSP without `unsafe-*`.

use std::time::{Duration, Instant};

use hyper::Method;
use nextdeploy_tests::*;
use serde_json::Value;

/// How fast a cookie's WebSocket must close when its session or token ends.
const CLOSE_WITHIN: Duration = Duration::from_secs(1);
/// The budget for the whole front end, compressed.
const MAX_GZIPPED_BYTES: usize = 200 * 1024;

struct Dash {
    hub: Hub,
    pin: String,
    origin: String,
}

impl Dash {
    fn start() -> Dash {
        let hub = start_hub().unwrap();
        let pin = hub.tls_pin.clone().expect("the hub printed no API pin");
        let origin = format!("https://127.0.0.1:{}", hub.http_port);
        Dash { hub, pin, origin }
    }

    fn call(&self, method: Method, path: &str, headers: &[(&str, &str)], body: &str) -> HttpReply {
        https_request(
            self.hub.http_port,
            &self.pin,
            method,
            path,
            headers,
            body.as_bytes(),
        )
        .unwrap()
    }

    /// `POST /api/session` as the dashboard sends it, from `origin`.
    fn sign_in_from(&self, origin: &str, token: &str) -> HttpReply {
        let body = json!({ "token": token }).to_string();
        let headers = [("Origin", origin), ("Content-Type", "application/json")];
        self.call(Method::POST, "/api/session", &headers, &body)
    }

    /// Sign in with `token`: the `Cookie` header value to send back.
    fn sign_in(&self, token: &str) -> String {
        let r = self.sign_in_from(&self.origin, token);
        assert_eq!(r.status, 204, "sign-in refused: {}", r.text());
        let set = r.header("set-cookie").expect("no Set-Cookie").to_string();
        set.split(';').next().unwrap().trim().to_string()
    }

    fn session(&self, cookie: &str) -> HttpReply {
        self.call(Method::GET, "/api/session", &[("Cookie", cookie)], "")
    }

    fn create_token(&self, role: &str, name: &str) -> (String, String) {
        let v = self
            .hub
            .cli_json(&["token", "create", "--role", role, "--name", name])
            .unwrap();
        let field = |k: &str| v[k].as_str().unwrap().to_string();
        (field("id"), field("token"))
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Open `/ws` with `headers` and ask `whoami`; the refusal's status otherwise.
async fn cookie_ws(hub: &Hub, headers: &[(&str, &str)]) -> Result<(Ws, Value), u16> {
    match ws_connect_with(hub, headers).await {
        Ok(mut ws) => {
            let req = json!({"id": 1, "action": "whoami"});
            let reply = ws.request(&req, Duration::from_secs(10)).await.unwrap();
            Ok((ws, reply))
        }
        Err(e) => Err(ws_refusal_status(&e).unwrap_or_else(|| panic!("not an HTTP refusal: {e}"))),
    }
}

/// A cookie WebSocket that must open.
async fn open(hub: &Hub, headers: &[(&'static str, String); 2]) -> Ws {
    let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    cookie_ws(hub, &h).await.unwrap().0
}

/// Wait (bounded by twice `CLOSE_WITHIN`) for the server to close `ws`:
/// how long it took.
async fn closed_within(ws: &mut Ws, since: Instant) -> Duration {
    loop {
        match ws.next_event(CLOSE_WITHIN * 2).await {
            WsEvent::Text(_) | WsEvent::Binary(_) => continue,
            WsEvent::Timeout => panic!("the WebSocket stayed open"),
            _ => return since.elapsed(),
        }
    }
}

#[test]
fn sign_in_sets_a_strict_cookie_that_opens_the_websocket_from_the_own_origin_only() {
    let d = Dash::start();
    let token = d.hub.admin_token.clone();

    // A bad token, a foreign Origin, no Origin, a form's content type.
    let bad = d.sign_in_from(&d.origin, "nda_nope_0000");
    assert_eq!(bad.status, 401, "{}", bad.text());
    assert!(bad.header("set-cookie").is_none());
    let foreign = d.sign_in_from("https://evil.example", &token);
    assert_eq!(foreign.status, 403, "{}", foreign.text());
    let body = json!({ "token": token }).to_string();
    let no_origin = d.call(
        Method::POST,
        "/api/session",
        &[("Content-Type", "application/json")],
        &body,
    );
    assert_eq!(no_origin.status, 403, "{}", no_origin.text());
    let form = d.call(
        Method::POST,
        "/api/session",
        &[
            ("Origin", d.origin.as_str()),
            ("Content-Type", "text/plain"),
        ],
        &body,
    );
    assert_eq!(form.status, 415, "{}", form.text());
    assert_eq!(d.session("").status, 401);

    // A good sign-in: the cookie and its attributes.
    let r = d.sign_in_from(&d.origin, &token);
    assert_eq!(r.status, 204, "{}", r.text());
    let set = r.header("set-cookie").unwrap();
    let attrs: Vec<&str> = set.split(';').map(str::trim).collect();
    for want in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
        assert!(attrs.contains(&want), "{want} missing: {set}");
    }
    assert!(attrs[0].starts_with("__Host-nd_session="), "{set}");
    let id = attrs[0].split_once('=').unwrap().1;
    assert_eq!(id.len(), 64, "not a 256-bit id: {set}");
    assert!(!set.contains(&token), "the token is in the cookie");
    let cookie = attrs[0].to_string();

    let me = d.session(&cookie);
    assert_eq!(me.status, 200, "{}", me.text());
    let me: Value = serde_json::from_slice(&me.body).unwrap();
    assert_eq!(me["role"], "admin", "{me}");

    rt().block_on(async {
        let own = [("Cookie", cookie.as_str()), ("Origin", d.origin.as_str())];
        let (ws, reply) = cookie_ws(&d.hub, &own).await.unwrap();
        assert_eq!(reply["type"], "result", "{reply}");
        assert_eq!(reply["data"]["role"], "admin", "{reply}");
        ws.close().await;
        let evil = [
            ("Cookie", cookie.as_str()),
            ("Origin", "https://evil.example"),
        ];
        assert_eq!(cookie_ws(&d.hub, &evil).await.err(), Some(403));
        let none = [("Cookie", cookie.as_str())];
        assert_eq!(cookie_ws(&d.hub, &none).await.err(), Some(403));
        let stale = [
            ("Cookie", "__Host-nd_session=00"),
            ("Origin", d.origin.as_str()),
        ];
        assert_eq!(cookie_ws(&d.hub, &stale).await.err(), Some(401));
    });
}

#[test]
fn revoking_the_token_or_signing_out_closes_the_cookie_websocket_within_a_second() {
    let d = Dash::start();
    let (viewer_id, viewer) = d.create_token("viewer", "dash-viewer");
    let (_, operator) = d.create_token("operator", "dash-operator");
    let by_revoke = d.sign_in(&viewer);
    let by_sign_out = d.sign_in(&operator);

    rt().block_on(async {
        let own = |cookie: &str| [("Cookie", cookie.to_string()), ("Origin", d.origin.clone())];
        let mut revoked_ws = open(&d.hub, &own(&by_revoke)).await;
        let mut signed_out_ws = open(&d.hub, &own(&by_sign_out)).await;

        // A cross-site sign-out changes nothing.
        let cross = d.call(
            Method::DELETE,
            "/api/session",
            &[
                ("Cookie", by_sign_out.as_str()),
                ("Origin", "https://evil.example"),
                ("Content-Type", "application/json"),
            ],
            "",
        );
        assert_eq!(cross.status, 403, "{}", cross.text());
        assert_eq!(d.session(&by_sign_out).status, 200);

        d.hub
            .cli(&["token", "revoke", &viewer_id])
            .unwrap()
            .ok()
            .unwrap();
        // Counted from the revocation's answer: the close may come before it.
        let took = closed_within(&mut revoked_ws, Instant::now()).await;
        assert!(took <= CLOSE_WITHIN, "closed after {took:?}");
        assert_eq!(d.session(&by_revoke).status, 401);
        // The other token's session is untouched.
        let whoami = json!({"id": 2, "action": "whoami"});
        let reply = signed_out_ws
            .request(&whoami, Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(reply["data"]["role"], "operator", "{reply}");

        let t0 = Instant::now();
        let out = d.call(
            Method::DELETE,
            "/api/session",
            &[
                ("Cookie", by_sign_out.as_str()),
                ("Origin", d.origin.as_str()),
                ("Content-Type", "application/json"),
            ],
            "",
        );
        assert_eq!(out.status, 204, "{}", out.text());
        assert!(out.header("set-cookie").unwrap().contains("Max-Age=0"));
        let took = closed_within(&mut signed_out_ws, t0).await;
        assert!(took <= CLOSE_WITHIN, "closed after {took:?}");
        assert_eq!(d.session(&by_sign_out).status, 401);
        let again = [
            ("Cookie", by_sign_out.as_str()),
            ("Origin", d.origin.as_str()),
        ];
        assert_eq!(cookie_ws(&d.hub, &again).await.err(), Some(401));
    });
}

#[test]
fn the_page_and_its_assets_come_gzipped_with_cache_and_security_headers() {
    let d = Dash::start();
    let printed = format!("Dashboard: {}/", d.origin);
    assert!(d.hub.log_text().contains(&printed), "{}", d.hub.log_tail());
    let gzip = [("Accept-Encoding", "gzip")];
    let mut total_gzipped = 0;
    for path in ["/", "/agents/prod-1", "/agents/prod-1/containers/web"] {
        let r = d.call(Method::GET, path, &gzip, "");
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.header("cache-control"), Some("no-cache"), "{path}");
        assert_eq!(r.header("content-encoding"), Some("gzip"), "{path}");
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(r.header("referrer-policy"), Some("no-referrer"));
        let csp = r.header("content-security-policy").expect("no CSP");
        assert!(!csp.contains("unsafe"), "{csp}");
        for want in [
            "default-src 'none'",
            "script-src 'self'",
            "frame-ancestors 'none'",
        ] {
            assert!(csp.contains(want), "{want} missing: {csp}");
        }
        let wss = format!("connect-src 'self' wss://127.0.0.1:{};", d.hub.http_port);
        assert!(csp.contains(&wss), "{csp}");
        total_gzipped = r.body.len();
    }
    let page = d.call(Method::GET, "/", &[], "");
    assert_eq!(page.header("content-encoding"), None);
    let html = page.text();
    assert!(html.contains("<div id=\"app\">"), "{html}");
    assert!(!html.contains("<script>"), "an inline script: {html}");

    let assets: Vec<&str> = html
        .split(['"', '\''])
        .filter(|s| s.starts_with("/assets/"))
        .collect();
    assert!(assets.iter().any(|a| a.ends_with(".js")), "{html}");
    for asset in assets {
        let r = d.call(Method::GET, asset, &gzip, "");
        assert_eq!(r.status, 200, "{asset}");
        assert_eq!(
            r.header("cache-control"),
            Some("public, max-age=31536000, immutable"),
            "{asset}"
        );
        assert_eq!(r.header("content-encoding"), Some("gzip"), "{asset}");
        assert_eq!(&r.body[..2], &[0x1f, 0x8b], "{asset} is not gzip");
        let plain = d.call(Method::GET, asset, &[], "");
        assert!(plain.body.len() > r.body.len(), "{asset}");
        total_gzipped += r.body.len();
    }
    assert!(
        total_gzipped < MAX_GZIPPED_BYTES,
        "the dashboard is {total_gzipped} bytes compressed"
    );
    let missing = d.call(Method::GET, "/assets/missing.js", &gzip, "");
    assert_eq!(missing.status, 404);
}
