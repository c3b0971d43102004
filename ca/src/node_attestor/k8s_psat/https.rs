//! A bounded HTTPS GET for an OIDC issuer's discovery document and JWKS:
//! TLS verified against the system roots plus an optional CA file, HTTP/1.1,
//! a 5 s bound on the whole exchange and at most 1 MiB of body.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};

use super::config::CALL_TIMEOUT;

/// Largest body read.
pub const MAX_BODY: usize = 1024 * 1024;

/// The TLS client of one issuer.
pub fn tls_config(ca_file: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(native.certs);
    if let Some(path) = ca_file {
        let text = meshid_runtime::fs::read_to_string(path, meshid_runtime::fs::MAX_SMALL_FILE)
            .map_err(|e| format!("cannot read oidc_ca_file {}: {e}", path.display()))?;
        let certs = CertificateDer::pem_slice_iter(text.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("oidc_ca_file {} is not PEM: {e}", path.display()))?;
        if certs.is_empty() {
            return Err(format!(
                "oidc_ca_file {} holds no certificate",
                path.display()
            ));
        }
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| format!("oidc_ca_file {}: {e}", path.display()))?;
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(meshid_identity::crypto::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// GETs `uri` (https) and returns its body if the status is 200.
pub async fn get(tls: &Arc<rustls::ClientConfig>, uri: &http::Uri) -> Result<Bytes, String> {
    match tokio::time::timeout(CALL_TIMEOUT, exchange(tls, uri)).await {
        Ok(r) => r.map_err(|e| format!("GET {uri}: {e}")),
        Err(_) => Err(format!(
            "GET {uri}: no answer within {}s",
            CALL_TIMEOUT.as_secs()
        )),
    }
}

async fn exchange(tls: &Arc<rustls::ClientConfig>, uri: &http::Uri) -> Result<Bytes, String> {
    if uri.scheme_str() != Some("https") {
        return Err("not an https URL".into());
    }
    let authority = uri.authority().ok_or("no host")?.clone();
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let port = authority.port_u16().unwrap_or(443);
    let name = ServerName::try_from(host.to_owned()).map_err(|e| e.to_string())?;
    let tcp = tokio::net::TcpStream::connect((host, port))
        .await
        .map_err(|e| e.to_string())?;
    let stream = tokio_rustls::TlsConnector::from(Arc::clone(tls))
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    let driver = tokio::spawn(conn);
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let request = http::Request::get(path)
        .header(http::header::HOST, authority.as_str())
        .header(http::header::ACCEPT, "application/json")
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let result = async {
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        if response.status() != http::StatusCode::OK {
            return Err(format!("HTTP {}", response.status()));
        }
        Limited::new(response.into_body(), MAX_BODY)
            .collect()
            .await
            .map(|b| b.to_bytes())
            .map_err(|e| format!("reading the body (at most {MAX_BODY} bytes): {e}"))
    }
    .await;
    driver.abort();
    result
}
