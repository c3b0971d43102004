//! A meshid CA as the upstream: [`Meshid`] attests to another `meshid ca`
//! of the same trust domain like an agent (join token → agent SVID), asks
//! it to sign this CA's intermediate (`SignDownstreamCa`, authorised by a
//! registration entry marked `downstream`), and serves the upstream's
//! roots as the bundle: SVIDs chain leaf → this intermediate → the
//! upstream's chain, so every workload of the trust domain verifies them.
//!
//! The intermediate is minted, not read: [`Meshid::mint`] (async, over the
//! network) makes a new CA key through the [`KeyManager`], a CSR
//! ([`IntermediateCsr`]) and has it signed; [`UpstreamAuthority::obtain`]
//! then hands out the last minted material. [`renew`] mints a new one at
//! half its life and swaps it in without a restart. Each mint hands the
//! upstream this CA's JWT key, which the upstream publishes in its bundle
//! until the new intermediate expires: JWT-SVIDs verify both ways.
//!
//! The agent SVID (`<data_dir>/upstream-agent.key.pem`, mode 0600, and
//! `upstream-agent.crt.pem`) survives restarts and is renewed
//! at half its life, so a join token is needed only on first start, or
//! after the CA was down longer than the agent SVID's lifetime.

mod client;
pub mod renew;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use meshid_identity::tls::TlsBackend;
use meshid_identity::x509::{pem_certs, to_pem};
use meshid_identity::{
    BundleSet, JwtAuthority, PrivateKey, TrustBundle, TrustDomain, verify_x509_svid,
};
use rustls_pki_types::CertificateDer;

use self::client::{AgentSvid, UpstreamClient, bundle_of};
use super::{CaMaterial, UpstreamAuthority, UpstreamError};
use crate::authority::{JWT_KEY_SLOT, key_id};
use crate::config::{ConfigError, MeshidUpstreamConfig};
use crate::csr::IntermediateCsr;
use crate::keymanager::KeyManager;
use crate::upstream::CA_KEY_SLOT;
use meshid_runtime::fs::write_atomic;

/// The agent SVID key's file in the data directory (PKCS#8 PEM, 0600).
pub const AGENT_KEY_FILE: &str = "upstream-agent.key.pem";
/// The agent SVID chain's file in the data directory.
pub const AGENT_CERT_FILE: &str = "upstream-agent.crt.pem";

/// Why the intermediate could not be obtained from the upstream CA.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum MeshidError {
    /// A setting is unusable.
    #[error("[upstream.meshid]: {0}")]
    Config(String),
    /// The upstream could not be reached or failed transiently (renewal
    /// retries with backoff; at start-up the CA does not start).
    #[error(
        "the upstream meshid CA is unavailable: {0}; check upstream.meshid.ca_address and that \
         the upstream CA is running"
    )]
    Unavailable(String),
    /// The upstream refused.
    #[error("the upstream meshid CA refused {doing}: {message}")]
    Refused {
        /// What was asked.
        doing: &'static str,
        /// The upstream's message (says what to do).
        message: String,
    },
    /// No valid agent SVID and no join token.
    #[error(
        "this CA has no valid agent SVID for its upstream and no join token: create one on the \
         upstream CA (`meshid token generate`) and set upstream.meshid.join_token_file (or \
         join_token, or MESHID_JOIN_TOKEN)"
    )]
    NoToken,
    /// The upstream's answer does not make sense.
    #[error("the upstream meshid CA sent a malformed response: {0}")]
    BadResponse(String),
}

impl MeshidError {
    fn from_status(doing: &'static str, s: tonic::Status) -> Self {
        let message = s.message().to_owned();
        match s.code() {
            code if meshid_runtime::backoff::retryable(code) => {
                Self::Unavailable(format!("{doing}: {code:?}: {message}"))
            }
            _ => Self::Refused { doing, message },
        }
    }

