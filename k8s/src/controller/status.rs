//! Status of the `meshid.io` objects: each `ClusterIdentityTemplate`'s
//! entry count, failed pods and last error; each
//! `ClusterFederatedTrustDomain`'s validity. Written (merge patch on the
//! status subresource) only when it differs from what the object shows.

use std::collections::BTreeMap;

use kube::api::{Api, Patch, PatchParams};
use kube::{Client, ResourceExt as _};
use meshid_identity::{SpiffeId, TrustBundle};
use serde_json::json;

use super::desired::Outcome;
use super::watch::Stores;
use crate::crd::{
    ClusterFederatedTrustDomain, ClusterFederatedTrustDomainSpec, ClusterIdentityTemplate,
    ClusterIdentityTemplateStatus, ProfileType,
};
use crate::leader::Leadership;

/// Longest `lastError` written (status should stay small).
const MAX_ERROR_LEN: usize = 1024;

/// Patches the status of every template whose outcome changed; returns
/// the first error.
pub async fn templates(
    client: &Client,
    stores: &Stores,
    outcomes: &BTreeMap<String, Outcome>,
    leader: &Leadership,
) -> Result<usize, kube::Error> {
    let api: Api<ClusterIdentityTemplate> = Api::all(client.clone());
    let mut written = 0;
    for t in stores.templates.state() {
        let name = t.name_any();
        let Some(o) = outcomes.get(&name) else {
            continue;
        };
        let want = ClusterIdentityTemplateStatus {
            entries: o.entries,
            failed_pods: o.failed_pods,
            last_error: o.last_error.as_deref().map(bounded),
            observed_generation: o.generation,
        };
        if t.status.as_ref() == Some(&want) {
            continue;
        }
        if !leader.is_leader() {
            break;
        }
        let patch = json!({ "status": {
            "entries": want.entries,
            "failedPods": want.failed_pods,
            "lastError": want.last_error,
            "observedGeneration": want.observed_generation,
        }});
        api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        written += 1;
    }
    Ok(written)
}

/// Patches the status of every federated trust domain whose validity
/// changed.
pub async fn trust_domains(
    client: &Client,
    stores: &Stores,
    leader: &Leadership,
) -> Result<usize, kube::Error> {
    let api: Api<ClusterFederatedTrustDomain> = Api::all(client.clone());
    let mut written = 0;
    for t in stores.trust_domains.state() {
        let want = check(&t.spec).err().map(|e| bounded(&e));
        let have = t.status.as_ref().and_then(|s| s.last_error.clone());
        if t.status.is_some() && have == want {
            continue;
        }
        if !leader.is_leader() {
            break;
        }
        let patch = json!({ "status": { "lastError": want } });
        api.patch_status(
            &t.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await?;
        written += 1;
    }
    Ok(written)
}

/// Why a federated trust domain cannot be used, if it cannot.
pub fn check(spec: &ClusterFederatedTrustDomainSpec) -> Result<(), String> {
    let td = SpiffeId::parse(&format!("spiffe://{}", spec.trust_domain))
        .map(|id| id.trust_domain())
        .map_err(|e| format!("trustDomain {:?}: {e}", spec.trust_domain))?;
    let url = &spec.bundle_endpoint_url;
    let host_ok = url
        .strip_prefix("https://")
        .and_then(|rest| rest.split('/').next())
        .is_some_and(|host| !host.is_empty());
    if !host_ok {
        return Err(format!(
            "bundleEndpointURL {url:?}: write an https:// URL with a host"
        ));
    }
    let endpoint_id = spec.bundle_endpoint_profile.endpoint_spiffe_id.as_deref();
    match (spec.bundle_endpoint_profile.profile, endpoint_id) {
        (ProfileType::HttpsSpiffe, None) => {
            return Err("bundleEndpointProfile https_spiffe needs endpointSPIFFEID".into());
        }
        (ProfileType::HttpsSpiffe, Some(id)) => {
            SpiffeId::parse(id).map_err(|e| format!("endpointSPIFFEID {id:?}: {e}"))?;
        }
        (ProfileType::HttpsWeb, Some(_)) => {
            return Err("endpointSPIFFEID is only for the https_spiffe profile".into());
        }
        (ProfileType::HttpsWeb, None) => {}
    }
    if let Some(b) = &spec.trust_domain_bundle {
        TrustBundle::from_spiffe_json(td, b.as_bytes())
            .map_err(|e| format!("trustDomainBundle: {e}"))?;
    }
    Ok(())
}

fn bounded(s: &str) -> String {
    if s.len() <= MAX_ERROR_LEN {
        return s.to_owned();
    }
    let mut end = MAX_ERROR_LEN;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}
