//! [`Checkpointer`]: the CA task that signs the audit chain's head every
//! `[audit] checkpoint_interval` when it moved. Replicas on one store race
//! harmlessly: one checkpoint per seq is stored, the loser skips.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use meshid_runtime::clock::SharedClock;

use super::checkpoint::sign_checkpoint;
use crate::authority::CurrentAuthority;
use crate::store::{AuditCheckpoint, Store, StoreError};

/// Signs the chain's head with the active X.509 CA key.
#[derive(Debug)]
pub struct Checkpointer {
    store: Arc<dyn Store>,
    authority: CurrentAuthority,
    clock: SharedClock,
    /// The newest seq known to be checkpointed (read from the store once).
    signed: Option<i64>,
}

/// What one [`Checkpointer::tick`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tick {
    /// The chain is empty or its head is already checkpointed.
    Unchanged,
    /// A checkpoint of this seq was written.
    Signed(i64),
    /// Another replica checkpointed this seq first.
    Raced(i64),
}

/// Why a checkpoint could not be written (the next tick tries again).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// The store failed.
    #[error("audit checkpoint: {0}")]
    Store(#[from] StoreError),
    /// The CA key could not sign.
    #[error("audit checkpoint: {0}")]
    Sign(#[from] crate::keymanager::CaSignError),
}

// === impl Checkpointer ===

impl Checkpointer {
    /// A checkpointer of `store`'s chain signing with `authority`'s
    /// current key, stamping checkpoints from `clock`.
    pub fn new(store: Arc<dyn Store>, authority: CurrentAuthority, clock: SharedClock) -> Self {
        Self {
            store,
            authority,
            clock,
            signed: None,
        }
    }

    /// Signs the head if it moved past the newest checkpoint.
    pub async fn tick(&mut self) -> Result<Tick, CheckpointError> {
        let Some((seq, hash)) = self.store.audit_head().await? else {
            return Ok(Tick::Unchanged);
        };
        if self.signed.is_none() {
            self.signed = Some(
                self.store
                    .list_audit_checkpoints()
                    .await?
                    .last()
                    .map_or(0, |cp| cp.seq),
            );
        }
        if self.signed.is_some_and(|s| s >= seq) {
            return Ok(Tick::Unchanged);
        }
        let cp: AuditCheckpoint =
            sign_checkpoint(&self.authority.load(), seq, hash, self.clock.now())?;
        let tick = match self.store.put_audit_checkpoint(&cp).await {
            Ok(()) => Tick::Signed(seq),
            Err(StoreError::AlreadyExists { .. }) => Tick::Raced(seq),
            Err(e) => return Err(e.into()),
        };
        self.signed = Some(seq);
        Ok(tick)
    }

    /// Ticks every `interval` until `stop` completes; failures are logged
    /// and retried at the next tick.
    pub async fn run(mut self, interval: Duration, stop: impl Future<Output = ()>) {
        tokio::pin!(stop);
        loop {
            tokio::select! {
                () = &mut stop => return,
                () = tokio::time::sleep(interval) => {}
            }
            match self.tick().await {
                Ok(Tick::Signed(seq)) => tracing::debug!(seq, "audit checkpoint signed"),
                Ok(_) => {}
                Err(e) => tracing::warn!(
                    error = %e,
                    "the audit chain's head could not be signed; retrying at the next interval"
                ),
            }
        }
    }
}
