//! The controller's entries on the CA: listed (only those with its owner)
//! at start and after every leadership gain or unclear write, then kept in
//! step with the desired set by creates (batched), updates and deletes.
//!
//! No duplicates, also across a crash: an entry is created only when the
//! last list (plus the writes confirmed since) lacks its key, and any
//! write whose outcome is unknown (transport error, a refusal that says
//! the state differs from what was listed) forces a new list first.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use meshid_proto::ca::{self as pb, admin_client::AdminClient, entry_result};
use meshid_runtime::backoff::Backoff;
use tokio::time::Instant;
use tonic::transport::Channel;

use super::desired::{Desired, EntryKey, key_of, same_fields};
use crate::leader::Leadership;

/// Entries per `CreateEntries` call (the CA accepts up to 1000).
pub const CREATE_BATCH: usize = 500;
/// Entries per `ListEntries` page (the CA's page limit).
const PAGE_SIZE: u32 = 1000;
/// Most owned entries the controller will list (a bound on memory).
pub const MAX_OWNED: usize = 1_000_000;

/// What one pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Pass {
    /// Created.
    pub created: usize,
    /// Updated.
    pub updated: usize,
    /// Deleted.
    pub deleted: usize,
    /// Left for later (backing off).
    pub pending: usize,
    /// Entries the CA refused: key and why.
    pub refused: Vec<(EntryKey, String)>,
}

/// Why a pass stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SyncError {
    /// Leadership was lost: nothing more is written.
    #[error("not the leader any more")]
    NotLeader,
    /// The CA could not be reached or answered with an error for the call.
    #[error("CA admin API {call}: {status}")]
    Ca {
        /// The RPC.
        call: &'static str,
        /// Its status.
        status: Box<tonic::Status>,
    },
    /// More owned entries than [`MAX_OWNED`].
    #[error("the CA lists more than {MAX_OWNED} entries with owner {0}; refusing to go on")]
    TooMany(String),
}

/// The owned entries as last known.
pub struct Registry {
    client: AdminClient<Channel>,
    owner: String,
    owned: Option<BTreeMap<EntryKey, Vec<pb::Entry>>>,
    retry: HashMap<EntryKey, (Backoff, Instant, String)>,
}

fn ca(call: &'static str) -> impl FnOnce(tonic::Status) -> SyncError {
    move |status| SyncError::Ca {
        call,
        status: Box::new(status),
    }
}

// === impl Registry ===

impl Registry {
    /// A registry for `owner` through `client`; it lists before its first
    /// write.
    pub fn new(client: AdminClient<Channel>, owner: String) -> Self {
        Self {
            client,
            owner,
            owned: None,
            retry: HashMap::new(),
        }
    }

    /// The admin client (shared: a clone uses the same connection).
    pub fn client(&self) -> AdminClient<Channel> {
        self.client.clone()
    }

    /// Forgets what was listed: the next pass lists again (leadership
    /// gained, or another writer may have acted).
    pub fn invalidate(&mut self) {
        self.owned = None;
    }

    /// Owned entries as last known (`None` before the first list).
    pub fn owned_count(&self) -> Option<usize> {
        self.owned.as_ref().map(|o| o.values().map(Vec::len).sum())
    }

    /// Entries the CA refused and that back off, with the CA's reason.
    pub fn refusals(&self) -> impl Iterator<Item = (&EntryKey, &str)> {
        self.retry.iter().map(|(k, (_, _, why))| (k, why.as_str()))
    }

    /// The earliest time an entry backing off may be retried.
    pub fn next_retry(&self) -> Option<Instant> {
        self.retry.values().map(|(_, at, _)| *at).min()
    }

    async fn list(&mut self) -> Result<BTreeMap<EntryKey, Vec<pb::Entry>>, SyncError> {
        let mut out: BTreeMap<EntryKey, Vec<pb::Entry>> = BTreeMap::new();
        let mut count = 0usize;
        let mut page_token = String::new();
        loop {
            let resp = self
                .client
                .list_entries(pb::ListEntriesRequest {
                    page_token: page_token.clone(),
                    page_size: PAGE_SIZE,
                    by_owner: self.owner.clone(),
                    ..Default::default()
                })
                .await
                .map_err(ca("ListEntries"))?
                .into_inner();
            for e in resp.entries {
                // The filter is the CA's; an entry of another owner is
                // never ours to touch.
                if e.owner != self.owner {
                    continue;
                }
                count += 1;
                if count > MAX_OWNED {
                    return Err(SyncError::TooMany(self.owner.clone()));
                }
                out.entry(key_of(&e)).or_default().push(e);
            }
            if resp.next_page_token.is_empty() {
                return Ok(out);
            }
            page_token = resp.next_page_token;
        }
    }

