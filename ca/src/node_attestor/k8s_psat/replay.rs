//! A token admits one attestation: its SHA-256 is recorded in the store
//! until the token expires ([`Store::record_attestation_token`], one atomic
//! statement, so also across CA replicas on one PostgreSQL).

use std::time::SystemTime;

use sha2::{Digest, Sha256};

use super::NAME;
use crate::node_attestor::AttestError;
use crate::store::{Store, StoreError};

/// Records `token` as used until `expires_at`; refuses it if it was used.
pub async fn record_once(
    store: &dyn Store,
    token: &str,
    expires_at: SystemTime,
) -> Result<(), AttestError> {
    let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
    match store
        .record_attestation_token(NAME, &hash, expires_at)
        .await
    {
        Ok(()) => Ok(()),
        Err(StoreError::Conflict { .. }) => Err(AttestError::Refused(
            "token was already used to attest; the kubelet rotates projected tokens, retry with \
             the new one"
                .into(),
        )),
        Err(e) => Err(AttestError::Unavailable(format!(
            "cannot record the token against replay: {e}"
        ))),
    }
}
