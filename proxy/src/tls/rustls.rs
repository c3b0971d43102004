//! The rustls backend: server and client configs built from one identity.

use super::build::{ALPN_H2, ALPN_HTTP11, BuildError, ClientSettings, TlsOptions, no_client};
use crate::config::TlsVersion;
use crate::identity::Identity;
use meshid_identity::crypto;
use meshid_identity::tls::{Algorithms, PeerMatch, SpiffeVerifier};
use rustls::client::Resumption;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{ServerName, alg_id};
use rustls::{
    CipherSuite, ClientConfig, NamedGroup, ServerConfig, SignatureScheme, SupportedProtocolVersion,
};
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use tokio::net::TcpStream;

/// The server config for inbound listeners and the client configs of the
/// outbound listeners.
#[derive(Debug)]
pub struct RustlsConfigs {
    /// For inbound listeners: requires and verifies client SVIDs.
    pub server: Arc<ServerConfig>,
    /// For outbound listener `i`: verifies the server against its [`PeerMatch`].
    pub clients: Box<[Arc<ClientConfig>]>,
    /// Same as `clients` but offering ALPN `h2` first (where asked).
    pub clients_h2: Box<[Option<Arc<ClientConfig>>]>,
}

// === impl RustlsConfigs ===

impl RustlsConfigs {
    /// Builds every config for `id`, accepting TLS `opts.min_version` and
    /// newer. TLS 1.2 uses the suites of [`crypto::provider`] (ring): ECDHE
    /// (ECDSA or RSA) with AES-GCM or ChaCha20-Poly1305, nothing else; with
    /// [`Algorithms::Fips`], [`fips_provider`]'s.
    pub fn build(
        id: &Identity,
        opts: &TlsOptions,
        clients: &[ClientSettings],
    ) -> Result<Self, BuildError> {
        let versions: &[&'static SupportedProtocolVersion] = match opts.min_version {
            TlsVersion::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
            _ => &[&rustls::version::TLS13],
        };
        let provider = match opts.algorithms {
            Algorithms::Fips => fips_provider(),
            _ => crypto::provider(),
        };
        let verifier = |peer: PeerMatch| {
            SpiffeVerifier::builder(id.bundles.clone())
                .peer(peer)
                .provider(provider.clone())
                .build()
        };
        let mut server = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(versions)?
            .with_client_cert_verifier(verifier(PeerMatch::Any)?)
            .with_single_cert(id.chain.clone(), crypto::private_key_der(&id.key))?;
        server.alpn_protocols = vec![ALPN_H2.to_vec(), ALPN_HTTP11.to_vec()];
        let client = |c: &ClientSettings, alpn: Vec<Vec<u8>>| {
            let mut cfg = ClientConfig::builder_with_provider(provider.clone())
                .with_protocol_versions(versions)?
                .dangerous()
                .with_custom_certificate_verifier(verifier(c.peer.clone())?)
                .with_client_auth_cert(id.chain.clone(), crypto::private_key_der(&id.key))?;
            cfg.alpn_protocols = alpn;
            if !c.resumption {
                cfg.resumption = Resumption::disabled();
            }
            Ok::<_, BuildError>(Arc::new(cfg))
        };
        let h1 = clients
            .iter()
            .map(|c| client(c, c.alpn.clone()))
            .collect::<Result<_, _>>()?;
        let h2 = clients
            .iter()
            .map(|c| {
                c.h2.then(|| client(c, vec![ALPN_H2.to_vec(), ALPN_HTTP11.to_vec()]))
                    .transpose()
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            server: Arc::new(server),
            clients: h1,
            clients_h2: h2,
        })
    }

    /// The client config of outbound listener `index`: its HTTP/2-first
    /// variant if `h2` and one was built, else the default one.
    pub fn client(&self, index: usize, h2: bool) -> Option<Arc<ClientConfig>> {
        if h2 && let Some(Some(c)) = self.clients_h2.get(index) {
            return Some(c.clone());
        }
        self.clients.get(index).cloned()
    }

    /// Accepts a TLS connection on `tcp` with the server config.
    pub async fn accept(
        &self,
        tcp: TcpStream,
    ) -> io::Result<tokio_rustls::server::TlsStream<TcpStream>> {
        tokio_rustls::TlsAcceptor::from(self.server.clone())
            .accept(tcp)
            .await
    }

