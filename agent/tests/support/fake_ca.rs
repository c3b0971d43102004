//! An in-memory CA node API that really signs, for agent tests. It can
//! rotate its root (the new root joins the bundle and signs from then on)
//! and publish its key state (`SyncResponse.ca_keys`) like a rotating CA.
#![allow(clippy::unwrap_used)]
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use meshid_agent::node_client::{AgentCredentials, CaClient, CaError};
use meshid_identity::x509::{CaTemplate, SvidTemplate, self_signed_ca, sign_svid};
use meshid_identity::{BundleSet, PrivateKey, TrustDomain, verify_csr};
use meshid_proto::ca::*;
use meshid_runtime::clock::SharedClock;
use rustls_pki_types::CertificateDer;

pub const TD: &str = "example.org";

#[derive(Debug, Default)]
pub struct FakeState {
    pub entries: Vec<Entry>,
    pub down: bool,
    pub agent_known: bool,
    pub banned: bool,
    pub tokens: BTreeSet<String>,
    /// Projected tokens the CA accepts, each once (like the replay check).
    pub psat_tokens: BTreeSet<String>,
    /// Every k8s_psat payload received, as JSON.
    pub psat_payloads: Vec<serde_json::Value>,
    pub svid_ttl: Duration,
    pub agent_ttl: Duration,
    pub jwt_ttl: Duration,
    pub page_size: usize,
    /// Size of every SignX509Svids call.
    pub batches: Vec<usize>,
    /// Tokio time of every Sync call (first page only).
    pub sync_attempts: Vec<tokio::time::Instant>,
    pub attests: usize,
    pub renewals: usize,
    pub jwt_mints: usize,
    pub creds: Option<AgentCredentials>,
    /// Sent as `SyncResponse.ca_keys` (None: a CA that predates rotation).
    pub ca_keys: Option<CaKeys>,
}

/// The roots: the one signing now and every one in the bundle.
#[derive(Debug)]
struct Roots {
    key: PrivateKey,
    signing: CertificateDer<'static>,
    published: Vec<CertificateDer<'static>>,
    sequence: i64,
}

#[derive(Debug)]
pub struct FakeCa {
    pub td: TrustDomain,
    roots: Mutex<Roots>,
    clock: SharedClock,
    pub state: Mutex<FakeState>,
}

impl FakeCa {
    pub fn new(clock: SharedClock) -> Arc<Self> {
        let td = TrustDomain::new(TD).unwrap();
        let (key, root) = new_root(&td, clock.now());
        Arc::new(Self {
            td,
            roots: Mutex::new(Roots {
                key,
                signing: root.clone(),
                published: vec![root],
                sequence: 1,
            }),
            clock,
            state: Mutex::new(FakeState {
                svid_ttl: Duration::from_secs(1000),
                agent_ttl: Duration::from_secs(3600),
                jwt_ttl: Duration::from_secs(300),
                page_size: 2,
                ..Default::default()
            }),
        })
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, FakeState> {
        self.state.lock().unwrap()
    }

    pub fn add_entry(&self, id: &str, path: &str, uid: u32) {
        self.lock().entries.push(Entry {
            id: id.into(),
            spiffe_id: format!("spiffe://{TD}{path}"),
            selectors: vec![Selector {
                r#type: "unix".into(),
                value: format!("uid:{uid}"),
            }],
            revision: 1,
            ..Default::default()
        });
    }

    pub fn bundle(&self) -> Bundle {
        let roots = self.roots.lock().unwrap();
        Bundle {
            trust_domain: TD.into(),
            x509_authorities: roots.published.iter().map(|c| c.to_vec()).collect(),
            sequence: roots.sequence,
            ..Default::default()
        }
    }

    /// The bundle as the agent holds it (every published root).
    pub fn trust_bundle(&self) -> meshid_identity::TrustBundle {
        let mut b = meshid_identity::TrustBundle::new(self.td.clone());
        b.x509_authorities = self.roots.lock().unwrap().published.clone();
        b
    }

    /// The root signing now.
    pub fn root(&self) -> CertificateDer<'static> {
        self.roots.lock().unwrap().signing.clone()
    }

    /// The key ID (AKI keyIdentifier) of the leaves the current root signs.
    pub fn key_id(&self) -> Vec<u8> {
        let (chain, _) = self.issue("spiffe://example.org/probe");
        meshid_identity::x509::authority_key_id(&chain[0]).unwrap()
    }

    /// A new root joins the bundle (sequence + 1) and signs from now on;
    /// the old one stays in the bundle. Returns the old key ID.
    pub fn rotate(&self) -> Vec<u8> {
        let old = self.key_id();
        let (key, root) = new_root(&self.td, self.clock.now());
        let mut roots = self.roots.lock().unwrap();
        roots.key = key;
        roots.signing = root.clone();
        roots.published.push(root);
        roots.sequence += 1;
        old
    }

