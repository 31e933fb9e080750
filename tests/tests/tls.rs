#![allow(clippy::unwrap_used, clippy::expect_used)]
//! TLS on the API, checked with the tools people check it with: `curl
//! --cacert` and `openssl s_client` see the hub's certificate, the pin the
//! hub prints is what openssl computes from it, the CLI refuses a hub whose
//! pin differs and an unpinned self-signed one (saying what to do), a
//! certificate from a CA the client trusts needs no pin, SIGHUP serves a
//! renewed certificate, and `--plain-http` is plain.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use nextdeploy_tests::*;

const TOOL_TIMEOUT: Duration = Duration::from_secs(30);

fn sh(script: &str) -> Output {
    let mut cmd = Command::new("bash");
    cmd.arg("-c").arg(script);
    run_bounded(cmd, TOOL_TIMEOUT).unwrap()
}

/// The pin of the certificate openssl is served on `port`, computed by
/// openssl itself (the README's command).
fn openssl_pin(port: u16) -> String {
    let out = sh(&format!(
        "set -o pipefail; openssl s_client -connect 127.0.0.1:{port} -servername localhost </dev/null 2>/dev/null \
         | openssl x509 -pubkey -noout | openssl pkey -pubin -outform der | sha256sum"
    ))
    .ok()
    .unwrap();
    format!("sha256:{}", out.stdout.split_whitespace().next().unwrap())
}

