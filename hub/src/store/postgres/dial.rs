//! How a PostgreSQL store's connections are opened: the URL's settings, the
//! hub's bounds (see [`settings`]), and TLS when the URL says
//! `sslmode=require`: verified against the CA certificates of the URL's
//! `sslrootcert=PATH` (libpq's parameter, which the driver does not read,
//! so it is taken out of the URL here), or the system's roots. Never a
//! certificate taken on trust; `sslmode=prefer` (the default) and
//! `disable` connect without TLS, as before (a loopback or socket store).

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use postgres::config::SslMode;
use postgres::{Client, Config, NoTls};
use rustls::pki_types::{pem::PemObject, CertificateDer};
use rustls::{ClientConfig, RootCertStore};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::url::redact;
use crate::limits;
use crate::store::{StoreError, StoreResult};

/// A store's connection settings; cloned for each connection.
#[derive(Clone)]
pub struct Dial {
    config: Config,
    tls: Option<MakeRustlsConnect>,
}

impl Dial {
    /// Read `url` (errors name it without its password).
    pub fn parse(url: &str) -> StoreResult<Dial> {
        let shown = redact(url);
        let (url, root) = take_param(url, "sslrootcert");
        let mut config = Config::from_str(&url)
            .map_err(|e| StoreError::Open(format!("invalid store URL {shown}: {e}")))?;
        settings(&mut config);
        let tls = match config.get_ssl_mode() {
            SslMode::Require => Some(tls(root.as_deref().map(Path::new))?),
            _ if root.is_some() => {
                return Err(StoreError::Open(format!(
                    "store URL {shown}: sslrootcert needs sslmode=require"
                )))
            }
            _ => None,
        };
        Ok(Dial { config, tls })
    }

    /// Open one connection.
    pub fn connect(&self) -> Result<Client, postgres::Error> {
        match &self.tls {
            Some(t) => self.config.connect(t.clone()),
            None => self.config.connect(NoTls),
        }
    }

    /// Whether connections use TLS.
    pub fn encrypted(&self) -> bool {
        self.tls.is_some()
    }

    /// Whether the store is reached off this machine without TLS (every
    /// host neither loopback nor a socket): worth a warning at start.
    pub fn exposed(&self) -> bool {
        use postgres::config::Host;
        let local = |h: &Host| match h {
            Host::Unix(_) => true,
            Host::Tcp(name) => {
                name == "localhost"
                    || name
                        .parse::<std::net::IpAddr>()
                        .is_ok_and(|ip| ip.is_loopback())
            }
        };
        !self.encrypted() && !self.config.get_hosts().iter().all(local)
    }
}

/// `url` without its query parameter `key`, and that parameter's value.
fn take_param(url: &str, key: &str) -> (String, Option<String>) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_string(), None);
    };
    let mut found = None;
    let kept: Vec<&str> = query
        .split('&')
        .filter(|kv| match kv.split_once('=') {
            Some((k, v)) if k == key => {
                found = Some(v.to_string());
                false
            }
            _ => true,
        })
        .collect();
    match kept.is_empty() {
        true => (base.to_string(), found),
        false => (format!("{base}?{}", kept.join("&")), found),
    }
}

/// rustls trusting the PEM certificates of `root`, or the system's roots.
fn tls(root: Option<&Path>) -> StoreResult<MakeRustlsConnect> {
    let mut roots = RootCertStore::empty();
    match root {
        Some(path) => {
            let bad = |e: String| StoreError::Open(format!("sslrootcert {}: {e}", path.display()));
            for cert in CertificateDer::pem_file_iter(path).map_err(|e| bad(e.to_string()))? {
                let cert = cert.map_err(|e| bad(e.to_string()))?;
                roots.add(cert).map_err(|e| bad(e.to_string()))?;
            }
            if roots.is_empty() {
                return Err(bad("no certificate in the file".into()));
            }
        }
        None => {
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::Open(format!("TLS setup: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

/// Bounds the URL did not set: connect timeout, keepalives, unacknowledged
/// data, statement timeout.
fn settings(config: &mut Config) {
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(limits::PG_CONNECT_TIMEOUT);
    }
    config.keepalives(true);
    config.keepalives_idle(limits::PG_KEEPALIVE_IDLE);
    if config.get_tcp_user_timeout().is_none() {
        config.tcp_user_timeout(limits::PG_TCP_USER_TIMEOUT);
    }
    if config.get_options().is_none() {
        let ms = limits::PG_STATEMENT_TIMEOUT.as_millis();
        config.options(&format!("-c statement_timeout={ms}"));
    }
    if config.get_application_name().is_none() {
        config.application_name("nextdeploy-hub");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sslrootcert_is_taken_out_of_the_url() {
        let (u, r) = take_param(
            "postgres://h/db?sslmode=require&sslrootcert=/x.pem",
            "sslrootcert",
        );
        assert_eq!(
            (u.as_str(), r.as_deref()),
            ("postgres://h/db?sslmode=require", Some("/x.pem"))
        );
        let (u, r) = take_param("postgres://h/db?sslrootcert=/x.pem", "sslrootcert");
        assert_eq!(
            (u.as_str(), r.as_deref()),
            ("postgres://h/db", Some("/x.pem"))
        );
        let (u, r) = take_param("postgres://h/db", "sslrootcert");
        assert_eq!((u.as_str(), r), ("postgres://h/db", None));
    }

    #[test]
    fn a_root_without_require_and_a_missing_root_file_are_refused() {
        let e = Dial::parse("postgres://u:pw@h/db?sslrootcert=/x.pem")
            .err()
            .unwrap();
        assert!(e.to_string().contains("needs sslmode=require"), "{e}");
        assert!(!e.to_string().contains("pw"), "{e}");
        let e = Dial::parse("postgres://h/db?sslmode=require&sslrootcert=/nonexistent.pem")
            .err()
            .unwrap();
        assert!(e.to_string().contains("/nonexistent.pem"), "{e}");
        assert!(Dial::parse("postgres://h/db?sslmode=require")
            .unwrap()
            .encrypted());
        assert!(!Dial::parse("postgres://h/db").unwrap().encrypted());
        assert!(Dial::parse("postgres://db.example/db").unwrap().exposed());
        assert!(!Dial::parse("postgres://127.0.0.1:5432/db")
            .unwrap()
            .exposed());
        assert!(!Dial::parse("postgres://db.example/db?sslmode=require")
            .unwrap()
            .exposed());
    }
}
