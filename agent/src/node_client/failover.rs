//! The CA's addresses and the order a call tries them in.
//!
//! The agent is configured with one or more CA addresses (`ca_address` or
//! `ca_addresses`), each `host:port`, where a host may be a DNS name that
//! resolves to several replicas. A call goes to one resolved address, the
//! one that worked last ([`Peers::sticky`]); only on a transient failure is
//! it retried on the next one, in configured order (then resolver order),
//! wrapping around, each address at most once per call and at most
//! [`MAX_PEERS`] in all. After that the caller's backoff applies.
//!
//! Why an ordered list of our own instead of tonic's balanced channel
//! (`Channel::balance_list`, `balance_channel`): those spread requests over
//! every endpoint (so nothing sticks to the replica that works), retry
//! nothing themselves (a request on a dead endpoint simply fails), hide
//! which endpoint answered, and dial with tonic's own connector, while
//! every connection to the CA must use the pinned TLS config (the CA's
//! SPIFFE ID) through runtime's connector. Here each attempt is one
//! `connect_with_connector` channel to one address, so failover is bounded,
//! ordered and visible in the logs.

use std::net::SocketAddr;
use std::time::Duration;

use rustls_pki_types::ServerName;

use super::CaError;

/// Most resolved addresses one call tries.
pub const MAX_PEERS: usize = 16;
/// How long resolving one configured address may take.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// One configured address: `host:port` and the TLS server name of its host.
#[derive(Debug)]
struct Target {
    address: String,
    server_name: ServerName<'static>,
}

/// A resolved address to dial and the configured address it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Peer {
    /// The socket address dialled.
    pub(super) addr: SocketAddr,
    /// Index of the configured address.
    target: usize,
}

/// The configured CA addresses.
#[derive(Debug)]
pub(super) struct Peers {
    targets: Vec<Target>,
}

// === impl Peers ===

impl Peers {
    /// The addresses, each `host:port` (IPv6 in brackets); at least one.
    pub(super) fn new(addresses: &[String]) -> Result<Self, CaError> {
        if addresses.is_empty() {
            return Err(CaError::Tls(
                "no CA address: set ca_address or ca_addresses".into(),
            ));
        }
        let targets = addresses
            .iter()
            .map(|a| {
                // The same parsing as every tonic channel to the CA.
                let t = Duration::from_secs(1);
                let (_, server_name) = meshid_runtime::tls::endpoint(a, t, t)
                    .map_err(|e| CaError::Tls(format!("CA address {e}")))?;
                Ok(Target {
                    address: a.clone(),
                    server_name,
                })
            })
            .collect::<Result<_, CaError>>()?;
        Ok(Self { targets })
    }

    /// The TLS server name (SNI) for `peer`: its configured host.
    pub(super) fn server_name(&self, peer: Peer) -> ServerName<'static> {
        self.target(peer).server_name.clone()
    }

    /// `peer` for messages: the configured address, and the resolved one
    /// if it differs.
    pub(super) fn describe(&self, peer: Peer) -> String {
        let address = &self.target(peer).address;
        let addr = peer.addr.to_string();
        if *address == addr {
            addr
        } else {
            format!("{address} ({addr})")
        }
    }

    /// Every address to try after `failed` (the ones in `tried` left out):
    /// each configured address resolved now, in order. Errors only when
    /// nothing resolved.
    pub(super) async fn after(
        &self,
        failed: Option<Peer>,
        tried: &[Peer],
    ) -> Result<Vec<Peer>, CaError> {
        let mut all = Vec::new();
        let mut errors = Vec::new();
        for (i, t) in self.targets.iter().enumerate() {
            match tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host(&t.address)).await {
                Ok(Ok(addrs)) => all.extend(addrs.map(|addr| Peer { addr, target: i })),
                Ok(Err(e)) => errors.push(format!("{}: {e}", t.address)),
                Err(_) => errors.push(format!(
                    "{}: no DNS answer within {RESOLVE_TIMEOUT:?}",
                    t.address
                )),
            }
        }
        if all.is_empty() {
            return Err(CaError::Unavailable(format!(
                "cannot resolve the CA address: {}",
                errors.join("; ")
            )));
        }
        Ok(order(all, failed, tried))
    }

    fn target(&self, peer: Peer) -> &Target {
        // A peer only ever comes from `after`, so its index is in range.
        &self.targets[peer.target.min(self.targets.len() - 1)]
    }
}

/// `all` starting after `failed` and wrapping around, without duplicates
/// and without anything in `tried`, at most [`MAX_PEERS`] minus what was
/// tried.
fn order(mut all: Vec<Peer>, failed: Option<Peer>, tried: &[Peer]) -> Vec<Peer> {
    let mut seen = std::collections::HashSet::new();
    all.retain(|p| seen.insert(p.addr));
    if let Some(pos) = failed.and_then(|f| all.iter().position(|p| p.addr == f.addr)) {
        all.rotate_left(pos + 1);
    }
    all.retain(|p| !tried.iter().any(|t| t.addr == p.addr));
    all.truncate(MAX_PEERS.saturating_sub(tried.len()));
    all
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn peer(port: u16, target: usize) -> Peer {
        Peer {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            target,
        }
    }

    #[test]
    fn the_next_address_after_the_failed_one_comes_first_and_none_twice() {
        let all = vec![peer(1, 0), peer(2, 1), peer(3, 1), peer(2, 2), peer(4, 2)];
        let got = order(all.clone(), Some(peer(2, 1)), &[peer(2, 1)]);
        assert_eq!(got, vec![peer(3, 1), peer(4, 2), peer(1, 0)]);
        assert_eq!(order(all.clone(), None, &[]).len(), 4, "duplicates dropped");
        let got = order(all, Some(peer(9, 0)), &[peer(1, 0)]);
        assert_eq!(
            got,
            vec![peer(2, 1), peer(3, 1), peer(4, 2)],
            "unknown: from the top"
        );
    }

    #[test]
    fn at_most_max_peers_per_call() {
        let all: Vec<Peer> = (1..=40).map(|p| peer(p, 0)).collect();
        let tried = [peer(40, 0)];
        let got = order(all, Some(peer(40, 0)), &tried);
        assert_eq!(got.len(), MAX_PEERS - 1);
        assert_eq!(got[0], peer(1, 0));
    }

    #[tokio::test]
    async fn names_resolve_and_bad_addresses_are_refused() {
        let peers = Peers::new(&["localhost:8443".into(), "127.0.0.2:9".into()]).unwrap();
        let got = peers.after(None, &[]).await.unwrap();
        assert!(
            got.iter()
                .any(|p| p.addr == "127.0.0.1:8443".parse().unwrap()),
            "{got:?}"
        );
        assert_eq!(got.last().unwrap().addr, "127.0.0.2:9".parse().unwrap());
        assert_eq!(peers.server_name(got[0]).to_str(), "localhost");
        assert_eq!(
            peers.describe(got[0]),
            format!("localhost:8443 ({})", got[0].addr)
        );
        assert!(Peers::new(&[]).is_err());
        assert!(Peers::new(&["no-port".into()]).is_err());
    }
}
