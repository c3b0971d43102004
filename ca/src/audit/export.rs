//! Audit records outside the store: the admin API's wire form
//! ([`to_wire`]) and the JSON line `meshid audit export` prints for each
//! ([`export_line`], [`export_line_wire`]): one object per line, stable
//! keys, `before`/`after` as JSON values (a SIEM indexes their fields),
//! the time both as RFC 3339 and as Unix milliseconds.

use std::time::{Duration, UNIX_EPOCH};

use meshid_proto::ca as pb;
use serde_json::{Value, json};

use super::chain::unix_ms;
use crate::store::AuditRecord;

/// The admin API's form of a record (hashes as lowercase hex).
pub fn to_wire(r: &AuditRecord) -> pb::AuditRecord {
    pb::AuditRecord {
        seq: r.seq,
        at_ms: unix_ms(r.at).unwrap_or(0),
        actor: r.event.actor.clone(),
        action: r.event.action.clone(),
        tenant: r.event.tenant.clone(),
        target: r.event.target.clone(),
        before: r.event.before.clone(),
        after: r.event.after.clone(),
        result: r.event.result.clone(),
        prev_hash: hex::encode(r.prev_hash),
        hash: hex::encode(r.hash),
    }
}

/// One JSON line (no trailing newline) for a stored record.
pub fn export_line(r: &AuditRecord) -> String {
    export_line_wire(&to_wire(r))
}

/// One JSON line (no trailing newline) for a record from the admin API.
pub fn export_line_wire(r: &pb::AuditRecord) -> String {
    let at = u64::try_from(r.at_ms)
        .map(|ms| humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)))
        .map(|t| t.to_string())
        .unwrap_or_default();
    json!({
        "seq": r.seq,
        "at": at,
        "at_ms": r.at_ms,
        "actor": r.actor,
        "action": r.action,
        "tenant": r.tenant,
        "target": r.target,
        "before": document(&r.before),
        "after": document(&r.after),
        "result": r.result,
        "prev_hash": r.prev_hash,
        "hash": r.hash,
    })
    .to_string()
}

/// A stored state as a JSON value: `null` when empty, the document when it
/// parses, else the text itself as a string.
fn document(s: &str) -> Value {
    if s.is_empty() {
        return Value::Null;
    }
    serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.to_owned()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::store::{AuditEvent, GENESIS};

    #[test]
    fn a_line_is_one_json_object_with_documents_inline() {
        let r = AuditRecord {
            seq: 3,
            at: UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
            event: AuditEvent {
                actor: "uid:0".into(),
                action: "entry.update".into(),
                tenant: "payments".into(),
                target: "e1".into(),
                before: r#"{"x509_ttl_secs":60}"#.into(),
                after: "not json\nat all".into(),
                result: "ok".into(),
            },
            prev_hash: GENESIS,
            hash: [0xab; 32],
        };
        let line = export_line(&r);
        assert!(!line.contains('\n'), "{line}");
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["seq"], 3);
        assert_eq!(v["at"], "2023-11-14T22:13:20.123Z");
        assert_eq!(v["at_ms"], 1_700_000_000_123_i64);
        assert_eq!(v["before"]["x509_ttl_secs"], 60);
        assert_eq!(v["after"], "not json\nat all");
        assert_eq!(v["tenant"], "payments");
        assert_eq!(v["hash"], "ab".repeat(32));
        assert_eq!(v["prev_hash"], "00".repeat(32));
        let empty = AuditRecord {
            event: AuditEvent::default(),
            ..r
        };
        assert_eq!(
            serde_json::from_str::<Value>(&export_line(&empty)).unwrap()["before"],
            Value::Null
        );
    }
}
