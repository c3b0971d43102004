//! `Traffic`: the mTLS data paths the rotation scenarios keep busy, every
//! hop a real process taking its identity from one [`Mesh`]'s agent:
//!
//! ```text
//! load ─▶ meshid outbound (pooled)      ─┐
//! load ─▶ meshid outbound (per request) ─┼─mTLS─▶ meshid inbound ─▶ backend
//! load ─▶ Envoy (pooled)                ─┤
//! load ─▶ Envoy (one request/connection)┘   (Envoy: SDS from the agent)
//! ```
//!
//! The pooled paths keep client and mTLS connections open across requests
//! (they see the trust bundle swapped under them); the others make a new
//! TLS handshake per request with the certificates served at that moment.
//! Every process runs as this uid and gets the mesh's first SVID.

use std::path::Path;
use std::time::Duration;

use meshid_identity::tls::TlsBackend;

use crate::http::{Seen, backend, http};
use crate::load::{Load, Report, Target};
use crate::proxy::{Listener, TestProxy};
use crate::{Child, Envoy, Mesh, TestAgent, eventually, free_port};

/// How long the proxies and Envoy may take to get their SVIDs and answer.
const READY: Duration = Duration::from_secs(60);
/// Handshakes allowed beyond one per per-request answer: the pooled paths'
/// connections (a few, re-made now and then when idle or at their limits).
const POOLED_SLACK: u64 = 20;

/// The running data paths.
#[derive(Debug)]
pub struct Traffic {
    /// What the backend received.
    pub seen: Seen,
    /// The meshid inbound proxy (mTLS → backend).
    pub inbound: TestProxy,
    /// The meshid outbound proxy (two listeners: pooled and per request).
    pub outbound: TestProxy,
    /// Envoy, unless `$ENVOY_BIN` is unset outside CI.
    pub envoy: Option<Child>,
    /// The inbound proxy's mTLS port.
    pub inbound_port: u16,
    /// Envoy's own mTLS listener (examples/envoy/envoy.yaml's inbound).
    pub envoy_inbound_port: Option<u16>,
    targets: Vec<Target>,
    /// TLS probes of the inbound proxy made by [`Traffic::served_chains`].
    probes: std::cell::Cell<u64>,
}

impl Traffic {
    /// Starts the backend, both meshid proxies and Envoy on `mesh`'s agent
    /// (its Workload API socket also serves SDS) and waits until every
    /// target answers. `test` names the test in the notice printed when
    /// Envoy is not installed.
    pub fn start(mesh: &Mesh, test: &str) -> Self {
        Self::start_with(mesh, test, "")
    }

    /// As [`start`](Self::start), with both meshid proxies on the TLS
    /// `backend` (Envoy is Envoy).
    pub fn start_on(mesh: &Mesh, test: &str, backend: TlsBackend) -> Self {
        Self::start_with(mesh, test, &crate::proxy::tls_backend(backend))
    }

    /// Starts everything; `extra` goes into both meshid proxies' configs.
    fn start_with(mesh: &Mesh, test: &str, extra: &str) -> Self {
        let (backend_port, seen) = backend();
        let dir = mesh.tmp.path();
        let socket = mesh.workload_socket();
        let inbound_port = free_port();
        let inbound = TestProxy::start_with(
            dir,
            &mesh.logs,
            "inbound",
            socket,
            &[Listener::Inbound {
                port: inbound_port,
                forward_to: backend_port,
            }],
            extra,
        );
        let (pooled, fresh) = (free_port(), free_port());
        let outbound = TestProxy::start_with(
            dir,
            &mesh.logs,
            "outbound",
            socket,
            &[(pooled, true), (fresh, false)].map(|(port, pool)| Listener::Outbound {
                port,
                upstream: inbound_port,
                server_id: mesh.spiffe_id.clone(),
                pool,
            }),
            extra,
        );
        let mut targets = vec![
            target("meshid-pooled", pooled, true),
            target("meshid-per-request", fresh, false),
        ];
        let mut envoy_inbound_port = None;
        let envoy = Envoy::from_env(test).map(|bin| {
            let (listen, ka, per_request) = (free_port(), free_port(), free_port());
            envoy_inbound_port = Some(listen);
            targets.push(target("envoy-pooled", ka, true));
            targets.push(target("envoy-per-request", per_request, false));
            start_envoy(
                &bin,
                mesh,
                backend_port,
                listen,
                (ka, per_request),
                inbound_port,
            )
        });
        let mut traffic = Self {
            seen,
            inbound,
            outbound,
            envoy,
            inbound_port,
            envoy_inbound_port,
            targets,
            probes: std::cell::Cell::new(0),
        };
        for t in traffic.targets.clone() {
            eventually(
                &format!("a first request through {}", t.name),
                READY,
                || {
                    traffic.assert_running();
                    (http(t.port, "GET", "/warm-up").0 == 200).then_some(())
                },
            );
        }
        traffic
    }

    /// Where [`Load`] should send requests.
    pub fn targets(&self) -> &[Target] {
        &self.targets
    }

    /// Panics with its log if a proxy or Envoy is no longer the process
    /// started (it exited: a restart would be a new process).
    pub fn assert_running(&mut self) {
        for (name, child) in [
            ("the inbound proxy", &mut self.inbound.child),
            ("the outbound proxy", &mut self.outbound.child),
        ]
        .into_iter()
        .chain(self.envoy.as_mut().map(|e| ("Envoy", e)))
        {
            assert!(child.is_running(), "{name} exited:\n{}", child.log());
        }
    }

