//! Join tokens: `<id>.<secret>` where `id` is 16 random hex chars (public;
//! the agent becomes `spiffe://<td>/meshid/agent/join_token/<id>`) and
//! `secret` is 32 random bytes, base64url. The store keeps only the
//! SHA-256 of the whole token, and consumes it atomically.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use meshid_identity::{Selector, SpiffeId, TrustDomain};
use rand::RngCore;
use sha2::{Digest, Sha256};

use super::{ALIAS_SELECTOR_PREFIX, ALIAS_SELECTOR_TYPE, AttestError, AttestedNode, NodeAttestor};
use crate::store::{JoinToken, Store, StoreError};

/// The attestation type name.
pub const NAME: &str = "join_token";
/// Longest token accepted (a real one is 16 + 1 + 43 bytes).
pub const MAX_TOKEN_LEN: usize = 128;

/// Creates a token valid until `now + ttl`, optionally giving the agent a
/// node alias. Returns the token to hand to the operator (shown once) and
/// the record to store with [`Store::create_join_token`].
pub fn generate(now: SystemTime, ttl: Duration, alias: Option<SpiffeId>) -> (String, JoinToken) {
    let mut rng = rand::rng();
    let mut id = [0u8; 8];
    rng.fill_bytes(&mut id);
    let mut secret = [0u8; 32];
    rng.fill_bytes(&mut secret);
    let id = hex::encode(id);
    let token = format!("{id}.{}", URL_SAFE_NO_PAD.encode(secret));
    let record = JoinToken {
        id,
        hash: hash(&token).to_vec(),
        spiffe_id: alias,
        expires_at: now + ttl,
        used_at: None,
        tenant: String::new(),
    };
    (token, record)
}

/// SHA-256 of the whole token.
pub fn hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The agent ID a token with public ID `id` yields.
pub fn agent_id(td: &TrustDomain, id: &str) -> Result<SpiffeId, AttestError> {
    td.id_with_path(&format!("/meshid/agent/{NAME}/{id}"))
        .map_err(|_| AttestError::Malformed("token ID is not usable in a SPIFFE ID"))
}

fn parse(payload: &[u8]) -> Result<(&str, &str), AttestError> {
    if payload.len() > MAX_TOKEN_LEN {
        return Err(AttestError::Malformed("join token is too long"));
    }
    let text = std::str::from_utf8(payload)
        .map_err(|_| AttestError::Malformed("join token is not UTF-8"))?;
    let (id, secret) = text.split_once('.').ok_or(AttestError::Malformed(
        "join token must look like <id>.<secret>",
    ))?;
    let id_ok = id.len() == 16
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    let secret_ok = URL_SAFE_NO_PAD.decode(secret).is_ok_and(|s| s.len() == 32);
    if !id_ok || !secret_ok {
        return Err(AttestError::Malformed(
            "join token must look like <16 hex>.<43 base64url>",
        ));
    }
    Ok((id, text))
}

/// Verifies join tokens against the store.
#[derive(Debug, Clone)]
pub struct JoinTokenAttestor {
    store: Arc<dyn Store>,
    trust_domain: TrustDomain,
}

// === impl JoinTokenAttestor ===

impl JoinTokenAttestor {
    /// Attests agents of `trust_domain` with tokens from `store`.
    pub fn new(store: Arc<dyn Store>, trust_domain: TrustDomain) -> Self {
        Self {
            store,
            trust_domain,
        }
    }
}

#[async_trait]
impl NodeAttestor for JoinTokenAttestor {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn attest(&self, payload: &[u8], now: SystemTime) -> Result<AttestedNode, AttestError> {
        let (id, whole) = parse(payload)?;
        let token = match self.store.consume_join_token(&hash(whole), now).await {
            Ok(t) => t,
            Err(StoreError::NotFound { .. }) => {
                return Err(AttestError::Refused("unknown join token".into()));
            }
            Err(StoreError::TokenExpired) => {
                return Err(AttestError::Refused(
                    "join token expired; create a new one".into(),
                ));
            }
            Err(StoreError::TokenUsed) => {
                return Err(AttestError::Refused(
                    "join token was already used; create a new one".into(),
                ));
            }
            Err(e) => return Err(AttestError::Unavailable(e.to_string())),
        };
        if token.id != id {
            return Err(AttestError::Refused("unknown join token".into()));
        }
        let mut selectors = vec![
            Selector::new(ALIAS_SELECTOR_TYPE, &format!("id:{id}"))
                .map_err(|_| AttestError::Malformed("token ID is not a valid selector"))?,
        ];
        if let Some(alias) = &token.spiffe_id {
            let value = format!("{ALIAS_SELECTOR_PREFIX}{alias}");
            if let Ok(s) = Selector::new(ALIAS_SELECTOR_TYPE, &value) {
                selectors.push(s);
            }
        }
        Ok(AttestedNode {
            agent_id: agent_id(&self.trust_domain, id)?,
            selectors,
            tenant: token.tenant,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_parse_and_hash_the_whole_token() {
        let now = SystemTime::now();
        let (token, rec) = generate(now, Duration::from_secs(60), None);
        let (id, whole) = parse(token.as_bytes()).unwrap();
        assert_eq!(id, rec.id);
        assert_eq!(whole, token);
        assert_eq!(rec.hash, hash(&token).to_vec());
        assert_eq!(rec.expires_at, now + Duration::from_secs(60));
        assert_eq!(token.len(), 16 + 1 + 43);
    }

    #[tokio::test]
    async fn an_agent_gets_its_tokens_tenant() {
        use crate::store::{AuditEvent, Change, SqliteStore, Tenant};
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open_in_memory().await.unwrap());
        let tenant = Tenant {
            name: "pay".into(),
            spiffe_id_prefixes: vec!["spiffe://example.org/ns/pay".into()],
            k8s_namespaces: Vec::new(),
            allowed_parents: Vec::new(),
            federates_with: Vec::new(),
            created_at: SystemTime::UNIX_EPOCH,
        };
        let event = AuditEvent {
            actor: "config".into(),
            action: "tenant.create".into(),
            ..AuditEvent::default()
        };
        store
            .audited(Change::CreateTenant(tenant), event)
            .await
            .unwrap();
        let now = SystemTime::now();
        let attestor =
            JoinTokenAttestor::new(Arc::clone(&store), TrustDomain::new("example.org").unwrap());
        let (token, mut rec) = generate(now, Duration::from_secs(60), None);
        rec.tenant = "pay".into();
        store.create_join_token(&rec).await.unwrap();
        let node = attestor.attest(token.as_bytes(), now).await.unwrap();
        assert_eq!(node.tenant, "pay");
        let (token, rec) = generate(now, Duration::from_secs(60), None);
        store.create_join_token(&rec).await.unwrap();
        let node = attestor.attest(token.as_bytes(), now).await.unwrap();
        assert_eq!(node.tenant, "", "a platform token makes a platform agent");
    }

    #[test]
    fn malformed_tokens_are_refused() {
        for bad in [
            "",
            "abc",
            "0123456789abcdef.short",
            "0123456789ABCDEF.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        ] {
            assert!(
                matches!(parse(bad.as_bytes()), Err(AttestError::Malformed(_))),
                "{bad}"
            );
        }
        assert!(parse(&[b'a'; 200]).is_err());
    }
}
