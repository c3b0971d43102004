//! Istio `PeerAuthentication` → the policy file's `peerAuthentication`.

use std::collections::BTreeMap;

use super::doc::{PeerAuthentication, PortMode};
use super::translate::selector;
use crate::istio::{Mtls, PeerAuthenticationSpec};

/// Where an object applies, seen from one namespace's file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scope {
    /// The root namespace, no selector.
    Mesh,
    /// This namespace, no selector.
    Namespace,
    /// This namespace, a selector.
    Workload,
}

/// Translates `namespace/name` at `scope`; notes say what was changed.
pub(crate) fn peer_authentication(
    namespace: &str,
    name: &str,
    spec: &PeerAuthenticationSpec,
    scope: Scope,
    notes: &mut Vec<String>,
) -> PeerAuthentication {
    let default_mode = mode_of(spec.mtls.as_ref(), "mtls.mode", notes);
    let mut port_level_mtls = BTreeMap::new();
    for (port, m) in spec.port_level_mtls.iter().flatten() {
        if scope != Scope::Workload {
            notes.push(format!(
                "portLevelMtls[{port}] ignored: it applies only with a selector (as in Istio)"
            ));
            continue;
        }
        match port.trim().parse::<u16>() {
            Ok(p) if p != 0 => {
                let mode = mode_of(Some(m), &format!("portLevelMtls[{port}]"), notes);
                port_level_mtls.insert(p.to_string(), PortMode { mode });
            }
            _ => notes.push(format!("portLevelMtls key {port:?} is not a port; ignored")),
        }
    }
    PeerAuthentication {
        name: format!("{namespace}/{name}"),
        scope: match scope {
            Scope::Mesh => "mesh",
            Scope::Namespace => "namespace",
            Scope::Workload => "workload",
        },
        selector: if scope == Scope::Workload {
            selector(spec.selector.as_ref())
        } else {
            None
        },
        mode: default_mode,
        port_level_mtls,
    }
}

/// An mTLS mode; an unknown one is enforced as `STRICT` (fail closed).
fn mode_of(m: Option<&Mtls>, at: &str, notes: &mut Vec<String>) -> &'static str {
    match m.and_then(|m| m.mode.as_deref()) {
        None | Some("UNSET") => "UNSET",
        Some("STRICT") => "STRICT",
        Some("PERMISSIVE") => "PERMISSIVE",
        Some("DISABLE") => "DISABLE",
        Some(other) => {
            notes.push(format!("{at}: unknown mode {other:?} enforced as STRICT"));
            "STRICT"
        }
    }
}