    /// The certificate chains (leaf first) served now by the meshid
    /// inbound proxy and by Envoy, named.
    pub fn served_chains(&self) -> Vec<(&'static str, Vec<Vec<u8>>)> {
        self.probes.set(self.probes.get() + 1);
        let mut out = vec![(
            "meshid inbound",
            crate::certs::served_chain(self.inbound_port),
        )];
        if let Some(port) = self.envoy_inbound_port {
            out.push(("Envoy", crate::certs::served_chain(port)));
        }
        out
    }

    /// The leaf certificates served now, named; panics if one serves none.
    pub fn served_leaves(&self) -> Vec<(&'static str, Vec<u8>)> {
        self.served_chains()
            .into_iter()
            .map(|(who, mut chain)| {
                assert!(!chain.is_empty(), "{who} presented no certificate");
                (who, chain.swap_remove(0))
            })
            .collect()
    }

    /// Waits until every leaf served (meshid inbound, Envoy) carries an
    /// AuthorityKeyIdentifier in `key_ids`, checking that nothing exited;
    /// panics after `within`. `scratch` holds openssl's input file.
    pub fn wait_served_under(&mut self, key_ids: &[String], scratch: &Path, within: Duration) {
        crate::eventually_every(
            &format!("every served SVID signed by one of {key_ids:?}"),
            within,
            Duration::from_millis(500),
            || {
                self.assert_running();
                self.served_leaves()
                    .iter()
                    .all(|(_, leaf)| {
                        crate::certs::authority_key_id(leaf, scratch)
                            .is_some_and(|aki| key_ids.contains(&aki))
                    })
                    .then_some(())
            },
        );
    }

    /// Stops `load` and asserts what every rotation scenario must show: no
    /// request failed and each target had at least `min_ok` answered;
    /// every answered request reached the backend; the proxies, Envoy and
    /// `agent` are still the processes started (none exited, so none
    /// restarted); the pooled paths kept their mTLS connections (the
    /// inbound proxy completed about one handshake per per-request answer,
    /// not one per request). The counts are printed; the report is returned.
    pub fn finish(&mut self, load: Load, min_ok: u64, agent: &mut TestAgent) -> Report {
        let report = load.stop();
        report.assert_no_failures(min_ok);
        assert_eq!(
            self.backend_load_requests(),
            report.ok(),
            "every answered request went through to the backend"
        );
        let per_request: u64 = self
            .targets
            .iter()
            .filter(|t| !t.keep_alive)
            .filter_map(|t| report.tallies.iter().find(|r| r.target == t.name))
            .map(|r| r.ok)
            .sum();
        let handshakes = self
            .inbound
            .metric("meshid_proxy_tls_handshakes_total{direction=\"inbound\"}");
        let bound = per_request + POOLED_SLACK + self.probes.get() + self.targets.len() as u64;
        eprintln!("inbound mTLS handshakes: {handshakes} for {per_request} per-request answers");
        assert!(
            handshakes <= bound as f64,
            "{handshakes} inbound handshakes, more than the {per_request} per-request answers \
             allow: pooled connections were dropped and re-made"
        );
        self.assert_running();
        assert!(
            agent.child.is_running(),
            "the agent exited:\n{}",
            agent.child.log()
        );
        report
    }

    /// How many requests of the load reached the backend.
    pub fn backend_load_requests(&self) -> u64 {
        let seen = self.seen.lock().unwrap_or_else(|e| panic!("{e}"));
        let n = seen.iter().filter(|h| h.starts_with("GET /load/")).count();
        u64::try_from(n).unwrap_or(u64::MAX)
    }
}

fn target(name: &str, port: u16, keep_alive: bool) -> Target {
    Target {
        name: name.to_owned(),
        port,
        keep_alive,
    }
}

/// Envoy on examples/envoy/envoy.yaml (its inbound on `listen`) plus two
/// plain-HTTP listeners routed over mTLS to the meshid inbound: pooled and
/// one request per connection.
fn start_envoy(
    bin: &Envoy,
    mesh: &Mesh,
    backend_port: u16,
    listen: u16,
    (pooled, per_request): (u16, u16),
    inbound_port: u16,
) -> Child {
    use crate::envoy::{config_with, mtls_cluster, outbound_listener};
    let id = &mesh.spiffe_id;
    let listeners = outbound_listener("pooled", pooled, "meshid_pooled")
        + &outbound_listener("per_request", per_request, "meshid_per_request");
    let clusters = mtls_cluster("meshid_pooled", inbound_port, id, false)
        + &mtls_cluster("meshid_per_request", inbound_port, id, true);
    let text = config_with(
        &[
            ("SDS_SOCKET", mesh.workload_socket().display().to_string()),
            ("ADMIN_PORT", free_port().to_string()),
            ("LISTEN_PORT", listen.to_string()),
            ("BACKEND_PORT", backend_port.to_string()),
            ("TRUST_DOMAIN", mesh.ca.trust_domain().to_owned()),
        ],
        &listeners,
        &clusters,
    );
    let file = mesh.tmp.path().join("envoy.yaml");
    write(&file, &text);
    bin.spawn(&file, &mesh.logs)
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}
