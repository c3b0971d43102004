//! The signing authority: holds the CA key and chain, applies the issuance
//! policy and signs X.509-SVIDs and JWT-SVIDs.
//!
//! Policy: the SPIFFE ID and DNS names always come from the registration
//! entry (the caller passes them), never from a CSR; the CSR only supplies
//! the public key. Lifetimes follow [`ttl::svid_lifetime`].

mod current;
mod downstream;
mod probe;
mod published;
pub mod ttl;

pub use current::{CandidateError, CurrentAuthority, SigningKeys};
pub use downstream::{DEFAULT_DOWNSTREAM_CN, IssuedDownstreamCa};
pub use probe::IssuanceError;
pub use published::{MAX_PUBLISHED_KEYS, PublishKeyError};

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use meshid_identity::jwt::{self, JwtError, JwtSigner, JwtSigningKey};
use meshid_identity::x509::sign_svid;
use meshid_identity::{SpiffeId, SvidTemplate, TrustBundle, TrustDomain, X509Error};
use rustls_pki_types::CertificateDer;
use sha2::Digest;

use crate::keymanager::{CaKey, CaSignError, KeyManager, OpensslJwtKey, Pkcs11Error, Signing};
use crate::upstream::{CaMaterial, UpstreamAuthority, UpstreamError};

/// The key manager slot of the JWT-SVID signing key.
pub const JWT_KEY_SLOT: &str = "jwt";

/// Issuance limits.
#[derive(Debug, Clone)]
pub struct AuthorityConfig {
    /// The trust domain the CA issues for.
    pub trust_domain: TrustDomain,
    /// X.509-SVID lifetime when neither request nor entry sets one.
    pub default_x509_ttl: Duration,
    /// Longest X.509-SVID lifetime.
    pub max_x509_ttl: Duration,
    /// JWT-SVID lifetime when neither request nor entry sets one.
    pub default_jwt_ttl: Duration,
    /// Longest JWT-SVID lifetime.
    pub max_jwt_ttl: Duration,
    /// Lifetime of agent SVIDs.
    pub agent_ttl: Duration,
    /// Which library signs JWT-SVIDs (the X.509 key's is its key
    /// manager's choice).
    pub signing: Signing,
}

impl AuthorityConfig {
    /// Defaults: 1 h X.509-SVIDs (max 1 h), 5 min JWT-SVIDs (max 1 h), 1 h agents.
    pub fn new(trust_domain: TrustDomain) -> Self {
        Self {
            trust_domain,
            default_x509_ttl: Duration::from_secs(3600),
            max_x509_ttl: Duration::from_secs(3600),
            default_jwt_ttl: Duration::from_secs(300),
            max_jwt_ttl: Duration::from_secs(3600),
            agent_ttl: Duration::from_secs(3600),
            signing: Signing::Ring,
        }
    }
}

/// An authority failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthorityError {
    /// The signing material could not be obtained.
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    /// The JWT key could not be loaded or used.
    #[error("JWT-SVID signing key: {0}")]
    Jwt(#[from] JwtError),
    /// Key manager failure.
    #[error(transparent)]
    Keys(#[from] crate::keymanager::KeyManagerError),
    /// Certificate signing failed.
    #[error("signing failed: {0}")]
    Sign(#[from] X509Error),
    /// The signing certificate has no time left.
    #[error(
        "the CA certificate has expired; renew the upstream CA or restart to create a new root"
    )]
    CaExpired,
    /// The signing certificate does not belong to the trust domain.
    #[error("the CA certificate is unusable: {0}")]
    BadCa(String),
    /// A pathLenConstraint in this CA's chain forbids issuing a CA below it.
    #[error("cannot sign a downstream CA: {0}")]
    DownstreamForbidden(String),
    /// The signing key's token could not sign now; a later call may.
    #[error("the CA signing key on the {backend} token is unavailable: {source}")]
    KeyUnavailable {
        /// `pkcs11`.
        backend: &'static str,
        /// What the token said.
        #[source]
        source: Pkcs11Error,
    },
}

impl From<CaSignError> for AuthorityError {
    fn from(e: CaSignError) -> Self {
        match e {
            CaSignError::Unavailable { backend, source } => {
                Self::KeyUnavailable { backend, source }
            }
            CaSignError::Certificate(e) => Self::Sign(e),
        }
    }
}

/// What to put into one X.509-SVID.
#[derive(Debug, Clone)]
pub struct X509SvidSpec<'a> {
    /// The SPIFFE ID (from the entry).
    pub spiffe_id: &'a SpiffeId,
    /// DNS SANs (from the entry).
    pub dns_names: &'a [String],
    /// The subject's public key (SubjectPublicKeyInfo DER, from a verified CSR).
    pub public_key_der: &'a [u8],
    /// Requested lifetime (zero = no preference).
    pub requested_ttl: Duration,
    /// The entry's lifetime (zero = CA default).
    pub entry_ttl: Duration,
}

