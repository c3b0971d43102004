//! When the CA is ready (`/readyz`): the store answers and an SVID signed
//! now by the current authority verifies against its own trust bundle.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use meshid_runtime::clock::SharedClock;
use meshid_runtime::ops::{NotReady, Readiness};

use crate::authority::CurrentAuthority;
use crate::store::Store;

/// How long `/readyz` waits for the store.
const STORE_TIMEOUT: Duration = Duration::from_secs(2);

/// The CA's readiness check.
pub(super) struct CaReadiness {
    pub(super) store: Arc<dyn Store>,
    pub(super) authority: CurrentAuthority,
    pub(super) clock: SharedClock,
}

// === impl CaReadiness ===

impl Readiness for CaReadiness {
    /// Every reason the CA is not ready, one line each.
    fn check(&self) -> BoxFuture<'_, Result<(), NotReady>> {
        Box::pin(async move {
            let mut why = Vec::new();
            match tokio::time::timeout(STORE_TIMEOUT, self.store.health()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => why.push(format!("store: {e}")),
                Err(_) => why.push(format!("store: no answer within {STORE_TIMEOUT:?}")),
            }
            if let Err(e) = self.authority.load().check_issuance(self.clock.now()) {
                why.push(format!("issuance: {e}"));
            }
            NotReady::from_reasons(why)
        })
    }
}