    /// One pass towards `desired`; every write is preceded by a leadership
    /// check. Creates go first, then updates, then deletes, so a workload
    /// whose SPIFFE ID changes has its new entry before the old one goes.
    pub async fn sync(
        &mut self,
        desired: &Desired,
        leader: &Leadership,
    ) -> Result<Pass, SyncError> {
        let mut owned = match self.owned.take() {
            Some(o) => o,
            None => self.list().await?,
        };
        let now = Instant::now();
        self.retry.retain(|k, _| desired.entries.contains_key(k));
        let mut pass = Pass::default();
        let mut creates = Vec::new();
        let mut updates = Vec::new();
        for (key, want) in &desired.entries {
            if self.retry.get(key).is_some_and(|(_, at, _)| *at > now) {
                pass.pending += 1;
                continue;
            }
            match owned.get(key).and_then(|v| v.first()) {
                None => creates.push((key.clone(), want.clone())),
                Some(have) if !same_fields(have, want) => {
                    let mut e = want.clone();
                    e.id.clone_from(&have.id);
                    e.revision = have.revision;
                    updates.push((key.clone(), e));
                }
                Some(_) => {}
            }
        }
        let mut deletes = Vec::new();
        for (key, have) in &owned {
            let keep = usize::from(desired.entries.contains_key(key));
            for e in have.iter().skip(keep) {
                deletes.push((key.clone(), e.id.clone()));
            }
        }
        let result = self
            .apply(&mut owned, &mut pass, creates, updates, deletes, leader)
            .await;
        match result {
            Ok(()) => {
                self.owned = Some(owned);
                Ok(pass)
            }
            // Unclear: list again next time.
            Err(e) => Err(e),
        }
    }

    async fn apply(
        &mut self,
        owned: &mut BTreeMap<EntryKey, Vec<pb::Entry>>,
        pass: &mut Pass,
        creates: Vec<(EntryKey, pb::Entry)>,
        updates: Vec<(EntryKey, pb::Entry)>,
        deletes: Vec<(EntryKey, String)>,
        leader: &Leadership,
    ) -> Result<(), SyncError> {
        let mut unclear = false;
        for batch in creates.chunks(CREATE_BATCH) {
            if !leader.is_leader() {
                return Err(SyncError::NotLeader);
            }
            let resp = self
                .client
                .create_entries(pb::CreateEntriesRequest {
                    entries: batch.iter().map(|(_, e)| e.clone()).collect(),
                })
                .await
                .map_err(ca("CreateEntries"))?
                .into_inner();
            for ((key, _), result) in batch.iter().zip(resp.results) {
                match result.result {
                    Some(entry_result::Result::Entry(e)) => {
                        self.retry.remove(key);
                        owned.entry(key.clone()).or_default().push(e);
                        pass.created += 1;
                    }
                    Some(entry_result::Result::Error(err)) => {
                        // AlreadyExists: someone else created it; list again.
                        unclear |= err.code == tonic::Code::AlreadyExists as i32;
                        self.refused(key, pass, format!("CA refused the entry: {}", err.message));
                    }
                    None => unclear = true,
                }
            }
        }
        for (key, entry) in updates {
            if !leader.is_leader() {
                return Err(SyncError::NotLeader);
            }
            match self
                .client
                .update_entry(pb::UpdateEntryRequest { entry: Some(entry) })
                .await
            {
                Ok(resp) => {
                    self.retry.remove(&key);
                    owned.insert(key, vec![resp.into_inner()]);
                    pass.updated += 1;
                }
                Err(s) if is_refusal(s.code()) => {
                    unclear |= matches!(
                        s.code(),
                        tonic::Code::NotFound
                            | tonic::Code::FailedPrecondition
                            | tonic::Code::Aborted
                    );
                    self.refused(
                        &key,
                        pass,
                        format!("CA refused the update: {}", s.message()),
                    );
                }
                Err(s) => return Err(ca("UpdateEntry")(s)),
            }
        }
        for (key, id) in deletes {
            if !leader.is_leader() {
                return Err(SyncError::NotLeader);
            }
            match self
                .client
                .delete_entry(pb::DeleteEntryRequest { id: id.clone() })
                .await
            {
                Ok(_) => pass.deleted += 1,
                Err(s) if s.code() == tonic::Code::NotFound => {}
                Err(s) => return Err(ca("DeleteEntry")(s)),
            }
            if let Some(v) = owned.get_mut(&key) {
                v.retain(|e| e.id != id);
                if v.is_empty() {
                    owned.remove(&key);
                }
            }
        }
        if unclear {
            return Err(SyncError::Ca {
                call: "CreateEntries/UpdateEntry",
                status: Box::new(tonic::Status::aborted(
                    "the CA's entries differ from the last list; listing again",
                )),
            });
        }
        Ok(())
    }

    fn refused(&mut self, key: &EntryKey, pass: &mut Pass, why: String) {
        let now = Instant::now();
        let (backoff, at, reason) = self.retry.entry(key.clone()).or_insert_with(|| {
            (
                Backoff::new(Duration::from_secs(1), Duration::from_secs(300)),
                now,
                String::new(),
            )
        });
        *at = now + backoff.next_delay();
        reason.clone_from(&why);
        pass.refused.push((key.clone(), why));
    }
}

/// A verdict on one entry rather than on the CA's health.
fn is_refusal(code: tonic::Code) -> bool {
    !meshid_runtime::backoff::retryable(code)
}
