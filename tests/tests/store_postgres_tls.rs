#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The hub's connections to a PostgreSQL store over TLS (issue 23): with
//! `sslmode=require&sslrootcert=CA.pem` every connection of the hub is
//! encrypted (the server's `pg_stat_ssl` says so) and the certificate is
//! verified: the same URL without the CA (system roots only) refuses to
//! start, naming the store and the certificate, and a CA file with no
//! certificate is refused before any connection. Real parts: PostgreSQL
//! from Debian's packages with TLS turned on by the test (a CA and a server
//! certificate for 127.0.0.1 made with rcgen), the hub and an agent.

use std::process::Command;
use std::time::Duration;

use nextdeploy_tests::postgres::Postgres;
use nextdeploy_tests::*;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, SanType};

/// A CA's PEM, and a server certificate and key for 127.0.0.1 it signed.
fn certificates() -> (String, String, String) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut leaf = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    leaf.subject_alt_names
        .push(SanType::IpAddress([127, 0, 0, 1].into()));
    let cert = leaf.signed_by(&key, &issuer).unwrap();
    (ca_cert.pem(), cert.pem(), key.serialize_pem())
}

/// `nextdeploy hub` on `store` that must refuse to start: its output.
fn refused(dir: &std::path::Path, store: &str) -> Output {
    let mut cmd = Command::new(hub_bin().unwrap());
    cmd.args([
        "hub",
        "--ssh-listen",
        "127.0.0.1:0",
        "--http-listen",
        "127.0.0.1:0",
    ])
    .arg("--data-dir")
    .arg(dir)
    .args(["--store", store]);
    let out = run_bounded(cmd, Duration::from_secs(30)).unwrap();
    assert!(!out.success(), "the hub started: {}", out.describe());
    out
}

#[test]
fn a_store_over_tls_is_encrypted_and_its_certificate_verified() {
    let pg = Postgres::start();
    let (ca, cert, key) = certificates();
    pg.enable_tls(&cert, &key);
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &ca).unwrap();
    let db = pg.create_db();
    let name = db.rsplit('/').next().unwrap().to_string();

    // Without the CA (the system's roots do not know it): refused.
    let out = refused(&dir.path().join("no-ca"), &format!("{db}?sslmode=require"));
    let text = out.describe();
    assert!(text.contains("cannot connect to the store"), "{text}");
    assert!(text.to_lowercase().contains("certificate"), "{text}");
    eprintln!(
        "without the CA: {}",
        text.lines()
            .filter(|l| l.contains("store"))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    // A CA file with no certificate in it: refused before connecting.
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let url = format!("{db}?sslmode=require&sslrootcert={}", empty.display());
    let text = refused(&dir.path().join("empty-ca"), &url).describe();
    assert!(text.contains("no certificate in the file"), "{text}");

    let url = format!("{db}?sslmode=require&sslrootcert={}", ca_file.display());
    let hub = Hub::start(HubOpts::args(["--store".to_string(), url])).unwrap();
    let _agent = enroll_agent(&hub, "tls-a", "").unwrap();
    wait_online(&hub, &["tls-a"], Duration::from_secs(20)).unwrap();

    // Every connection of the hub to its database is encrypted.
    let mut c = ::postgres::Client::connect(&pg.url("postgres"), ::postgres::NoTls).unwrap();
    let rows = c
        .query(
            "SELECT s.ssl FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) \
             WHERE a.datname = $1 AND a.application_name = 'nextdeploy-hub'",
            &[&name],
        )
        .unwrap();
    let ssl: Vec<bool> = rows.iter().map(|r| r.get(0)).collect();
    assert!(ssl.len() >= 5, "the hub's connections: {ssl:?}");
    assert!(ssl.iter().all(|s| *s), "a connection without TLS: {ssl:?}");
}