/// A signed X.509-SVID.
#[derive(Debug, Clone)]
pub struct IssuedX509Svid {
    /// Leaf first, then the CA chain up to (not including) the root.
    pub chain: Vec<CertificateDer<'static>>,
    /// The leaf's serial, lowercase hex.
    pub serial: String,
    /// The leaf's notAfter.
    pub not_after: SystemTime,
    /// The signing key's ID in the key journal
    /// ([`Authority::x509_key_id`]), for the issuance record.
    pub ca_key_id: String,
}

/// The CA's signing identity.
pub struct Authority {
    config: AuthorityConfig,
    kind: &'static str,
    material: CaMaterial,
    /// The CA signing key (in memory or on a token).
    key_pair: CaKey,
    ca_not_after: SystemTime,
    chain_after_leaf: Vec<CertificateDer<'static>>,
    jwt_key: Arc<dyn JwtSigner>,
    bundle: TrustBundle,
    /// The public key of [`Authority::check_issuance`]'s probe SVIDs (its
    /// private half is dropped at once: a probe is never used).
    probe_spki: Vec<u8>,
    /// Hex keyIdentifier of the AuthorityKeyIdentifier of the leaves it signs.
    x509_key_id: String,
    /// The JWT key's `kid`.
    jwt_kid: String,
    /// The JWT key itself (for a replacement X.509 authority).
    jwt_private: meshid_identity::PrivateKey,
}

// === impl Authority ===

impl Authority {
    /// Obtains the signing material from `upstream` and the JWT key from
    /// `keys` (generating what is missing).
    pub fn new(
        config: AuthorityConfig,
        upstream: &dyn UpstreamAuthority,
        keys: &dyn KeyManager,
        now: SystemTime,
    ) -> Result<Self, AuthorityError> {
        let material = upstream.obtain(&config.trust_domain, keys, now)?;
        let jwt_private = keys.load_or_generate(JWT_KEY_SLOT)?;
        Self::assemble(config, upstream.kind(), material, &jwt_private, now)
    }

    /// The authority signing X.509-SVIDs with `material` and JWT-SVIDs with
    /// `jwt_private`; `kind` names where the material came from.
    pub fn assemble(
        config: AuthorityConfig,
        kind: &'static str,
        material: CaMaterial,
        jwt_private: &meshid_identity::PrivateKey,
        now: SystemTime,
    ) -> Result<Self, AuthorityError> {
        let key_pair = material.key.clone();
        // No SVID may outlive any certificate of the chain, root included.
        let ca_not_after = ttl::chain_not_after(&material.full_chain())
            .ok_or_else(|| AuthorityError::BadCa("a CA certificate is unreadable".into()))?;
        if ca_not_after <= now {
            return Err(AuthorityError::CaExpired);
        }
        let kid = key_id(&jwt_private.public_key_der());
        let ring_key = JwtSigningKey::from_pkcs8_der(kid.clone(), jwt_private.pkcs8_der())?;
        let mut bundle = TrustBundle::new(config.trust_domain.clone());
        bundle.x509_authorities = material.roots.clone();
        bundle.jwt_authorities = vec![ring_key.public_authority()];
        let jwt_key: Arc<dyn JwtSigner> = match config.signing {
            Signing::Ring => Arc::new(ring_key),
            Signing::Openssl => Arc::new(OpensslJwtKey::new(kid.clone(), jwt_private)?),
        };
        bundle.refresh_hint = Some(Duration::from_secs(300));
        let probe_spki = meshid_identity::PrivateKey::generate_p256()
            .map_err(|e| AuthorityError::BadCa(format!("probe key: {e}")))?
            .public_key_der();
        let mut authority = Self {
            kind,
            chain_after_leaf: material.chain_after_leaf(),
            config,
            material,
            key_pair,
            ca_not_after,
            jwt_key,
            bundle,
            probe_spki,
            x509_key_id: String::new(),
            jwt_kid: kid,
            jwt_private: jwt_private.clone(),
        };
        authority.x509_key_id = authority.signed_key_id(now)?;
        Ok(authority)
    }

    /// The keyIdentifier of the AuthorityKeyIdentifier this CA writes into
    /// its leaves, lowercase hex: signs a probe leaf and reads it.
    fn signed_key_id(&self, now: SystemTime) -> Result<String, AuthorityError> {
        let id = self
            .config
            .trust_domain
            .id_with_path("/meshid/ca/key-id-probe")
            .map_err(|e| AuthorityError::BadCa(e.to_string()))?;
        let leaf = self.sign_leaf(&id, &[], &self.probe_spki, Duration::from_secs(60), now)?;
        meshid_identity::x509::authority_key_id(&leaf.chain[0])
            .map(hex::encode)
            .ok_or_else(|| {
                AuthorityError::BadCa("a signed leaf carries no AuthorityKeyIdentifier".into())
            })
    }

