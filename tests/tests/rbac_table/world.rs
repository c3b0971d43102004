//! The CA the table runs against: tenants a and b, bindings for the
//! callers, one agent and one entry per tenant and of the platform, the
//! callers' SVIDs, and fresh objects for the cells that consume theirs.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use meshid_identity::{PrivateKey, TrustBundle, TrustDomain};
use meshid_proto::ca::admin_client::AdminClient;
use meshid_proto::ca::{self as pb, entry_result, svid_result};
use meshid_tests::node::csr;
use meshid_tests::{ClientSvid, TestCa, node_client};
use rustls::pki_types::CertificateDer;
use tonic::transport::Channel;

pub const TD: &str = "example.org";

/// Where a cell's resource lives: tenant a (the a-roles' own), tenant b
/// (another tenant), or the platform (no tenant).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Col {
    A,
    B,
    P,
}

impl Col {
    pub const ALL: [Col; 3] = [Col::A, Col::B, Col::P];
    pub const TENANTS: [Col; 2] = [Col::A, Col::B];

    /// The tenant's name; `""` for the platform.
    pub fn tenant(self) -> &'static str {
        match self {
            Self::A => "a",
            Self::B => "b",
            Self::P => "",
        }
    }

    /// Where its SPIFFE IDs live.
    pub fn prefix(self) -> String {
        match self {
            Self::A => format!("spiffe://{TD}/ns/a"),
            Self::B => format!("spiffe://{TD}/ns/b"),
            Self::P => format!("spiffe://{TD}/platform"),
        }
    }
}

/// The CA's config: tenants, the callers' bindings, an open socket.
fn config() -> String {
    let mut toml = String::from("[rbac]\nsocket_open = true\n");
    let bindings = [
        ("uid:2001", "viewer", "a"),
        ("uid:2002", "operator", "a"),
        ("uid:2003", "admin", "a"),
        ("uid:2004", "cluster-admin", ""),
        // Listed on b, to see who may list b's bindings.
        ("uid:2006", "viewer", "b"),
        ("spiffe://example.org/ns/a/viewer", "viewer", "a"),
        ("spiffe://example.org/ns/a/admin", "admin", "a"),
        ("spiffe://example.org/ops/root", "cluster-admin", ""),
    ];
    for (subject, role, tenant) in bindings {
        toml.push_str(&format!(
            "[[rbac.bindings]]\nsubject = {subject:?}\nrole = {role:?}\n"
        ));
        if !tenant.is_empty() {
            toml.push_str(&format!("tenant = {tenant:?}\n"));
        }
    }
    for col in Col::TENANTS {
        toml.push_str(&format!(
            "[[tenants]]\nname = {:?}\nspiffe_id_prefixes = [{:?}]\n",
            col.tenant(),
            col.prefix()
        ));
    }
    toml
}

/// An attested agent and its credentials.
pub struct Agent {
    pub id: String,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKey,
}

/// The running CA and what the cells use.
pub struct World {
    pub ca: TestCa,
    pub bundle: TrustBundle,
    /// A SPIFFE bundle JSON file of partner.org, readable by every uid.
    pub partner_bundle: PathBuf,
    /// An entry and an agent of each column that the cells only read.
    pub entry: BTreeMap<Col, String>,
    pub agent: BTreeMap<Col, Agent>,
    /// The mTLS callers' SVIDs by path (`ns/a/viewer`, …).
    pub svids: BTreeMap<&'static str, (Vec<CertificateDer<'static>>, PrivateKey)>,
    root: AdminClient<Channel>,
    next: AtomicU32,
    tmp: tempfile::TempDir,
}