    /// Publishes `active` and `tainted` as the CA's key state.
    pub fn set_keys(&self, active: &[&[u8]], tainted: &[&[u8]], spread_seconds: u32) {
        self.lock().ca_keys = Some(CaKeys {
            active: active.iter().map(|k| k.to_vec()).collect(),
            tainted: tainted.iter().map(|k| k.to_vec()).collect(),
            reissue_spread_seconds: spread_seconds,
        });
    }

    fn sign(
        &self,
        csr: &[u8],
        path: &str,
        ttl: Duration,
        entry_id: &str,
    ) -> Result<X509Svid, String> {
        let csr = verify_csr(csr).map_err(|e| e.to_string())?;
        let now = self.clock.now();
        let spiffe_id = meshid_identity::SpiffeId::parse(path).map_err(|e| e.to_string())?;
        let cert = self.sign_key(&spiffe_id, &csr.public_key_der, now, now + ttl)?;
        Ok(X509Svid {
            spiffe_id: spiffe_id.as_str().into(),
            cert_chain: vec![cert.to_vec()],
            expires_at: (now + ttl)
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_secs() as i64,
            entry_id: entry_id.into(),
        })
    }

    fn check_agent(&self) -> Result<(), CaError> {
        let st = self.lock();
        if st.down {
            return Err(tonic::Status::unavailable("connection refused").into());
        }
        if st.banned {
            return Err(tonic::Status::permission_denied("agent is banned").into());
        }
        if !st.agent_known {
            return Err(tonic::Status::unauthenticated("unknown agent").into());
        }
        if st.creds.is_none() {
            return Err(CaError::NoCredentials);
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl CaClient for FakeCa {
    async fn attest(&self, req: AttestRequest) -> Result<AttestResponse, CaError> {
        let token = String::from_utf8(req.payload).unwrap();
        {
            let mut st = self.lock();
            if st.down {
                return Err(tonic::Status::unavailable("down").into());
            }
            if st.banned {
                return Err(tonic::Status::permission_denied("agent is banned").into());
            }
            if req.attestation_type == "k8s_psat" {
                let v: serde_json::Value = serde_json::from_str(&token).unwrap();
                st.psat_payloads.push(v.clone());
                let t = v["token"].as_str().unwrap().to_owned();
                if !st.psat_tokens.remove(&t) {
                    return Err(
                        tonic::Status::unauthenticated("token was already used to attest").into(),
                    );
                }
            } else if req.attestation_type != "join_token" || !st.tokens.contains(&token) {
                return Err(tonic::Status::unauthenticated("join token refused").into());
            }
            st.attests += 1;
            st.agent_known = true;
        }
        let ttl = self.lock().agent_ttl;
        let path = match req.attestation_type.as_str() {
            "k8s_psat" => "k8s_psat/prod/node-uid-1".to_owned(),
            _ => format!("join_token/{token}"),
        };
        let svid = self
            .sign(&req.csr, &format!("spiffe://{TD}/agent/{path}"), ttl, "")
            .map_err(CaError::BadResponse)?;
        Ok(AttestResponse {
            svid: Some(svid),
            bundle: Some(self.bundle()),
        })
    }

    async fn renew_agent(&self, req: RenewAgentRequest) -> Result<RenewAgentResponse, CaError> {
        self.check_agent()?;
        self.lock().renewals += 1;
        let ttl = self.lock().agent_ttl;
        let svid = self
            .sign(&req.csr, &format!("spiffe://{TD}/agent/renewed"), ttl, "")
            .map_err(CaError::BadResponse)?;
        Ok(RenewAgentResponse { svid: Some(svid) })
    }

    async fn sync(&self, req: SyncRequest) -> Result<SyncResponse, CaError> {
        if req.page_token.is_empty() {
            self.lock().sync_attempts.push(tokio::time::Instant::now());
        }
        self.check_agent()?;
        let st = self.lock();
        let start: usize = if req.page_token.is_empty() {
            0
        } else {
            req.page_token.parse().unwrap()
        };
        let end = (start + st.page_size).min(st.entries.len());
        let next = if end < st.entries.len() {
            end.to_string()
        } else {
            String::new()
        };
        Ok(SyncResponse {
            entries: st.entries[start..end].to_vec(),
            next_page_token: next,
            bundle: Some(self.bundle()),
            federated_bundles: vec![],
            ca_keys: st.ca_keys.clone(),
        })
    }

    async fn sign_x509_svids(
        &self,
        req: SignX509SvidsRequest,
    ) -> Result<SignX509SvidsResponse, CaError> {
        self.check_agent()?;
        let (entries, ttl) = {
            let mut st = self.lock();
            st.batches.push(req.requests.len());
            (st.entries.clone(), st.svid_ttl)
        };
        let results = req
            .requests
            .iter()
            .map(|r| {
                let result = match entries.iter().find(|e| e.id == r.entry_id) {
                    None => svid_result::Result::Error(ItemError {
                        code: 5,
                        message: "no such entry".into(),
                    }),
                    Some(e) => match self.sign(&r.csr, &e.spiffe_id, ttl, &e.id) {
                        Ok(s) => svid_result::Result::Svid(s),
                        Err(m) => svid_result::Result::Error(ItemError {
                            code: 3,
                            message: m,
                        }),
                    },
                };
                SvidResult {
                    result: Some(result),
                }
            })
            .collect();
        Ok(SignX509SvidsResponse { results })
    }

    async fn mint_jwt_svids(
        &self,
        req: MintJwtSvidsRequest,
    ) -> Result<MintJwtSvidsResponse, CaError> {
        self.check_agent()?;
        let mut st = self.lock();
        let now = self.clock.now();
        let exp = (now + st.jwt_ttl)
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let mut results = Vec::new();
        for r in req.requests {
            st.jwt_mints += 1;
            let e = st.entries.iter().find(|e| e.id == r.entry_id).cloned();
            let result = match e {
                Some(e) => jwt_svid_result::Result::Svid(JwtSvid {
                    spiffe_id: e.spiffe_id,
                    token: format!("jwt-{}-{}", r.entry_id, st.jwt_mints),
                    expires_at: exp,
                }),
                None => jwt_svid_result::Result::Error(ItemError {
                    code: 5,
                    message: "no such entry".into(),
                }),
            };
            results.push(JwtSvidResult {
                result: Some(result),
            });
        }
        Ok(MintJwtSvidsResponse { results })
    }

    fn set_credentials(&self, creds: Option<AgentCredentials>) {
        self.lock().creds = creds;
    }

    fn set_bundles(&self, _bundles: Arc<BundleSet>) {}
}

impl FakeCa {
    /// A fresh key and an X.509-SVID for `spiffe_id` signed by this CA's
    /// root (e.g. to serve TLS as the CA, or as an impostor).
    pub fn issue(&self, spiffe_id: &str) -> (Vec<CertificateDer<'static>>, PrivateKey) {
        let key = PrivateKey::generate_p256().unwrap();
        let now = self.clock.now();
        let id = meshid_identity::SpiffeId::parse(spiffe_id).unwrap();
        let cert = self
            .sign_key(
                &id,
                &key.public_key_der(),
                now,
                now + Duration::from_secs(3600),
            )
            .unwrap();
        (vec![cert], key)
    }

    /// A leaf for `spiffe_id` and `spki` signed by the current root.
    fn sign_key(
        &self,
        spiffe_id: &meshid_identity::SpiffeId,
        spki: &[u8],
        not_before: SystemTime,
        not_after: SystemTime,
    ) -> Result<CertificateDer<'static>, String> {
        let roots = self.roots.lock().unwrap();
        sign_svid(
            &SvidTemplate {
                spiffe_id: spiffe_id.clone(),
                dns_names: vec![],
                not_before,
                not_after,
            },
            spki,
            &roots.signing,
            &roots.key.key_pair().unwrap(),
        )
        .map_err(|e| e.to_string())
    }

    /// Marks the agent as attested without going through `attest`.
    pub fn pretend_attested(&self) {
        let mut st = self.lock();
        st.agent_known = true;
        st.creds = Some(AgentCredentials {
            chain: vec![],
            key: PrivateKey::generate_p256().unwrap(),
        });
    }
}

/// The first page of a sync.
pub fn first_page() -> SyncRequest {
    SyncRequest {
        page_token: String::new(),
        page_size: 0,
    }
}

/// A fresh key and a self-signed root of `td`, valid a year from `now`.
fn new_root(td: &TrustDomain, now: SystemTime) -> (PrivateKey, CertificateDer<'static>) {
    let key = PrivateKey::generate_p256().unwrap();
    let root = self_signed_ca(
        &CaTemplate {
            trust_domain: td.clone(),
            common_name: "fake root".into(),
            not_before: now,
            not_after: now + Duration::from_secs(365 * 86400),
            path_len: None,
        },
        &key.key_pair().unwrap(),
    )
    .unwrap();
    (key, root)
}

/// A fixed, certificate-friendly start time (2027-01-15).
pub fn t0() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

/// The maintain loop's signals with no trust updates (their sender is gone).
pub fn signals(
    kick: Arc<tokio::sync::Notify>,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> meshid_agent::attest::MaintainSignals {
    let (_, trust) = tokio::sync::watch::channel(None);
    meshid_agent::attest::MaintainSignals {
        kick,
        trust,
        shutdown,
    }
}
