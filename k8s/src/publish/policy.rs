//! The `meshid-policy` ConfigMap of one namespace: the Istio
//! AuthorizationPolicy and PeerAuthentication objects of the namespace and
//! of the root namespace (mesh-wide, Istio's semantics) in the proxy's
//! policy file format.
//!
//! With no AuthorizationPolicy at all the file holds one explicit
//! `meshid/allow-all` (Istio allows everything then; the proxy refuses an
//! empty file). With no PeerAuthentication the proxy's default, STRICT,
//! applies: meshid stays fail-closed where Istio would be PERMISSIVE.

pub mod doc;
mod peer;
pub mod translate;

use meshid_identity::TrustDomain;

use crate::istio::{AuthorizationPolicy, PeerAuthentication};
use doc::{PolicyFile, Rule};
use peer::Scope;

/// The name of the policy written when no AuthorizationPolicy applies.
pub const ALLOW_ALL: &str = "meshid/allow-all";

/// The key of the file in the ConfigMap.
pub const POLICY_KEY: &str = "policy.yaml";

/// A change the translation made to one object, to log once per
/// generation.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Note {
    /// `AuthorizationPolicy` or `PeerAuthentication`.
    pub kind: &'static str,
    /// `<namespace>/<name>`.
    pub object: String,
    /// `metadata.generation`.
    pub generation: i64,
    /// What changed.
    pub message: String,
}

/// The policy file for `namespace`, from every object of the cluster (the
/// ones of other namespaces are skipped), and the translation notes.
pub fn policy_file(
    namespace: &str,
    root_namespace: &str,
    authz: &[&AuthorizationPolicy],
    peers: &[&PeerAuthentication],
    td: &TrustDomain,
) -> (PolicyFile, Vec<Note>) {
    let mut notes = Vec::new();
    let mut file = PolicyFile::default();
    let mut aps: Vec<_> = authz
        .iter()
        .filter_map(|ap| Some((ap.metadata.namespace.as_deref()?, ap)))
        .filter(|(ns, _)| *ns == namespace || *ns == root_namespace)
        .collect();
    aps.sort_by_key(|(ns, ap)| (*ns != root_namespace, ap.metadata.name.clone()));
    for (ns, ap) in aps {
        let name = ap.metadata.name.as_deref().unwrap_or_default();
        let t = translate::authorization_policy(ns, name, &ap.spec, td);
        for message in t.notes {
            notes.push(Note {
                kind: "AuthorizationPolicy",
                object: t.policy.name.clone(),
                generation: ap.metadata.generation.unwrap_or_default(),
                message,
            });
        }
        file.policies.push(t.policy);
    }
    if file.policies.is_empty() {
        file.policies.push(doc::Policy {
            name: ALLOW_ALL.to_owned(),
            action: "ALLOW",
            selector: None,
            rules: vec![Rule::default()],
        });
    }
    let mut pas: Vec<_> = peers
        .iter()
        .filter_map(|pa| {
            let ns = pa.metadata.namespace.as_deref()?;
            let selected = translate::selector(pa.spec.selector.as_ref()).is_some();
            let scope = match (ns == root_namespace, ns == namespace, selected) {
                (true, _, false) => Scope::Mesh,
                (false, true, false) => Scope::Namespace,
                (_, true, true) => Scope::Workload,
                _ => return None,
            };
            Some((scope, ns, pa))
        })
        .collect();
    // Workload items first, then the namespace's, then the mesh's; within a
    // scope the oldest wins, as in Istio.
    let rank = |s: Scope| match s {
        Scope::Workload => 0,
        Scope::Namespace => 1,
        Scope::Mesh => 2,
    };
    pas.sort_by_key(|(scope, _, pa)| {
        (
            rank(*scope),
            pa.metadata.creation_timestamp.as_ref().map(|t| t.0),
            pa.metadata.name.clone(),
        )
    });
    for (scope, ns, pa) in pas {
        let name = pa.metadata.name.as_deref().unwrap_or_default();
        let mut msgs = Vec::new();
        let item = peer::peer_authentication(ns, name, &pa.spec, scope, &mut msgs);
        for message in msgs {
            notes.push(Note {
                kind: "PeerAuthentication",
                object: item.name.clone(),
                generation: pa.metadata.generation.unwrap_or_default(),
                message,
            });
        }
        file.peer_authentication.push(item);
    }
    (file, notes)
}

/// The file as the ConfigMap's `policy.yaml`.
pub fn render(file: &PolicyFile) -> Result<String, serde_yaml_ng::Error> {
    let mut out = String::from(
        "# Written by meshid-controller from the Istio AuthorizationPolicy and\n\
         # PeerAuthentication objects of this namespace and the root namespace.\n\
         # Edits are overwritten.\n",
    );
    out.push_str(&serde_yaml_ng::to_string(file)?);
    Ok(out)
}
