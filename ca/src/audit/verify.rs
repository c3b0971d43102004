//! [`verify`]: the whole audit chain of a store checked in pages, with its
//! signed checkpoints, in memory that does not grow with the chain.

use meshid_identity::{TrustBundle, TrustDomain};

use super::chain::{ChainCheck, Problem};
use super::checkpoint::{CheckpointVerdict, check_checkpoint};
use crate::store::{AuditFilter, MAX_PAGE_LIMIT, Store, StoreError};

/// What [`verify`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Records that checked out, from seq 1.
    pub records: i64,
    /// The last record that checked out (0 for none).
    pub last_seq: i64,
    /// Checkpoints whose signature checked out and whose record matched.
    pub checkpoints: i64,
    /// Checkpoints signed by a key the bundle no longer trusts (not a
    /// failure; they prove nothing).
    pub untrusted_checkpoints: i64,
    /// Why the first untrusted checkpoint is untrusted.
    pub untrusted_note: Option<String>,
    /// The first bad record; `None` when the whole chain checked out.
    pub problem: Option<Problem>,
}

impl VerifyReport {
    /// True when no record and no checkpoint failed.
    pub fn ok(&self) -> bool {
        self.problem.is_none()
    }
}

/// Checks the whole chain in `store`: seq 1.. without a gap, each
/// `prev_hash` the previous record's hash, each hash recomputed, the head
/// row the last record, and every checkpoint's signature (a CA
/// certificate of `td` verifying against `bundle`) and (seq, hash).
/// Names the first bad record. A store that cannot be read is an error;
/// a stored record that cannot be decoded is reported as the bad record.
pub async fn verify(
    store: &dyn Store,
    td: &TrustDomain,
    bundle: &TrustBundle,
) -> Result<VerifyReport, StoreError> {
    let mut report = VerifyReport {
        records: 0,
        last_seq: 0,
        checkpoints: 0,
        untrusted_checkpoints: 0,
        untrusted_note: None,
        problem: None,
    };
    // Checkpoints first: each names a record that existed when it was
    // written, so every one of them is read below.
    let mut pins = Vec::new();
    let mut bad_checkpoint: Option<Problem> = None;
    for cp in store.list_audit_checkpoints().await? {
        match check_checkpoint(&cp, td, bundle) {
            CheckpointVerdict::Valid => pins.push((cp.seq, cp.hash)),
            CheckpointVerdict::Untrusted(note) => {
                report.untrusted_checkpoints += 1;
                report.untrusted_note.get_or_insert(note);
            }
            CheckpointVerdict::Bad(reason) => {
                if bad_checkpoint.as_ref().is_none_or(|p| cp.seq < p.seq) {
                    bad_checkpoint = Some(Problem {
                        seq: cp.seq,
                        reason,
                    });
                }
            }
        }
    }
    let mut check = ChainCheck::new(store.audit_head().await?);
    for &(seq, hash) in &pins {
        check.pin(seq, hash);
    }
    let chain_problem = walk(store, &mut check).await?;
    let chain_problem = match chain_problem {
        Some(p) => Some(p),
        None => check.finish(store.audit_head().await?).err(),
    };
    report.records = check.records();
    report.last_seq = check.last_seq();
    report.problem = match (chain_problem, bad_checkpoint) {
        (Some(c), Some(k)) => Some(if k.seq < c.seq { k } else { c }),
        (c, k) => c.or(k),
    };
    let signed = pins.iter().filter(|(s, _)| *s <= report.last_seq).count();
    report.checkpoints = i64::try_from(signed).unwrap_or(i64::MAX);
    Ok(report)
}

/// Feeds every record of `store` to `check`, a page at a time; the first
/// problem ends the walk.
async fn walk(store: &dyn Store, check: &mut ChainCheck) -> Result<Option<Problem>, StoreError> {
    let all = AuditFilter::default();
    let mut after = 0;
    loop {
        let page = match store.list_audit(&all, after, MAX_PAGE_LIMIT).await {
            Ok(page) => page,
            Err(e @ StoreError::Corrupt { .. }) => {
                return Ok(Some(Problem {
                    seq: after + 1,
                    reason: format!("edited: a record after seq {after} is unreadable: {e}"),
                }));
            }
            Err(e) => return Err(e),
        };
        for r in &page {
            if let Err(p) = check.feed(r) {
                return Ok(Some(p));
            }
        }
        match page.last() {
            Some(last) if page.len() >= MAX_PAGE_LIMIT as usize => after = last.seq,
            _ => return Ok(None),
        }
    }
}

/// The trust bundle of `td` as stored (what the CA serves); an empty
/// bundle when none is stored yet.
pub async fn stored_bundle(store: &dyn Store, td: &TrustDomain) -> Result<TrustBundle, StoreError> {
    match store.get_bundle(td).await? {
        Some(b) => TrustBundle::from_spiffe_json(td.clone(), &b.spiffe_json).map_err(|e| {
            StoreError::Corrupt {
                table: "bundles",
                key: td.to_string(),
                reason: e.to_string(),
            }
        }),
        None => Ok(TrustBundle::new(td.clone())),
    }
}
