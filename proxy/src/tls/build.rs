//! Building rustls server and client configs from one identity.

use crate::config::TlsVersion;
use crate::identity::Identity;
use meshid_identity::crypto;
use meshid_identity::tls::{PeerMatch, SpiffeVerifier};
use rustls::client::Resumption;
use rustls::{ClientConfig, ServerConfig, SupportedProtocolVersion};
use std::fmt;
use std::sync::Arc;

/// ALPN protocol id of HTTP/2.
pub const ALPN_H2: &[u8] = b"h2";
/// ALPN protocol id of HTTP/1.1.
pub const ALPN_HTTP11: &[u8] = b"http/1.1";

/// How one outbound listener talks TLS to its upstream.
#[derive(Clone, Debug)]
pub struct ClientSettings {
    /// Which server SPIFFE IDs are accepted.
    pub peer: PeerMatch,
    /// ALPN protocols offered, most preferred first.
    pub alpn: Vec<Vec<u8>>,
    /// Also build a variant offering `h2` first, used for HTTP/2 requests
    /// (so a request keeps its HTTP version from sidecar to sidecar).
    pub h2: bool,
    /// Allow TLS session resumption.
    pub resumption: bool,
}

/// Server config for inbound listeners and one client config per outbound
/// listener, all built from the same identity.
pub struct TlsConfigs {
    /// The identity these configs present.
    pub identity: Arc<Identity>,
    /// For inbound listeners: requires and verifies client SVIDs.
    pub server: Arc<ServerConfig>,
    /// For outbound listener `i`: verifies the server against its [`PeerMatch`].
    pub clients: Box<[Arc<ClientConfig>]>,
    /// Same as `clients` but offering ALPN `h2` first (where asked).
    pub clients_h2: Box<[Option<Arc<ClientConfig>>]>,
}

// === impl TlsConfigs ===

impl TlsConfigs {
    /// Builds every config for `id`, accepting TLS `min` and newer. TLS
    /// 1.2 uses the suites of [`crypto::provider`] (ring): ECDHE (ECDSA or
    /// RSA) with AES-GCM or ChaCha20-Poly1305, nothing else.
    pub fn build(
        id: &Identity,
        min: TlsVersion,
        clients: &[ClientSettings],
    ) -> Result<Self, rustls::Error> {
        let versions: &[&'static SupportedProtocolVersion] = match min {
            TlsVersion::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
            _ => &[&rustls::version::TLS13],
        };
        let provider = crypto::provider();
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
            Ok::<_, rustls::Error>(Arc::new(cfg))
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
            identity: Arc::new(id.clone()),
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
}

impl fmt::Debug for TlsConfigs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfigs")
            .field("identity", &self.identity)
            .field("clients", &self.clients.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use rustls::{CipherSuite, SupportedCipherSuite};

    /// TLS 1.2 is only ever ECDHE with an AEAD: the provider's suites.
    #[test]
    fn tls12_suites_are_ecdhe_with_aead_only() {
        let provider = meshid_identity::crypto::provider();
        let tls12: Vec<CipherSuite> = provider
            .cipher_suites
            .iter()
            .filter_map(|s| match s {
                SupportedCipherSuite::Tls12(s) => Some(s.common.suite),
                _ => None,
            })
            .collect();
        assert_eq!(
            tls12,
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
}