    /// True when a later attempt may succeed without anyone acting.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

/// The upstream meshid CA (`[upstream.meshid]`).
#[derive(Debug)]
pub struct Meshid {
    config: MeshidUpstreamConfig,
    trust_domain: TrustDomain,
    client: UpstreamClient,
    /// The roots that authenticate the upstream: `trust_bundle_file`, then
    /// the bundle it last sent.
    roots: Mutex<TrustBundle>,
    agent_key_path: PathBuf,
    agent_cert_path: PathBuf,
    /// The last intermediate minted, and when.
    minted: Mutex<Option<(CaMaterial, SystemTime)>>,
}

// === impl Meshid ===

impl Meshid {
    /// The upstream of `config` for `trust_domain`; the agent SVID is kept
    /// in `data_dir`. Reads `trust_bundle_file`; contacts nothing.
    pub fn new(
        config: &MeshidUpstreamConfig,
        trust_domain: &TrustDomain,
        data_dir: &Path,
    ) -> Result<Self, UpstreamError> {
        let cfg_err = |e: ConfigError| MeshidError::Config(e.to_string());
        let ca_id = config.ca_spiffe_id(trust_domain).map_err(cfg_err)?;
        let path = &config.trust_bundle_file;
        let text = meshid_runtime::fs::read_to_string(path, meshid_runtime::fs::MAX_SMALL_FILE)
            .map_err(|e| super::disk::file_error(path, e))?;
        let roots = TrustBundle::from_pem(trust_domain.clone(), &text).map_err(|e| {
            UpstreamError::Invalid {
                path: path.display().to_string(),
                reason: format!("{e}; give the upstream CA's roots as PEM"),
            }
        })?;
        Ok(Self {
            client: UpstreamClient::new(&config.ca_address, ca_id)?,
            config: config.clone(),
            trust_domain: trust_domain.clone(),
            roots: Mutex::new(roots),
            agent_key_path: data_dir.join(AGENT_KEY_FILE),
            agent_cert_path: data_dir.join(AGENT_CERT_FILE),
            minted: Mutex::new(None),
        })
    }

    /// Speaks TLS to the upstream with `backend` (rustls unless told
    /// otherwise).
    pub fn with_backend(mut self, backend: TlsBackend) -> Self {
        self.client = self.client.with_backend(backend);
        self
    }

