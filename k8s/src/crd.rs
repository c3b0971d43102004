//! The custom resources of group `meshid.io`, as Rust types. The committed
//! YAML in `deploy/base/crds/` is generated from them (`meshid k8s crds`)
//! and a test fails when the two differ.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The SPIFFE ID template used when a `ClusterIdentityTemplate` names none.
pub const DEFAULT_SPIFFE_ID_TEMPLATE: &str =
    "spiffe://{{.TrustDomain}}/ns/{{.Namespace}}/sa/{{.ServiceAccount}}";

/// Which pods get which SPIFFE ID: the controller registers one entry per
/// matching pod (cluster-scoped, like SPIRE's `ClusterSPIFFEID`).
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "meshid.io",
    version = "v1alpha1",
    kind = "ClusterIdentityTemplate",
    plural = "clusteridentitytemplates",
    shortname = "cit",
    status = "ClusterIdentityTemplateStatus",
    printcolumn = r#"{"name":"Entries","type":"integer","jsonPath":".status.entries"}"#,
    printcolumn = r#"{"name":"Error","type":"string","jsonPath":".status.lastError"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ClusterIdentityTemplateSpec {
    /// The SPIFFE ID of a matching pod. Fields: `.TrustDomain`,
    /// `.ClusterName`, `.Namespace`, `.ServiceAccount`, `.PodName`,
    /// `.PodUID`, `.NodeName`, `.NodeUID`, and the maps `.PodLabels`,
    /// `.PodAnnotations`, `.NamespaceLabels`, `.NodeLabels` read as
    /// `{{.PodLabels.app}}` or `{{index .PodLabels "app.kubernetes.io/name"}}`.
    /// Default: `spiffe://{{.TrustDomain}}/ns/{{.Namespace}}/sa/{{.ServiceAccount}}`.
    #[serde(
        default,
        rename = "spiffeIDTemplate",
        skip_serializing_if = "Option::is_none"
    )]
    pub spiffe_id_template: Option<String>,
    /// Pods this template applies to (empty: every pod).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_selector: Option<LabelSelector>,
    /// Namespaces this template applies to, by their labels (empty: every
    /// namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
    /// DNS SANs of the SVID, templated like the SPIFFE ID.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_name_templates: Vec<String>,
    /// More selectors for each entry, templated like the SPIFFE ID (for
    /// example `unix:uid:1000`); added to the controller's pod selectors
    /// (`k8s:ns`, `k8s:sa` and `k8s:pod-uid` unless its `pod_selectors`
    /// says otherwise).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workload_selector_templates: Vec<String>,
    /// X.509-SVID lifetime, e.g. `1h` (empty: the CA's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
    /// JWT-SVID lifetime, e.g. `5m` (empty: the CA's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt_ttl: Option<String>,
    /// Trust domains whose bundles these workloads also receive.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub federates_with: Vec<String>,
    /// The SVIDs may call the CA's admin API.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub admin: bool,
    /// The workloads are downstream meshid CAs.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub downstream: bool,
    /// Only a controller started with this class (`class_name` in its
    /// config) acts on the template; empty: only controllers with none.
    /// Lets several controllers share a cluster, as SPIRE's `className`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_name: Option<String>,
}

/// What the controller last did with a `ClusterIdentityTemplate`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterIdentityTemplateStatus {
    /// Entries registered for matching pods.
    #[serde(default)]
    pub entries: i64,
    /// Pods that match but could not be registered (bad template output,
    /// a missing label, a CA refusal).
    #[serde(default)]
    pub failed_pods: i64,
    /// The last error, empty when the last reconcile succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// The template generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// A trust domain federated with this one: where its bundle is published
/// and the SPIFFE ID of that endpoint (read by the federation work; stored
/// now so clusters can declare it).
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "meshid.io",
    version = "v1alpha1",
    kind = "ClusterFederatedTrustDomain",
    plural = "clusterfederatedtrustdomains",
    shortname = "cftd",
    status = "ClusterFederatedTrustDomainStatus",
    printcolumn = r#"{"name":"TrustDomain","type":"string","jsonPath":".spec.trustDomain"}"#,
    printcolumn = r#"{"name":"Endpoint","type":"string","jsonPath":".spec.bundleEndpointURL"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ClusterFederatedTrustDomainSpec {
    /// The federated trust domain, e.g. `partner.example`.
    pub trust_domain: String,
    /// The HTTPS URL of its SPIFFE bundle endpoint.
    #[serde(rename = "bundleEndpointURL")]
    pub bundle_endpoint_url: String,
    /// How the endpoint is authenticated.
    pub bundle_endpoint_profile: BundleEndpointProfile,
    /// A bundle to start from (SPIFFE bundle JSON), before the first fetch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust_domain_bundle: Option<String>,
}

/// How a bundle endpoint is authenticated (SPIFFE Federation: `https_spiffe`
/// or `https_web`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BundleEndpointProfile {
    /// `https_spiffe` or `https_web`.
    #[serde(rename = "type")]
    pub profile: ProfileType,
    /// The endpoint's SPIFFE ID; required for `https_spiffe`.
    #[serde(
        default,
        rename = "endpointSPIFFEID",
        skip_serializing_if = "Option::is_none"
    )]
    pub endpoint_spiffe_id: Option<String>,
}

/// The SPIFFE bundle endpoint profiles.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ProfileType {
    /// The endpoint presents an X.509-SVID (`endpointSPIFFEID`).
    #[serde(rename = "https_spiffe")]
    HttpsSpiffe,
    /// The endpoint presents a Web PKI certificate.
    #[default]
    #[serde(rename = "https_web")]
    HttpsWeb,
}

/// Whether a `ClusterFederatedTrustDomain` was accepted.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterFederatedTrustDomainStatus {
    /// Why it was refused; empty when it is valid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// Where the generated CRDs are committed, relative to the repository root.
pub const CRDS_PATH: &str = "deploy/base/crds/meshid.io.yaml";

/// The `meshid.io` CustomResourceDefinitions as one YAML stream, the text
/// committed at [`CRDS_PATH`] (`meshid k8s crds` prints it).
pub fn crds_yaml() -> Result<String, serde_yaml_ng::Error> {
    use kube::CustomResourceExt as _;
    let mut out = String::from(
        "# Generated by `meshid k8s crds` from k8s/src/crd.rs; do not edit.\n\
         # A test regenerates it and fails on any difference.\n",
    );
    for crd in [
        ClusterIdentityTemplate::crd(),
        ClusterFederatedTrustDomain::crd(),
    ] {
        out.push_str("---\n");
        out.push_str(&serde_yaml_ng::to_string(&crd)?);
    }
    Ok(out)
}