#[test]
fn the_printed_pin_is_what_openssl_sees_and_curl_trusts_the_certificate() {
    let hub = start_hub().unwrap();
    let pin = hub.tls_pin.clone().expect("the hub printed no API pin");
    assert_eq!(openssl_pin(hub.http_port), pin);
    let cert = hub.data_dir.join("api-cert.pem");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(hub.data_dir.join("api-key.pem"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "the API key is not 0600");
    let health = sh(&format!(
        "curl -sS --fail --cacert '{}' https://127.0.0.1:{}/health",
        cert.display(),
        hub.http_port
    ));
    assert!(
        health.success() && health.stdout.contains("\"status\":\"ok\""),
        "{}",
        health.describe()
    );
    let plain = sh(&format!(
        "curl -sS --max-time 5 http://127.0.0.1:{}/health",
        hub.http_port
    ));
    assert!(
        !plain.stdout.contains("\"status\""),
        "plain HTTP answered: {}",
        plain.describe()
    );
}

#[test]
fn the_cli_refuses_an_unpinned_or_mispinned_hub_and_says_what_to_do() {
    let hub = start_hub().unwrap();
    let pin = hub.tls_pin.clone().unwrap();
    let mut cmd = hub.cli_command(&hub.admin_token).unwrap();
    cmd.env("NEXTDEPLOY_TLS_PIN", "").args(["agent", "list"]);
    let out = run_bounded(cmd, CLI_TIMEOUT).unwrap();
    assert!(!out.success(), "an unpinned self-signed hub was trusted");
    assert!(
        out.stderr.contains(&format!("--tls-pin {pin}")) && out.stderr.contains("nextdeploy login"),
        "the refusal does not say how to accept the pin: {}",
        out.describe()
    );
    let other = format!("sha256:{}", "ab".repeat(32));
    let mut cmd = hub.cli_command(&hub.admin_token).unwrap();
    cmd.env("NEXTDEPLOY_TLS_PIN", &other)
        .args(["agent", "list"]);
    let out = run_bounded(cmd, CLI_TIMEOUT).unwrap();
    assert!(!out.success(), "a hub with another pin was trusted");
    assert!(
        out.stderr.contains(&pin) && out.stderr.contains(&other),
        "{}",
        out.describe()
    );

    // `login --tls-pin` saves the pin; later commands need nothing else.
    let mut cmd = hub.cli_command(&hub.admin_token).unwrap();
    cmd.env("NEXTDEPLOY_TLS_PIN", "")
        .env_remove("NEXTDEPLOY_HUB")
        .env_remove("NEXTDEPLOY_TOKEN")
        .args([
            "login",
            "--hub",
            &hub.url(),
            "--token",
            &hub.admin_token,
            "--tls-pin",
            &pin,
        ]);
    run_bounded(cmd, CLI_TIMEOUT).unwrap().ok().unwrap();
    let mut cmd = hub.cli_command(&hub.admin_token).unwrap();
    cmd.env("NEXTDEPLOY_TLS_PIN", "")
        .env_remove("NEXTDEPLOY_HUB")
        .env_remove("NEXTDEPLOY_TOKEN")
        .args(["whoami"]);
    let out = run_bounded(cmd, CLI_TIMEOUT).unwrap();
    assert!(
        out.success() && out.stdout.contains("initial-admin"),
        "{}",
        out.describe()
    );
}

/// A CA and a certificate for 127.0.0.1/localhost signed by it, in `dir`.
fn make_ca_and_cert(dir: &Path, tag: &str) {
    let d = dir.display();
    sh(&format!(
        "set -e; cd '{d}'; \
         openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
           -subj /CN=test-ca-{tag} -keyout ca-{tag}.key -out ca-{tag}.pem 2>/dev/null; \
         openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost \
           -keyout {tag}.key -out {tag}.csr 2>/dev/null; \
         printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > {tag}.ext; \
         openssl x509 -req -in {tag}.csr -CA ca-{tag}.pem -CAkey ca-{tag}.key -CAcreateserial \
           -days 2 -extfile {tag}.ext -out {tag}.pem 2>/dev/null"
    ))
    .ok()
    .unwrap();
}

#[test]
fn a_certificate_from_a_trusted_ca_needs_no_pin_and_sighup_renews_it() {
    let certs = TempDir::new("tls-ca").unwrap();
    make_ca_and_cert(certs.path(), "one");
    let (cert, key) = (certs.path().join("live.pem"), certs.path().join("live.key"));
    std::fs::copy(certs.path().join("one.pem"), &cert).unwrap();
    std::fs::copy(certs.path().join("one.key"), &key).unwrap();
    let opts = HubOpts::args([
        "--tls-cert".to_string(),
        cert.display().to_string(),
        "--tls-key".to_string(),
        key.display().to_string(),
    ]);
    let hub = Hub::start(opts).unwrap();
    let first = hub.tls_pin.clone().unwrap();
    assert_eq!(openssl_pin(hub.http_port), first);

    let trusting = |ca: &str| {
        let mut cmd = hub.cli_command(&hub.admin_token).unwrap();
        cmd.env("NEXTDEPLOY_TLS_PIN", "")
            .env("SSL_CERT_FILE", certs.path().join(ca))
            .args(["whoami"]);
        run_bounded(cmd, CLI_TIMEOUT).unwrap()
    };
    let out = trusting("ca-one.pem");
    assert!(
        out.success(),
        "a certificate from a trusted CA was refused: {}",
        out.describe()
    );

    // Renewal with a new key under another CA: SIGHUP, and new connections get it.
    make_ca_and_cert(certs.path(), "two");
    std::fs::copy(certs.path().join("two.pem"), &cert).unwrap();
    std::fs::copy(certs.path().join("two.key"), &key).unwrap();
    send_signal(hub.pid().unwrap(), "HUP").unwrap();
    wait_until_ok(
        "the renewed certificate",
        Duration::from_secs(10),
        Duration::from_millis(100),
        || Ok(openssl_pin(hub.http_port) != first),
    )
    .unwrap();
    assert!(trusting("ca-two.pem").success());
    assert!(
        !trusting("ca-one.pem").success(),
        "the old CA still vouches for the renewed hub"
    );
}

#[test]
fn plain_http_only_when_asked_and_a_lone_key_is_refused() {
    let hub = Hub::start(HubOpts::args(["--plain-http"])).unwrap();
    assert!(hub.tls_pin.is_none());
    let (status, body) = hub.http_get("/health").unwrap();
    assert_eq!(status, 200, "{body}");
    let out = hub.cli(&["agent", "list"]).unwrap();
    assert!(out.success(), "{}", out.describe());
    drop(hub);

    let mut hub = start_hub().unwrap();
    hub.kill9();
    std::fs::remove_file(hub.data_dir.join("api-cert.pem")).unwrap();
    let err = hub.restart().unwrap_err();
    assert!(
        format!("{err:#}").contains("refusing to make a new key"),
        "a data dir with the key but no certificate started: {err:#}"
    );
}
