//! TLS for the API, the client side and the pin both sides print.
//!
//! The pin of a certificate is `sha256:<hex>` of its SubjectPublicKeyInfo
//! (DER), as kubeadm's `--discovery-token-ca-cert-hash`: the value
//! `openssl x509 -pubkey -noout -in CERT | openssl pkey -pubin -outform der |
//! sha256sum` prints, unchanged when a certificate is renewed with the same
//! key. A client with a pin accepts exactly the certificate whose key has
//! that pin (whatever its names or issuer); a client without one accepts
//! what chains to the system's roots, and nothing else: there is no trust on
//! first use.

use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, Error, RootCertStore, SignatureScheme};
use sha2::{Digest, Sha256};

/// The pin of a DER certificate, or why it has none.
pub fn spki_pin(cert_der: &[u8]) -> Result<String, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der)
        .map_err(|e| format!("unparsable certificate: {e}"))?;
    Ok(pin_of_spki(cert.tbs_certificate.subject_pki.raw))
}

/// The pin of a DER SubjectPublicKeyInfo.
pub fn pin_of_spki(spki_der: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(spki_der)))
}

/// A pin as the user typed it, normalised (`sha256:` prefix, lower-case
/// hex), or why it is not one.
pub fn parse_pin(text: &str) -> Result<String, String> {
    let hex_part = text.trim().strip_prefix("sha256:").unwrap_or(text.trim());
    if hex_part.len() != 64 || !hex_part.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(format!(
            "`{text}` is not a pin: expected sha256: and 64 hex digits (the hub prints its API pin at start)"
        ));
    }
    Ok(format!("sha256:{}", hex_part.to_ascii_lowercase()))
}

/// The pin the last handshake saw, for the error a refused client prints.
pub type SeenPin = Arc<Mutex<Option<String>>>;

/// Accepts the pinned key, or without a pin a chain to the system's roots.
#[derive(Debug)]
struct PinnedVerifier {
    pin: Option<String>,
    roots: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
    seen: SeenPin,
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let pin = spki_pin(end_entity).map_err(Error::General)?;
        if let Ok(mut s) = self.seen.lock() {
            *s = Some(pin.clone());
        }
        match (&self.pin, &self.roots) {
            (Some(want), _) if *want == pin => Ok(ServerCertVerified::assertion()),
            (Some(want), _) => Err(Error::General(format!(
                "the hub's certificate has pin {pin}, not the pinned {want}"
            ))),
            (None, Some(roots)) => {
                roots.verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
            }
            (None, None) => Err(Error::General("no pin and no system roots".into())),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The system's roots (what `rustls-native-certs` finds; none is fine).
fn system_roots(provider: &Arc<CryptoProvider>) -> Option<Arc<WebPkiServerVerifier>> {
    let mut store = RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = store.add(cert);
    }
    if store.is_empty() {
        return None;
    }
    WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider.clone())
        .build()
        .ok()
}

/// A client configuration that trusts `pin` (or, without one, the system's
/// roots), and the slot where the pin it saw is kept.
pub fn client_config(pin: Option<&str>) -> Result<(Arc<ClientConfig>, SeenPin), String> {
    let pin = pin.map(parse_pin).transpose()?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let seen: SeenPin = Arc::default();
    let verifier = PinnedVerifier {
        roots: if pin.is_none() {
            system_roots(&provider)
        } else {
            None
        },
        pin,
        provider: provider.clone(),
        seen: seen.clone(),
    };
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok((Arc::new(config), seen))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_parse_and_normalise() {
        let hex = "AB".repeat(32);
        assert_eq!(
            parse_pin(&format!("sha256:{hex}")).unwrap(),
            format!("sha256:{}", hex.to_lowercase())
        );
        assert_eq!(
            parse_pin(&hex).unwrap(),
            format!("sha256:{}", hex.to_lowercase())
        );
        assert!(parse_pin("sha256:abc").is_err());
        assert!(parse_pin(&format!("sha256:{}", "zz".repeat(32))).is_err());
    }

    #[test]
    fn garbage_has_no_pin() {
        assert!(spki_pin(b"not a certificate").is_err());
    }
}
