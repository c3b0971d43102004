//! JWT-SVIDs minted by the CA, cached per (entry, audience) until half
//! their life has passed, or until a sync shows the CA's JWT keys or key
//! state changed (a rotation or a taint).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use meshid_identity::SpiffeId;
use meshid_proto::ca::{JwtSvidRequest, MintJwtSvidsRequest, jwt_svid_result};

use crate::cache::EntryInfo;
use crate::node_client::{CaClient, CaError};
use meshid_runtime::clock::SharedClock;

/// Most cached JWT-SVIDs; the cache is cleared of stale ones, then fully, beyond it.
const MAX_CACHED: usize = 10_000;
/// Most audiences per request.
pub const MAX_AUDIENCES: usize = 32;
/// Longest audience value.
pub const MAX_AUDIENCE_LEN: usize = 1024;

/// Why a JWT-SVID could not be minted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JwtError {
    /// No audience, too many, or one too long/empty.
    #[error("audience is invalid: give 1 to 32 non-empty values of at most 1024 bytes")]
    BadAudience,
    /// The CA refused this entry's JWT-SVID.
    #[error("CA refused the JWT-SVID for entry {entry}: {message}")]
    Refused {
        /// The entry.
        entry: String,
        /// The CA's message.
        message: String,
    },
    /// The CA call failed.
    #[error(transparent)]
    Ca(#[from] CaError),
}

/// A minted JWT-SVID.
#[derive(Clone, PartialEq, Eq)]
pub struct JwtSvid {
    /// The identity in `sub`.
    pub spiffe_id: SpiffeId,
    /// The compact JWS.
    pub token: String,
    /// When the token expires.
    pub expires_at: SystemTime,
}

impl fmt::Debug for JwtSvid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtSvid")
            .field("spiffe_id", &self.spiffe_id)
            .field("token", &"...")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

type Key = (String, Vec<String>);

/// Mints JWT-SVIDs through the CA with a small cache.
#[derive(Debug, Clone)]
pub struct JwtCache {
    client: Arc<dyn CaClient>,
    clock: SharedClock,
    cache: Arc<Mutex<HashMap<Key, (JwtSvid, SystemTime)>>>,
}

// === impl JwtCache ===

impl JwtCache {
    /// A minter over `client`.
    pub fn new(client: Arc<dyn CaClient>, clock: SharedClock) -> Self {
        Self {
            client,
            clock,
            cache: Arc::default(),
        }
    }

    /// A JWT-SVID for `entry` with `audience` (the first is the primary
    /// audience); reuses a cached one until half its life has passed.
    pub async fn mint(&self, entry: &EntryInfo, audience: &[String]) -> Result<JwtSvid, JwtError> {
        if audience.is_empty()
            || audience.len() > MAX_AUDIENCES
            || audience
                .iter()
                .any(|a| a.is_empty() || a.len() > MAX_AUDIENCE_LEN)
        {
            return Err(JwtError::BadAudience);
        }
        let key = (entry.id.clone(), audience.to_vec());
        let now = self.clock.now();
        if let Some((svid, refresh_at)) = self.lock().get(&key)
            && now < *refresh_at
            && svid.spiffe_id == entry.spiffe_id
        {
            return Ok(svid.clone());
        }
        let resp = self
            .client
            .mint_jwt_svids(MintJwtSvidsRequest {
                requests: vec![JwtSvidRequest {
                    entry_id: entry.id.clone(),
                    audience: audience.to_vec(),
                    ttl_seconds: 0,
                }],
            })
            .await?;
        let refused = |message: String| JwtError::Refused {
            entry: entry.id.clone(),
            message,
        };
        let result = resp
            .results
            .into_iter()
            .next()
            .and_then(|r| r.result)
            .ok_or_else(|| refused("empty response".into()))?;
        let svid = match result {
            jwt_svid_result::Result::Svid(s) => s,
            jwt_svid_result::Result::Error(e) => return Err(refused(e.message)),
        };
        if svid.spiffe_id != entry.spiffe_id.as_str() || svid.token.is_empty() {
            return Err(refused(format!(
                "CA minted a token for {:?}",
                svid.spiffe_id
            )));
        }
        let expires_at = SystemTime::UNIX_EPOCH
            + Duration::from_secs(u64::try_from(svid.expires_at).unwrap_or(0));
        let Ok(life) = expires_at.duration_since(now) else {
            return Err(refused("CA minted an expired token".into()));
        };
        let minted = JwtSvid {
            spiffe_id: entry.spiffe_id.clone(),
            token: svid.token,
            expires_at,
        };
        let mut cache = self.lock();
        if cache.len() >= MAX_CACHED {
            cache.retain(|_, (_, refresh_at)| *refresh_at > now);
            if cache.len() >= MAX_CACHED {
                cache.clear();
            }
        }
        cache.insert(key, (minted.clone(), now + life / 2));
        Ok(minted)
    }

    /// Drops every cached JWT-SVID (the CA's JWT keys or key state
    /// changed: a token from a retired or tainted key is not handed out).
    pub(super) fn clear(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, (JwtSvid, SystemTime)>> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }
}
