//! The subjects a role binding names, and the denial every refused call gets.

use meshid_identity::{SpiffeId, TrustDomain};
use tonic::Status;

use super::Role;

/// Longest subject, in bytes.
pub const MAX_SUBJECT_LEN: usize = 2048;
/// Longest Kubernetes user or group name.
const MAX_KUBE_NAME: usize = 512;

/// Checks and normalizes a binding's subject: `uid:<n>`, `gid:<n>`,
/// `spiffe://<td>/...` (an ID of this CA's trust domain), `k8s-user:<name>`
/// or `k8s-group:<name>`. The error says what is wrong and what a subject
/// looks like.
pub fn check_subject(raw: &str, td: &TrustDomain) -> Result<String, String> {
    if raw.len() > MAX_SUBJECT_LEN {
        return Err(format!("is longer than {MAX_SUBJECT_LEN} bytes"));
    }
    let forms = "a subject is uid:<n>, gid:<n>, spiffe://<td>/..., k8s-user:<name> or \
                 k8s-group:<name>";
    if let Some(n) = raw
        .strip_prefix("uid:")
        .or_else(|| raw.strip_prefix("gid:"))
    {
        return match n.parse::<u32>() {
            Ok(v) if v.to_string() == n => Ok(format!("{}{v}", &raw[..4])),
            _ => Err(format!("{:?}: {n:?} is not a number; {forms}", echo(raw))),
        };
    }
    if raw.starts_with("spiffe://") {
        let id = SpiffeId::parse(raw)
            .map_err(|e| format!("{:?} is not a SPIFFE ID ({e}); {forms}", echo(raw)))?;
        if !id.is_member_of(td) {
            return Err(format!(
                "{id} is not in this CA's trust domain {td}: admin callers present an SVID \
                 this CA issued"
            ));
        }
        return Ok(id.to_string());
    }
    for prefix in ["k8s-user:", "k8s-group:"] {
        if let Some(name) = raw.strip_prefix(prefix) {
            if name.is_empty() || name.len() > MAX_KUBE_NAME || name.chars().any(char::is_control) {
                return Err(format!(
                    "{:?}: the name must be 1-{MAX_KUBE_NAME} printable characters",
                    echo(raw)
                ));
            }
            return Ok(raw.to_owned());
        }
    }
    Err(format!("{:?} is not a subject; {forms}", echo(raw)))
}

/// The `PermissionDenied` for `actor` lacking `role` on `tenant` (`""`: the
/// platform, which takes `cluster-admin`) for `action`, with the command
/// that grants it.
pub fn denial(actor: &str, role: Role, tenant: &str, action: &str) -> Status {
    if tenant.is_empty() || role == Role::ClusterAdmin {
        Status::permission_denied(format!(
            "{actor} lacks role cluster-admin on the platform ({action}); a cluster-admin can \
             grant it: `meshid rbac bind --subject {actor} --role cluster-admin`"
        ))
    } else {
        Status::permission_denied(format!(
            "{actor} lacks role {role} on tenant {tenant} ({action}); an admin of the tenant can \
             grant it: `meshid rbac bind --subject {actor} --role {role} --tenant {tenant}`",
            role = role.as_str()
        ))
    }
}

fn echo(s: &str) -> String {
    s.chars().take(120).collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn subjects_are_checked_and_normalized() {
        let td = TrustDomain::new("example.org").unwrap();
        assert_eq!(check_subject("uid:1001", &td).unwrap(), "uid:1001");
        assert_eq!(check_subject("gid:0", &td).unwrap(), "gid:0");
        assert!(check_subject("uid:01", &td).is_err());
        assert!(check_subject("uid:-1", &td).is_err());
        assert!(check_subject("uid:", &td).is_err());
        assert_eq!(
            check_subject("spiffe://example.org/ops", &td).unwrap(),
            "spiffe://example.org/ops"
        );
        assert!(check_subject("spiffe://other.org/ops", &td).is_err());
        assert_eq!(
            check_subject("k8s-user:alice", &td).unwrap(),
            "k8s-user:alice"
        );
        assert!(check_subject("k8s-group:", &td).is_err());
        assert!(check_subject("alice", &td).is_err());
        assert!(check_subject(&"x".repeat(3000), &td).is_err());
    }

    #[test]
    fn denials_name_the_role_and_the_fix() {
        let s = denial("uid:1001", Role::Operator, "payments", "CreateEntries");
        assert_eq!(s.code(), tonic::Code::PermissionDenied);
        assert!(
            s.message()
                .contains("lacks role operator on tenant payments")
        );
        assert!(s.message().contains("--role operator --tenant payments"));
        let s = denial("uid:1001", Role::Viewer, "", "GetEntry");
        assert!(s.message().contains("lacks role cluster-admin"));
    }
}