impl World {
    /// Starts the CA (its config with `extra` TOML tables appended) and
    /// makes the fixed objects.
    pub async fn start(extra: &str) -> Self {
        let tmp = meshid_tests::tempdir();
        // Other uids reach the socket through this directory.
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let logs = tmp.path().join("logs");
        std::fs::create_dir_all(&logs).unwrap();
        let ca = TestCa::builder(tmp.path().join("ca"), &logs)
            .config(&(config() + extra))
            .start();
        let bundle =
            TrustBundle::from_pem(TrustDomain::new(TD).unwrap(), &ca.bundle_pem()).unwrap();
        let root = AdminClient::new(
            meshid_runtime::uds::channel(&ca.admin_socket)
                .await
                .unwrap(),
        );
        let partner_bundle = tmp.path().join("partner.json");
        std::fs::write(&partner_bundle, partner_json()).unwrap();
        std::fs::set_permissions(&partner_bundle, std::fs::Permissions::from_mode(0o644)).unwrap();
        let mut w = World {
            ca,
            bundle,
            partner_bundle,
            entry: BTreeMap::new(),
            agent: BTreeMap::new(),
            svids: BTreeMap::new(),
            root,
            next: AtomicU32::new(1),
            tmp,
        };
        for col in Col::ALL {
            let agent = w.attest(col).await;
            w.agent.insert(col, agent);
            let id = w.fresh_entry(col).await;
            w.entry.insert(col, id);
        }
        for (path, col, admin) in [
            ("ns/a/viewer", Col::A, false),
            ("ns/a/admin", Col::A, false),
            ("ns/b/tool", Col::B, true),
            ("ns/b/nobody", Col::B, false),
            ("ops/root", Col::P, false),
        ] {
            let svid = w.svid(path, col, admin).await;
            w.svids.insert(path, svid);
        }
        w
    }

    /// A directory every uid can read, removed with the world.
    pub fn dir(&self) -> &std::path::Path {
        self.tmp.path()
    }

    /// A number no other fresh object has.
    pub fn next(&self) -> u32 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    /// The root's admin client on the socket (uid 0: cluster-admin).
    pub fn root(&self) -> AdminClient<Channel> {
        self.root.clone()
    }

    /// A new entry of `col` under its agent.
    pub async fn fresh_entry(&self, col: Col) -> String {
        let n = self.next();
        let e = self
            .create_entry(
                pb::Entry {
                    spiffe_id: format!("{}/e{n}", col.prefix()),
                    ..Default::default()
                },
                col,
            )
            .await;
        e.id
    }

    /// Creates `entry` (SPIFFE ID set) under `col`'s agent, as root.
    async fn create_entry(&self, mut entry: pb::Entry, col: Col) -> pb::Entry {
        entry.parent_id = self.agent[&col].id.clone();
        entry.selectors = vec![pb::Selector {
            r#type: "unix".into(),
            value: format!("uid:{}", 50_000 + self.next()),
        }];
        let resp = self
            .root()
            .create_entries(pb::CreateEntriesRequest {
                entries: vec![entry],
            })
            .await
            .unwrap_or_else(|s| panic!("root could not create an entry: {s:?}"))
            .into_inner();
        match resp.results.into_iter().next().and_then(|r| r.result) {
            Some(entry_result::Result::Entry(e)) => e,
            other => panic!("root could not create an entry: {other:?}"),
        }
    }

    /// A new join token of `col`'s tenant, attested: the agent.
    pub async fn attest(&self, col: Col) -> Agent {
        let token = self
            .root()
            .create_join_token(pb::CreateJoinTokenRequest {
                ttl_seconds: 600,
                spiffe_id: String::new(),
                tenant: col.tenant().into(),
            })
            .await
            .unwrap_or_else(|s| panic!("root could not create a token: {s:?}"))
            .into_inner();
        let key = PrivateKey::generate_p256().unwrap();
        let svid = node_client(self.ca.node_addr(), &self.bundle, None)
            .await
            .attest(pb::AttestRequest {
                attestation_type: "join_token".into(),
                payload: token.token.into_bytes(),
                csr: csr(&key),
            })
            .await
            .unwrap_or_else(|s| panic!("attestation failed: {s:?}"))
            .into_inner()
            .svid
            .unwrap();
        Agent {
            id: svid.spiffe_id,
            chain: svid
                .cert_chain
                .into_iter()
                .map(CertificateDer::from)
                .collect(),
            key,
        }
    }