    fn roots(&self) -> TrustBundle {
        self.roots.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Gets a new intermediate signed by the upstream: a new CA key in the
    /// key manager's CA slot, a CSR for it, `SignDownstreamCa` (which also
    /// hands the upstream this CA's JWT key, from the key manager's JWT
    /// slot, to publish until the new intermediate expires). The result
    /// is what [`UpstreamAuthority::obtain`] returns from now on.
    pub async fn mint(
        &self,
        keys: &dyn KeyManager,
        now: SystemTime,
    ) -> Result<CaMaterial, UpstreamError> {
        let agent = self.agent_svid(now).await?;
        let key = keys.generate_signer(CA_KEY_SLOT)?;
        let csr = IntermediateCsr::new(self.trust_domain.clone())
            .sign(&key)
            .map_err(|e| MeshidError::Config(format!("the intermediate's CSR: {e}")))?;
        let jwt = keys.load_or_generate(JWT_KEY_SLOT)?.public_key_der();
        let jwt = JwtAuthority {
            key_id: key_id(&jwt),
            public_key_der: jwt,
            expires_at: None,
        };
        let resp = self
            .client
            .sign_ca(&self.roots(), &agent, csr.der, &jwt)
            .await?;
        let bundle = resp
            .bundle
            .as_ref()
            .ok_or_else(|| MeshidError::BadResponse("no bundle".into()))
            .and_then(|b| bundle_of(&self.trust_domain, b))?;
        let mut chain = resp.ca_cert_chain.into_iter().map(CertificateDer::from);
        let signing_cert = chain
            .next()
            .ok_or_else(|| MeshidError::BadResponse("no certificate".into()))?;
        let spki = super::cert_facts(&signing_cert).map(|(spki, _, is_ca)| (spki, is_ca));
        if spki != Some((key.public_key_der(), true)) {
            return Err(MeshidError::BadResponse(
                "the signed certificate is not a CA certificate for this CA's key".into(),
            )
            .into());
        }
        let material = CaMaterial {
            signing_cert,
            intermediates: chain.collect(),
            roots: bundle.x509_authorities.clone(),
            key,
            key_ref: keys.key_ref(CA_KEY_SLOT),
        };
        *self.roots.lock().unwrap_or_else(|p| p.into_inner()) = bundle;
        *self.minted.lock().unwrap_or_else(|p| p.into_inner()) = Some((material.clone(), now));
        tracing::info!(
            upstream = %self.config.ca_address,
            "the upstream meshid CA signed a new intermediate"
        );
        Ok(material)
    }

    /// The upstream's JWT keys, from the bundle it last sent.
    pub fn jwt_authorities(&self) -> Vec<JwtAuthority> {
        self.roots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .jwt_authorities
            .clone()
    }

    /// When the last minted intermediate is due for renewal: half way
    /// from when it was minted to its notAfter (not from its notBefore,
    /// which the upstream backdates).
    pub fn renew_at(&self) -> Option<SystemTime> {
        let minted = self.minted.lock().unwrap_or_else(|p| p.into_inner());
        let (material, at) = minted.as_ref()?;
        let (_, not_after, _) = validity(&material.signing_cert)?;
        Some(*at + not_after.duration_since(*at).unwrap_or_default() / 2)
    }

    /// The stored agent SVID, renewed when past half its life; or a new
    /// one from the join token when there is none (or it expired).
    async fn agent_svid(&self, now: SystemTime) -> Result<AgentSvid, UpstreamError> {
        if let Some((svid, renew_at, not_after)) = self.stored_agent_svid(now) {
            if now < renew_at {
                return Ok(svid);
            }
            let key = new_key()?;
            match self.client.renew_agent(&self.roots(), &svid, &key).await {
                Ok(chain) => return self.keep_agent_svid(chain, key, now),
                Err(e) if now < not_after => {
                    // Still valid: keep using it; the next mint retries.
                    tracing::warn!(error = %e, "cannot renew the agent SVID for the upstream CA");
                    return Ok(svid);
                }
                Err(e) => return Err(e.into()),
            }
        }
        let config_err = |e: ConfigError| MeshidError::Config(e.to_string());
        let token = self.config.join_token().map_err(config_err)?;
        let token = token.ok_or(MeshidError::NoToken)?;
        let key = new_key()?;
        let (chain, bundle) = self
            .client
            .attest(&self.roots(), token.expose(), &key)
            .await?;
        *self.roots.lock().unwrap_or_else(|p| p.into_inner()) =
            bundle_of(&self.trust_domain, &bundle)?;
        tracing::info!(upstream = %self.config.ca_address, "attested to the upstream meshid CA");
        self.keep_agent_svid(chain, key, now)
    }

    /// Verifies a new agent SVID and writes it (key first, then chain).
    fn keep_agent_svid(
        &self,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKey,
        now: SystemTime,
    ) -> Result<AgentSvid, UpstreamError> {
        let bundles: BundleSet = [self.roots()].into_iter().collect();
        verify_x509_svid(&chain, &bundles, now)
            .map_err(|e| MeshidError::BadResponse(format!("agent SVID does not verify: {e}")))?;
        for (path, bytes, mode) in [
            (
                &self.agent_key_path,
                key.to_pkcs8_pem().as_bytes().to_vec(),
                0o600,
            ),
            (&self.agent_cert_path, to_pem(&chain).into_bytes(), 0o644),
        ] {
            write_atomic(path, &bytes, mode).map_err(|source| UpstreamError::Io {
                path: path.display().to_string(),
                source,
            })?;
        }
        Ok(AgentSvid { chain, key })
    }

    /// The stored agent SVID if it matches its key and is unexpired, with
    /// its renewal time (half its life) and notAfter. Anything unreadable
    /// counts as none (a join token then attests again).
    fn stored_agent_svid(&self, now: SystemTime) -> Option<(AgentSvid, SystemTime, SystemTime)> {
        let key = meshid_runtime::fs::read_to_string(
            &self.agent_key_path,
            meshid_runtime::fs::MAX_SMALL_FILE,
        )
        .ok()?;
        let key = PrivateKey::from_pem(&key).ok()?;
        let chain = pem_certs(
            &meshid_runtime::fs::read_to_string(
                &self.agent_cert_path,
                meshid_runtime::fs::MAX_SMALL_FILE,
            )
            .ok()?,
        )
        .ok()?;
        let (not_before, not_after, spki) = validity(chain.first()?)?;
        if spki != key.public_key_der() || not_after <= now {
            return None;
        }
        let half = not_after.duration_since(not_before).unwrap_or_default() / 2;
        Some((AgentSvid { chain, key }, not_before + half, not_after))
    }
}

fn new_key() -> Result<PrivateKey, MeshidError> {
    PrivateKey::generate_p256().map_err(|e| MeshidError::Config(format!("agent key: {e}")))
}

impl UpstreamAuthority for Meshid {
    fn kind(&self) -> &'static str {
        "meshid"
    }

    fn obtain(
        &self,
        _td: &TrustDomain,
        _keys: &dyn KeyManager,
        _now: SystemTime,
    ) -> Result<CaMaterial, UpstreamError> {
        self.minted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|(m, _)| m.clone())
            .ok_or_else(|| {
                MeshidError::Config("no intermediate minted yet: call Meshid::mint first".into())
                    .into()
            })
    }
}

/// notBefore, notAfter and SubjectPublicKeyInfo of a certificate.
pub(crate) fn validity(der: &[u8]) -> Option<(SystemTime, SystemTime, Vec<u8>)> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let at = |t: i64| {
        u64::try_from(t)
            .ok()
            .map(|s| SystemTime::UNIX_EPOCH + Duration::from_secs(s))
    };
    let v = cert.validity();
    Some((
        at(v.not_before.timestamp())?,
        at(v.not_after.timestamp())?,
        cert.tbs_certificate.subject_pki.raw.to_vec(),
    ))
}
