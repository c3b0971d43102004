//! Looks at the certificate each proxy presents on its inbound port, the
//! way a peer would: a TLS handshake whose [`SpiffeVerifier`] checks the
//! chain against the trust bundle, then the verified peer's ID and expiry
//! read from the connection. The probe has no client certificate, so the
//! proxy refuses the connection afterwards; only the server's certificate
//! is of interest.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use meshid_identity::tls::{SpiffeVerifier, peer_spiffe_id};
use meshid_identity::{BundleSet, TrustBundle, TrustDomain, crypto, x509};
use rustls::pki_types::ServerName;

use super::config::Service;

/// What a proxy presented.
#[derive(Debug)]
pub struct Seen {
    /// Its verified SPIFFE ID and expiry, or why not.
    pub svid: Result<(String, SystemTime), String>,
}

/// Probes `svc`'s inbound port.
pub async fn inbound_cert(svc: &Service, bundle_pem: &Path, td: &TrustDomain) -> Seen {
    Seen {
        svid: probe(svc.inbound_port, bundle_pem, td).await,
    }
}

async fn probe(
    port: u16,
    bundle_pem: &Path,
    td: &TrustDomain,
) -> Result<(String, SystemTime), String> {
    let text = std::fs::read_to_string(bundle_pem)
        .map_err(|e| format!("cannot read {}: {e}", bundle_pem.display()))?;
    let bundle = TrustBundle::from_pem(td.clone(), &text).map_err(|e| e.to_string())?;
    let bundles: BundleSet = [bundle].into_iter().collect();
    let provider = crypto::provider();
    let verifier = SpiffeVerifier::builder(Arc::new(bundles))
        .provider(provider.clone())
        .build()
        .map_err(|e| e.to_string())?;
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let name = ServerName::try_from("meshid-up-probe.invalid").map_err(|e| e.to_string())?;
    let attempt = async {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        connector.connect(name, tcp).await
    };
    let tls = match tokio::time::timeout(Duration::from_secs(3), attempt).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) if is_bad_certificate(&e) => {
            return Err(format!("certificate does not verify: {e}"));
        }
        Ok(Err(e)) => return Err(format!("no certificate seen on 127.0.0.1:{port}: {e}")),
        Err(_) => {
            return Err(format!(
                "no certificate seen on 127.0.0.1:{port}: timed out"
            ));
        }
    };
    // The handshake's verifier accepted this chain; read what it accepted.
    let certs = tls.get_ref().1.peer_certificates().unwrap_or_default();
    let id = peer_spiffe_id(certs).ok_or("the verified certificate has no SPIFFE ID")?;
    let leaf = certs
        .first()
        .ok_or("no certificate in the verified chain")?;
    let not_after = x509::not_after(leaf).map_err(|e| e.to_string())?;
    Ok((id.to_string(), not_after))
}

/// True if the handshake failed because our verifier refused the chain.
fn is_bad_certificate(e: &std::io::Error) -> bool {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .is_some_and(|tls| matches!(tls, rustls::Error::InvalidCertificate(_)))
}
