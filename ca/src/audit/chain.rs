//! [`ChainCheck`]: the pure check of the audit chain. Records are fed in
//! seq order; only the previous record's hash is kept, so memory does not
//! grow with the chain. The first problem found is the answer: later
//! records cannot be trusted once one link is broken.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::store::{AuditRecord, GENESIS, record_hash};

/// The first bad record of a chain and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The first record that does not check out (a missing one's seq for
    /// a gap or a truncated tail).
    pub seq: i64,
    /// Why, e.g. `edited: hash mismatch`, `deleted: seq 7 missing`.
    pub reason: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "record {}: {}", self.seq, self.reason)
    }
}

/// The chain checked so far. Feed every record with [`ChainCheck::feed`]
/// in seq order, then call [`ChainCheck::finish`] with the head row.
#[derive(Debug, Clone)]
pub struct ChainCheck {
    /// The seq the next record must have.
    next: i64,
    /// The hash of the record before `next` ([`GENESIS`] at the start).
    prev: [u8; 32],
    /// The head row read before the first record: the record at its seq
    /// must carry its hash.
    head_before: Option<(i64, [u8; 32])>,
    /// Signed (seq, hash) pairs the records must match, by seq.
    pinned: BTreeMap<i64, [u8; 32]>,
}

// === impl ChainCheck ===

impl ChainCheck {
    /// A check of a chain whose head row read `head_before` before any
    /// record was read (records appended later are checked too).
    pub fn new(head_before: Option<(i64, [u8; 32])>) -> Self {
        Self {
            next: 1,
            prev: GENESIS,
            head_before,
            pinned: BTreeMap::new(),
        }
    }

    /// Also requires the record at `seq` to have `hash` (a checkpoint whose
    /// signature checked out).
    pub fn pin(&mut self, seq: i64, hash: [u8; 32]) {
        self.pinned.insert(seq, hash);
    }

    /// How many records checked out so far.
    pub fn records(&self) -> i64 {
        self.next - 1
    }

    /// The seq of the last record that checked out (0 before the first).
    pub fn last_seq(&self) -> i64 {
        self.next - 1
    }

    /// Checks the next record: seq without a gap, `prev_hash` linking to
    /// the record before, its own hash, and any checkpoint or head at its seq.
    pub fn feed(&mut self, r: &AuditRecord) -> Result<(), Problem> {
        let seq = r.seq;
        if seq < self.next {
            return Err(problem(
                self.next,
                format!("reordered: seq {seq} listed after seq {}", self.next - 1),
            ));
        }
        if seq > self.next {
            let missing = if seq == self.next + 1 {
                format!("seq {} missing", self.next)
            } else {
                format!("seq {} to {} missing", self.next, seq - 1)
            };
            return Err(problem(self.next, format!("deleted: {missing}")));
        }
        if r.prev_hash != self.prev {
            let reason = if seq == 1 {
                "reordered: prev_hash of 1 is not the genesis hash".to_owned()
            } else {
                format!(
                    "reordered: prev_hash of {seq} is not the hash of {}",
                    seq - 1
                )
            };
            return Err(problem(seq, reason));
        }
        let Some(at_ms) = unix_ms(r.at) else {
            return Err(problem(seq, "edited: its time is out of range".into()));
        };
        if record_hash(&r.prev_hash, seq, at_ms, &r.event) != r.hash {
            return Err(problem(seq, "edited: hash mismatch".into()));
        }
        if let Some(signed) = self.pinned.get(&seq)
            && *signed != r.hash
        {
            return Err(problem(
                seq,
                format!("checkpoint at {seq} does not match: the chain was rewritten"),
            ));
        }
        if let Some((head_seq, head_hash)) = self.head_before
            && head_seq == seq
            && head_hash != r.hash
        {
            return Err(problem(
                seq,
                format!("edited: the head row's hash is not the hash of {seq}"),
            ));
        }
        self.prev = r.hash;
        self.next += 1;
        Ok(())
    }

    /// Ends the check: `head_after` is the head row read after the last
    /// record. Every record up to the earlier head must have been seen
    /// (else the tail was deleted), none past the later head (else records
    /// were added outside the store's append), and every checkpoint must
    /// name a record that exists.
    pub fn finish(&self, head_after: Option<(i64, [u8; 32])>) -> Result<(), Problem> {
        let last = self.last_seq();
        let before = self.head_before.map_or(0, |(s, _)| s);
        if before > last {
            return Err(problem(
                last + 1,
                format!("truncated: head says {before}, last record is {last}"),
            ));
        }
        let after = head_after.map_or(0, |(s, _)| s);
        if last > after {
            return Err(problem(
                after + 1,
                format!("inserted: head says {after}, last record is {last}"),
            ));
        }
        if let Some((&seq, _)) = self.pinned.range(last + 1..).next() {
            return Err(problem(
                seq,
                format!("checkpoint at {seq} does not match: no record {seq} (last is {last})"),
            ));
        }
        Ok(())
    }
}

fn problem(seq: i64, reason: String) -> Problem {
    Problem { seq, reason }
}

