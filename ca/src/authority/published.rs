//! JWT keys other CAs of this trust domain published here (a downstream
//! meshid CA's, sent with `SignDownstreamCa`): [`PublishedKeys`].
//!
//! They are served in this CA's own bundle, after its own key, each with
//! its expiry (the JWK member `exp`), so they survive restarts through the
//! stored bundle and every replica serves them. Expired keys are dropped;
//! at most [`MAX_PUBLISHED_KEYS`] are held.

use std::time::SystemTime;

use meshid_identity::{BundleError, JwtAuthority, TrustBundle};

/// Most JWT keys other CAs may publish in one trust domain's bundle.
pub const MAX_PUBLISHED_KEYS: usize = 16;

/// Why a published JWT key is refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PublishKeyError {
    /// The key or its ID is malformed, too large or of an unusable type.
    #[error("the JWT key is refused: {0}")]
    Invalid(#[from] BundleError),
    /// The key ID is not the digest of the key, so a CA could publish a key
    /// under an ID another CA's tokens carry.
    #[error(
        "the JWT key ID {key_id:?} is not its key's ID {expected:?} (the first 16 hex digits of \
         SHA-256 of the public key); meshid CAs name their keys so"
    )]
    NotKeyDigest {
        /// The ID sent.
        key_id: String,
        /// The ID of the key sent.
        expected: String,
    },
    /// The key ID is one of this CA's own keys.
    #[error("the JWT key ID {0:?} is this CA's own; use a key ID of the publishing CA's key")]
    OwnKeyId(String),
    /// The key has no expiry or has expired.
    #[error("the JWT key {0:?} is expired or has no expiry")]
    Expired(String),
    /// The bundle already holds the most keys other CAs may publish.
    #[error(
        "the bundle already holds {MAX_PUBLISHED_KEYS} JWT keys of other CAs; retire a \
         downstream CA (its key leaves the bundle when it expires) before adding another"
    )]
    TooMany,
    /// The bundle could not be stored.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// The JWT keys other CAs published, each with an expiry.
#[derive(Debug, Clone, Default)]
pub(super) struct PublishedKeys {
    keys: Vec<JwtAuthority>,
}

// === impl PublishedKeys ===

impl PublishedKeys {
    /// The published keys of a stored bundle: those with an expiry after
    /// `now` whose ID is not among `own`'s keys (keys without an expiry
    /// are a CA's own).
    pub(super) fn recover(stored: &TrustBundle, own: &TrustBundle, now: SystemTime) -> Self {
        let keys = stored
            .jwt_authorities
            .iter()
            .filter(|k| k.expires_at.is_some_and(|at| at > now))
            .filter(|k| own.jwt_authority(&k.key_id).is_none())
            .take(MAX_PUBLISHED_KEYS)
            .cloned()
            .collect();
        Self { keys }
    }

    /// Adds or refreshes `key` (by key ID), after dropping expired keys.
    pub(super) fn insert(
        &mut self,
        key: JwtAuthority,
        own: &TrustBundle,
        now: SystemTime,
    ) -> Result<(), PublishKeyError> {
        key.check()?;
        // The ID is bound to the key: one downstream CA cannot take over a
        // key ID another one's tokens carry (replacing a key of the same ID
        // then only renews that very key).
        let expected = super::key_id(&key.public_key_der);
        if key.key_id != expected {
            return Err(PublishKeyError::NotKeyDigest {
                key_id: key.key_id,
                expected,
            });
        }
        if own.jwt_authority(&key.key_id).is_some() {
            return Err(PublishKeyError::OwnKeyId(key.key_id));
        }
        if key.expires_at.is_none_or(|at| at <= now) {
            return Err(PublishKeyError::Expired(key.key_id));
        }
        let mut keys: Vec<JwtAuthority> = self
            .keys
            .iter()
            .filter(|k| k.key_id != key.key_id && k.expires_at.is_some_and(|at| at > now))
            .cloned()
            .collect();
        if keys.len() >= MAX_PUBLISHED_KEYS {
            return Err(PublishKeyError::TooMany);
        }
        keys.push(key);
        self.keys = keys;
        Ok(())
    }

    /// Drops keys expired by `now`; true if any was.
    pub(super) fn prune(&mut self, now: SystemTime) -> bool {
        let before = self.keys.len();
        self.keys
            .retain(|k| k.expires_at.is_some_and(|at| at > now));
        self.keys.len() != before
    }

    /// `bundle` with the published keys appended, each key ID once.
    pub(super) fn add_to(&self, bundle: &mut TrustBundle) {
        for key in &self.keys {
            if bundle.jwt_authority(&key.key_id).is_none() {
                bundle.jwt_authorities.push(key.clone());
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::Duration;

    use meshid_identity::{PrivateKey, TrustDomain};

    use super::*;

    fn key(expires_at: Option<SystemTime>) -> JwtAuthority {
        let public_key_der = PrivateKey::generate_p256().unwrap().public_key_der();
        JwtAuthority {
            key_id: super::super::key_id(&public_key_der),
            public_key_der,
            expires_at,
        }
    }

    #[test]
    fn keys_are_bounded_refreshed_by_id_checked_and_expire() {
        let now = SystemTime::now();
        let later = Some(now + Duration::from_secs(60));
        let mut own = TrustBundle::new(TrustDomain::new("example.org").unwrap());
        let own_key = key(None);
        own.jwt_authorities.push(own_key.clone());
        let mut p = PublishedKeys::default();
        let mut first = None;
        for _ in 0..MAX_PUBLISHED_KEYS {
            let k = key(later);
            first.get_or_insert_with(|| k.clone());
            p.insert(k, &own, now).unwrap();
        }
        // The same key again replaces (renews) it, one more is refused.
        p.insert(first.clone().unwrap(), &own, now).unwrap();
        assert!(matches!(
            p.insert(key(later), &own, now),
            Err(PublishKeyError::TooMany)
        ));
        let mut mine = own_key.clone();
        mine.expires_at = later;
        assert!(matches!(
            p.insert(mine, &own, now),
            Err(PublishKeyError::OwnKeyId(_))
        ));
        // Another key under a published key's ID is refused, so is any ID
        // that is not its key's digest.
        let mut squatter = key(later);
        squatter.key_id = first.clone().unwrap().key_id;
        assert!(matches!(
            p.insert(squatter, &own, now),
            Err(PublishKeyError::NotKeyDigest { .. })
        ));
        let mut named = key(later);
        named.key_id = "k1".into();
        assert!(matches!(
            p.insert(named, &own, now),
            Err(PublishKeyError::NotKeyDigest { .. })
        ));
        assert!(matches!(
            p.insert(key(None), &own, now),
            Err(PublishKeyError::Expired(_))
        ));
        let mut garbage = key(later);
        garbage.public_key_der = vec![0x30, 0x03, 1, 2, 3];
        assert!(matches!(
            p.insert(garbage, &own, now),
            Err(PublishKeyError::Invalid(_))
        ));
        let mut bundle = own.clone();
        p.add_to(&mut bundle);
        assert_eq!(bundle.jwt_authorities.len(), 1 + MAX_PUBLISHED_KEYS);
        let recovered = PublishedKeys::recover(&bundle, &own, now);
        assert_eq!(recovered.keys.len(), MAX_PUBLISHED_KEYS);
        assert!(p.prune(now + Duration::from_secs(61)));
        assert!(p.keys.is_empty());
    }
}
