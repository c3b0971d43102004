//! Looks at the certificate each proxy presents on its inbound port, the
//! way a peer would: a TLS handshake whose verifier records the chain and
//! checks it against the trust bundle. The probe has no client certificate,
//! so the proxy refuses the connection afterwards; only the server's
//! certificate is of interest.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use meshid_identity::{BundleSet, TrustBundle, TrustDomain, verify_x509_svid};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

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
    let mut bundles = BundleSet::new();
    bundles.insert(bundle);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let recorder = Arc::new(Recorder {
        bundles,
        provider: provider.clone(),
        seen: Mutex::new(None),
    });
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(recorder.clone())
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let name = ServerName::try_from("meshid-up-probe.invalid").map_err(|e| e.to_string())?;
    let attempt = async {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        connector.connect(name, tcp).await
    };
    let _ = tokio::time::timeout(Duration::from_secs(3), attempt).await;
    let seen = recorder
        .seen
        .lock()
        .map_err(|_| "probe lock poisoned".to_owned())?;
    seen.clone()
        .unwrap_or_else(|| Err(format!("no certificate seen on 127.0.0.1:{port}")))
}

#[derive(Debug)]
struct Recorder {
    bundles: BundleSet,
    provider: Arc<rustls::crypto::CryptoProvider>,
    seen: Mutex<Option<Result<(String, SystemTime), String>>>,
}

impl ServerCertVerifier for Recorder {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let mut chain = vec![end_entity.clone()];
        chain.extend(intermediates.iter().cloned());
        let result = verify_x509_svid(&chain, &self.bundles, SystemTime::now())
            .map(|v| (v.spiffe_id.to_string(), v.not_after))
            .map_err(|e| format!("certificate does not verify: {e}"));
        let ok = result.is_ok();
        if let Ok(mut seen) = self.seen.lock() {
            *seen = Some(result);
        }
        if ok {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(
                "probe: bad server certificate".into(),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
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
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
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