    /// Signs an X.509-SVID.
    pub fn sign_x509_svid(
        &self,
        spec: &X509SvidSpec<'_>,
        now: SystemTime,
    ) -> Result<IssuedX509Svid, AuthorityError> {
        let lifetime = ttl::svid_lifetime(
            spec.requested_ttl,
            spec.entry_ttl,
            self.config.default_x509_ttl,
            self.config.max_x509_ttl,
        );
        self.sign_leaf(
            spec.spiffe_id,
            spec.dns_names,
            spec.public_key_der,
            lifetime,
            now,
        )
    }

    /// Signs an agent SVID (lifetime from the configured agent TTL).
    pub fn sign_agent_svid(
        &self,
        agent_id: &SpiffeId,
        public_key_der: &[u8],
        now: SystemTime,
    ) -> Result<IssuedX509Svid, AuthorityError> {
        self.sign_leaf(agent_id, &[], public_key_der, self.config.agent_ttl, now)
    }

    fn sign_leaf(
        &self,
        spiffe_id: &SpiffeId,
        dns_names: &[String],
        public_key_der: &[u8],
        lifetime: Duration,
        now: SystemTime,
    ) -> Result<IssuedX509Svid, AuthorityError> {
        let not_after =
            ttl::clamp_to_ca(now, lifetime, self.ca_not_after).ok_or(AuthorityError::CaExpired)?;
        let template = SvidTemplate {
            spiffe_id: spiffe_id.clone(),
            dns_names: dns_names.to_vec(),
            not_before: now,
            not_after,
        };
        let leaf = self.key_pair.sign_with(|key| {
            sign_svid(&template, public_key_der, &self.material.signing_cert, &key)
        })?;
        let serial = serial_hex(&leaf)
            .ok_or_else(|| AuthorityError::BadCa("signed certificate is unreadable".into()))?;
        let mut chain = Vec::with_capacity(1 + self.chain_after_leaf.len());
        chain.push(leaf);
        chain.extend(self.chain_after_leaf.iter().cloned());
        Ok(IssuedX509Svid {
            chain,
            serial,
            not_after,
            ca_key_id: self.x509_key_id.clone(),
        })
    }

    /// Mints a JWT-SVID; returns the token and its expiry.
    pub fn mint_jwt_svid(
        &self,
        spiffe_id: &SpiffeId,
        audience: &[String],
        requested_ttl: Duration,
        entry_ttl: Duration,
        now: SystemTime,
    ) -> Result<(String, SystemTime), AuthorityError> {
        let lifetime = ttl::svid_lifetime(
            requested_ttl,
            entry_ttl,
            self.config.default_jwt_ttl,
            self.config.max_jwt_ttl,
        );
        let exp = now + lifetime;
        let token = jwt::sign(&*self.jwt_key, spiffe_id, audience, now, exp)?;
        Ok((token, exp))
    }

    /// The trust domain.
    pub fn trust_domain(&self) -> &TrustDomain {
        &self.config.trust_domain
    }

    /// This authority's own trust bundle (its roots + the JWT key). What
    /// the CA serves, with retained roots and the sequence, is
    /// [`CurrentAuthority::bundle`].
    pub fn bundle(&self) -> &TrustBundle {
        &self.bundle
    }

    /// Signing certificate first, up to and including the root.
    pub fn cert_chain(&self) -> Vec<CertificateDer<'static>> {
        self.material.full_chain()
    }

    /// When the CA chain stops being usable: the earliest notAfter of the
    /// signing certificate, the CAs above it and the root. SVIDs never
    /// outlive it.
    pub fn not_after(&self) -> SystemTime {
        self.ca_not_after
    }

    /// Where the signing key lives (for the store's CA key journal).
    pub fn key_ref(&self) -> &str {
        &self.material.key_ref
    }

    /// The X.509 key's ID in the key journal: lowercase hex of the
    /// keyIdentifier in the AuthorityKeyIdentifier of the leaves it signs.
    pub fn x509_key_id(&self) -> &str {
        &self.x509_key_id
    }

    /// The JWT key's ID (`kid`).
    pub fn jwt_key_id(&self) -> &str {
        &self.jwt_kid
    }

    /// The JWT-SVID signing key.
    pub(crate) fn jwt_private(&self) -> &meshid_identity::PrivateKey {
        &self.jwt_private
    }

    /// The signing material (certificates and key).
    pub fn material(&self) -> &CaMaterial {
        &self.material
    }

    /// `self-signed`, `disk`, ….
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// The issuance limits.
    pub fn config(&self) -> &AuthorityConfig {
        &self.config
    }
}

impl fmt::Debug for Authority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authority")
            .field("trust_domain", &self.config.trust_domain)
            .field("kind", &self.kind)
            .field("not_after", &self.ca_not_after)
            .field("key", &"...")
            .finish()
    }
}

/// A stable key ID: the first 16 hex chars of SHA-256 of the public key.
pub(crate) fn key_id(spki: &[u8]) -> String {
    hex::encode(&sha2::Sha256::digest(spki)[..8])
}

/// The serial of a certificate as the CA records it: lowercase hex of the
/// DER integer's bytes. `None` if `der` is not a certificate.
pub(crate) fn serial_hex(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    Some(hex::encode(cert.tbs_certificate.raw_serial()))
}