    /// A new tenant with a prefix of its own.
    pub async fn fresh_tenant(&self) -> String {
        let name = format!("t{}", self.next());
        self.root()
            .create_tenant(pb::CreateTenantRequest {
                tenant: Some(new_tenant(&name)),
            })
            .await
            .unwrap_or_else(|s| panic!("root could not create a tenant: {s:?}"));
        name
    }

    /// A new binding on `col` (viewer; cluster-admin on the platform) of a
    /// uid nobody uses.
    pub async fn fresh_binding(&self, col: Col) -> pb::RoleBinding {
        let b = new_binding(self.next(), col);
        self.root()
            .bind(pb::BindRequest {
                binding: Some(b.clone()),
            })
            .await
            .unwrap_or_else(|s| panic!("root could not bind: {s:?}"));
        b
    }

    /// An SVID for `spiffe://<td>/<path>`: an entry under `col`'s agent,
    /// signed through that agent.
    async fn svid(
        &self,
        path: &str,
        col: Col,
        admin: bool,
    ) -> (Vec<CertificateDer<'static>>, PrivateKey) {
        let entry = self
            .create_entry(
                pb::Entry {
                    spiffe_id: format!("spiffe://{TD}/{path}"),
                    admin,
                    ..Default::default()
                },
                col,
            )
            .await;
        let agent = &self.agent[&col];
        let creds = ClientSvid {
            chain: &agent.chain,
            key: &agent.key,
        };
        let key = PrivateKey::generate_p256().unwrap();
        let resp = node_client(self.ca.node_addr(), &self.bundle, Some(creds))
            .await
            .sign_x509_svids(pb::SignX509SvidsRequest {
                requests: vec![pb::SvidRequest {
                    entry_id: entry.id,
                    csr: csr(&key),
                    ttl_seconds: 0,
                }],
            })
            .await
            .unwrap_or_else(|s| panic!("signing {path}: {s:?}"))
            .into_inner();
        match resp.results.into_iter().next().and_then(|r| r.result) {
            Some(svid_result::Result::Svid(s)) => (
                s.cert_chain.into_iter().map(CertificateDer::from).collect(),
                key,
            ),
            other => panic!("signing {path}: {other:?}"),
        }
    }

    /// An admin client on the node port presenting the SVID of `path`.
    pub async fn mtls_client(&self, path: &str) -> AdminClient<Channel> {
        let (chain, key) = &self.svids[path];
        let creds = ClientSvid { chain, key };
        AdminClient::new(
            meshid_tests::node::ca_channel(self.ca.node_addr(), &self.bundle, Some(creds)).await,
        )
    }
}

/// A tenant `name` owning `spiffe://<td>/<name>`.
pub fn new_tenant(name: &str) -> pb::Tenant {
    pb::Tenant {
        name: name.into(),
        spiffe_id_prefixes: vec![format!("spiffe://{TD}/{name}")],
        ..Default::default()
    }
}

/// The binding of `uid:<30000 + n>`: viewer of `col`'s tenant, or
/// cluster-admin on the platform.
pub fn new_binding(n: u32, col: Col) -> pb::RoleBinding {
    let (role, tenant) = match col {
        Col::P => ("cluster-admin", ""),
        c => ("viewer", c.tenant()),
    };
    pb::RoleBinding {
        subject: format!("uid:{}", 30_000 + n),
        role: role.into(),
        tenant: tenant.into(),
        ..Default::default()
    }
}

/// A self-signed root of partner.org as a SPIFFE bundle document.
fn partner_json() -> String {
    let td = TrustDomain::new("partner.org").unwrap();
    let key = PrivateKey::generate_p256().unwrap().key_pair().unwrap();
    let now = std::time::SystemTime::now();
    let root = meshid_identity::x509::self_signed_ca(
        &meshid_identity::CaTemplate {
            trust_domain: td.clone(),
            common_name: "partner root".into(),
            not_before: now,
            not_after: now + std::time::Duration::from_secs(86400),
            path_len: None,
        },
        &key,
    )
    .unwrap();
    let mut b = TrustBundle::new(td);
    b.x509_authorities.push(root);
    b.to_spiffe_json()
}