/// Unix milliseconds of `t`, as the store hashes it; `None` before 1970
/// or past i64.
pub(crate) fn unix_ms(t: SystemTime) -> Option<i64> {
    let d = t.duration_since(UNIX_EPOCH).ok()?;
    i64::try_from(d.as_millis()).ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::store::AuditEvent;

    /// A valid chain of `n` records.
    fn chain(n: i64) -> Vec<AuditRecord> {
        let mut prev = GENESIS;
        (1..=n)
            .map(|seq| {
                let event = AuditEvent {
                    actor: "uid:0".into(),
                    action: "entry.create".into(),
                    target: format!("e{seq}"),
                    after: "{}".into(),
                    result: "ok".into(),
                    ..AuditEvent::default()
                };
                let at_ms = 1_700_000_000_000 + seq;
                let hash = record_hash(&prev, seq, at_ms, &event);
                let r = AuditRecord {
                    seq,
                    at: UNIX_EPOCH + Duration::from_millis(at_ms as u64),
                    event,
                    prev_hash: prev,
                    hash,
                };
                prev = hash;
                r
            })
            .collect()
    }

    fn head(records: &[AuditRecord]) -> Option<(i64, [u8; 32])> {
        records.last().map(|r| (r.seq, r.hash))
    }

    /// The check of `records` with the heads given.
    fn run(
        records: &[AuditRecord],
        before: Option<(i64, [u8; 32])>,
        after: Option<(i64, [u8; 32])>,
    ) -> Result<i64, Problem> {
        let mut check = ChainCheck::new(before);
        for r in records {
            check.feed(r)?;
        }
        check.finish(after)?;
        Ok(check.records())
    }

    #[test]
    fn a_valid_chain_and_an_empty_one_pass() {
        let c = chain(5);
        assert_eq!(run(&c, head(&c), head(&c)), Ok(5));
        assert_eq!(run(&[], None, None), Ok(0));
        // Records appended while the check ran are checked too.
        let c = chain(6);
        assert_eq!(run(&c, head(&c[..3]), head(&c)), Ok(6));
    }

    #[test]
    fn an_edited_field_names_that_record() {
        let mut c = chain(5);
        let h = head(&c);
        c[2].event.target = "other".into();
        let p = run(&c, h, h).unwrap_err();
        assert_eq!((p.seq, p.reason.as_str()), (3, "edited: hash mismatch"));
        let mut c = chain(5);
        c[3].at += Duration::from_millis(1);
        assert_eq!(run(&c, h, h).unwrap_err().seq, 4);
    }

    #[test]
    fn a_deleted_record_is_a_gap() {
        let mut c = chain(9);
        let h = head(&c);
        c.remove(6);
        let p = run(&c, h, h).unwrap_err();
        assert_eq!((p.seq, p.reason.as_str()), (7, "deleted: seq 7 missing"));
        c.remove(6);
        c.remove(0);
        let p = run(&c, h, h).unwrap_err();
        assert_eq!((p.seq, p.reason.as_str()), (1, "deleted: seq 1 missing"));
        let mut c = chain(9);
        c.drain(3..6);
        assert_eq!(
            run(&c, h, h).unwrap_err().reason,
            "deleted: seq 4 to 6 missing"
        );
    }

    #[test]
    fn swapped_seqs_are_reordered() {
        let mut c = chain(9);
        let h = head(&c);
        // The rows of 7 and 8 trade their seq: listed in seq order, 8's
        // content comes first.
        c.swap(6, 7);
        c[6].seq = 7;
        c[7].seq = 8;
        let p = run(&c, h, h).unwrap_err();
        assert_eq!(p.seq, 7);
        assert_eq!(p.reason, "reordered: prev_hash of 7 is not the hash of 6");
        let mut c = chain(2);
        c[0].prev_hash = [1; 32];
        assert_eq!(
            run(&c, h, h).unwrap_err().reason,
            "reordered: prev_hash of 1 is not the genesis hash"
        );
    }

    #[test]
    fn a_deleted_tail_is_truncation_and_extra_records_are_insertion() {
        let c = chain(120);
        let h = head(&c);
        let p = run(&c[..118], h, h).unwrap_err();
        assert_eq!(p.seq, 119);
        assert_eq!(p.reason, "truncated: head says 120, last record is 118");
        assert_eq!(run(&[], h, h).unwrap_err().seq, 1);
        let p = run(&c, head(&c[..100]), head(&c[..100])).unwrap_err();
        assert_eq!(
            (p.seq, p.reason.as_str()),
            (101, "inserted: head says 100, last record is 120")
        );
    }

    #[test]
    fn a_rewritten_chain_fails_its_checkpoint_or_head() {
        let c = chain(5);
        let h = head(&c);
        let mut check = ChainCheck::new(h);
        check.pin(3, [7; 32]);
        let p = c.iter().try_for_each(|r| check.feed(r)).unwrap_err();
        assert_eq!(p.seq, 3);
        assert!(
            p.reason.starts_with("checkpoint at 3 does not match"),
            "{p}"
        );

        let mut check = ChainCheck::new(h);
        check.pin(9, [7; 32]);
        c.iter().try_for_each(|r| check.feed(r)).unwrap();
        let p = check.finish(h).unwrap_err();
        assert_eq!(p.seq, 9);
        assert!(p.reason.contains("no record 9"), "{p}");

        // The last record re-hashed without the head row following.
        let p = run(&c, Some((5, [3; 32])), Some((5, [3; 32]))).unwrap_err();
        assert_eq!(p.seq, 5);
        assert!(p.reason.contains("head row"), "{p}");
    }
}