    /// Handshakes as a client of `addr` with client config `index`.
    pub async fn connect(
        &self,
        (index, h2): (usize, bool),
        addr: SocketAddr,
        tcp: TcpStream,
    ) -> io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
        let cfg = self.client(index, h2).ok_or_else(|| no_client(index))?;
        let name = ServerName::IpAddress(addr.ip().into());
        tokio_rustls::TlsConnector::from(cfg)
            .connect(name, tcp)
            .await
    }
}

/// [`crypto::provider`] restricted to FIPS-approved algorithms (not a
/// FIPS-validated module): AES-GCM suites only, key exchange on P-256 or
/// P-384, no Ed25519 signatures. Built once per process.
pub fn fips_provider() -> Arc<CryptoProvider> {
    static FIPS: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    Arc::clone(FIPS.get_or_init(|| {
        let base = crypto::provider();
        let mut p = (*base).clone();
        p.cipher_suites.retain(|s| FIPS_SUITES.contains(&s.suite()));
        p.kx_groups
            .retain(|g| matches!(g.name(), NamedGroup::secp256r1 | NamedGroup::secp384r1));
        p.signature_verification_algorithms =
            without_ed25519(base.signature_verification_algorithms);
        Arc::new(p)
    }))
}

/// The cipher suites [`fips_provider`] keeps.
const FIPS_SUITES: [CipherSuite; 6] = [
    CipherSuite::TLS13_AES_256_GCM_SHA384,
    CipherSuite::TLS13_AES_128_GCM_SHA256,
    CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
];

/// `algs` without Ed25519. The lists are `'static` in rustls, so the
/// filtered copies are leaked once ([`fips_provider`] is built once).
fn without_ed25519(algs: WebPkiSupportedAlgorithms) -> WebPkiSupportedAlgorithms {
    let all: Vec<_> = algs
        .all
        .iter()
        .copied()
        .filter(|a| a.public_key_alg_id() != alg_id::ED25519)
        .collect();
    let mapping: Vec<_> = algs
        .mapping
        .iter()
        .copied()
        .filter(|(s, _)| *s != SignatureScheme::ED25519)
        .collect();
    WebPkiSupportedAlgorithms {
        all: Vec::leak(all),
        mapping: Vec::leak(mapping),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::SupportedCipherSuite;

    fn tls12_suites(p: &CryptoProvider) -> Vec<CipherSuite> {
        p.cipher_suites
            .iter()
            .filter_map(|s| match s {
                SupportedCipherSuite::Tls12(s) => Some(s.common.suite),
                _ => None,
            })
            .collect()
    }

    /// TLS 1.2 is only ever ECDHE with an AEAD: the provider's suites.
    #[test]
    fn tls12_suites_are_ecdhe_with_aead_only() {
        assert_eq!(
            tls12_suites(&crypto::provider()),
            [
                CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
                CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
                CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
                CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
                CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
                CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
            ]
        );
    }

    /// FIPS algorithms: AES-GCM, P-256/P-384, no Ed25519.
    #[test]
    fn fips_provider_keeps_only_approved_algorithms() {
        let p = fips_provider();
        let suites: Vec<_> = p.cipher_suites.iter().map(|s| s.suite()).collect();
        assert_eq!(
            suites,
            [
                CipherSuite::TLS13_AES_256_GCM_SHA384,
                CipherSuite::TLS13_AES_128_GCM_SHA256,
                CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
                CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
                CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
                CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
            ]
        );
        let groups: Vec<_> = p.kx_groups.iter().map(|g| g.name()).collect();
        assert_eq!(groups, [NamedGroup::secp256r1, NamedGroup::secp384r1]);
        let algs = p.signature_verification_algorithms;
        assert!(!algs.supported_schemes().contains(&SignatureScheme::ED25519));
        assert!(
            algs.supported_schemes()
                .contains(&SignatureScheme::ECDSA_NISTP256_SHA256)
        );
        assert!(
            algs.all
                .iter()
                .all(|a| a.public_key_alg_id() != alg_id::ED25519)
        );
        assert!(Arc::ptr_eq(&p, &fips_provider()));
    }
}
