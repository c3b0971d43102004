//! A node API client on OpenSSL for the tests: `identity::openssl`'s
//! `PinnedHandshake` (TLS 1.3, h2, pinned to the CA's SPIFFE ID under a
//! bundle) over `meshid_runtime::tls::connector`, as the agent's OpenSSL
//! client is.

use std::error::Error as StdError;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use meshid_identity::openssl::{HandshakeError, PinnedHandshake};
use meshid_identity::{BundleSet, TrustBundle};
use meshid_proto::ca::node_client::NodeClient;
use tonic::transport::Channel;

use super::server::Agent;

/// A channel to the CA at `addr`, which must present
/// `spiffe://<bundle's trust domain>/meshid/ca` under `bundle`; as `agent`
/// if given.
pub async fn try_channel(
    addr: SocketAddr,
    bundle: &TrustBundle,
    agent: Option<&Agent>,
) -> Result<Channel, tonic::transport::Error> {
    let ca_id = bundle
        .trust_domain
        .id_with_path(meshid_identity::id::CA_PATH)
        .unwrap();
    let client = agent.map(|a| (a.chain.as_slice(), &a.key));
    let bundles: BundleSet = [bundle.clone()].into_iter().collect();
    let handshake = PinnedHandshake::new(&ca_id, Arc::new(bundles), client).unwrap();
    let (endpoint, _) = meshid_runtime::tls::endpoint(
        &addr.to_string(),
        Duration::from_secs(30),
        Duration::from_secs(10),
    )
    .unwrap();
    endpoint
        .connect_with_connector(meshid_runtime::tls::connector(handshake))
        .await
}

/// A node API client on [`try_channel`]; panics if it cannot connect.
pub async fn node_client(
    addr: SocketAddr,
    bundle: &TrustBundle,
    agent: Option<&Agent>,
) -> NodeClient<Channel> {
    let channel = try_channel(addr, bundle, agent)
        .await
        .unwrap_or_else(|e| panic!("OpenSSL client to {addr}: {}", error_text(&e)));
    NodeClient::new(channel).max_encoding_message_size(64 * 1024 * 1024)
}

/// The reason label of the OpenSSL handshake error inside `e`, if any.
pub fn handshake_reason(e: &(dyn StdError + 'static)) -> Option<&'static str> {
    let mut next = Some(e);
    while let Some(e) = next {
        let inner = e
            .downcast_ref::<io::Error>()
            .and_then(|io| io.get_ref())
            .map(|i| i as &(dyn StdError + 'static));
        for candidate in [Some(e), inner].into_iter().flatten() {
            if let Some(h) = candidate.downcast_ref::<HandshakeError>() {
                return Some(h.reason);
            }
        }
        next = inner.or_else(|| e.source());
    }
    None
}

/// `e` and its sources, joined.
pub fn error_text(e: &(dyn StdError + 'static)) -> String {
    let mut text = e.to_string();
    let mut next = e.source();
    while let Some(s) = next {
        text.push_str(": ");
        text.push_str(&s.to_string());
        next = s.source();
    }
    text
}
