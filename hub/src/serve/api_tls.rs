//! The API's TLS as `nextdeploy hub` sets it up: which certificate (the
//! operator's, or the data dir's made on first start, or none with
//! `--plain-http`), the address and pin this host's own clients use, and
//! the SIGHUP reload of an operator's certificate.

use std::path::Path;
use std::sync::Arc;

use tracing::{info, warn};

use super::HubArgs;
use crate::http::tls::ApiTls;
use crate::HubConfig;

pub(super) fn scheme(config: &HubConfig) -> &'static str {
    if config.tls.is_some() {
        "https"
    } else {
        "http"
    }
}

/// The API's TLS (None with --plain-http): the operator's certificate, or
/// the data dir's, made on the first start.
pub(super) fn api_tls(
    args: &HubArgs,
    dir: &Path,
    http: std::net::SocketAddr,
) -> anyhow::Result<Option<Arc<ApiTls>>> {
    if args.plain_http {
        if !http.ip().is_loopback() {
            warn!(%http, "--plain-http on a non-loopback address: tokens, logs and inspect documents cross the network in clear text; put a TLS-terminating proxy in front");
        }
        return Ok(None);
    }
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => ApiTls::from_files(cert, key)?,
        _ => {
            let names = crate::http::tls::default_names(http, &args.api_names);
            let (tls, created) = ApiTls::in_data_dir(dir, &names)?;
            if created {
                info!(names = ?names, "made the API certificate");
            }
            tls
        }
    };
    Ok(Some(Arc::new(tls)))
}

/// The API's address for this host's own clients, and the pin they trust.
#[derive(Debug, Clone)]
pub struct ApiEndpoint {
    /// `https://127.0.0.1:8080` (or `http://` with --plain-http).
    pub url: String,
    /// `sha256:<hex>` of the API certificate, if TLS.
    pub pin: Option<String>,
}

/// SIGHUP: read the operator's certificate again (open connections keep
/// theirs); a pair that does not load keeps the old one.
pub(super) fn spawn_reload_on_hup(tls: Arc<ApiTls>) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        warn!("cannot install the SIGHUP handler: the certificate will not reload");
        return;
    };
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            match tls.reload() {
                Ok(Some(pin)) => info!(%pin, "reloaded the API certificate"),
                Ok(None) => info!("SIGHUP: the generated API certificate does not reload"),
                Err(e) => warn!(error = %format!("{e:#}"), "SIGHUP: kept the old API certificate"),
            }
        }
    });
}
