//! The Kubernetes API access each meshid component needs: the one table
//! the RBAC objects in `deploy/base/rbac/` are checked against, and the fake
//! API server's request log in the controller tests is checked against, so
//! the manifests grant exactly what the code uses.

/// Where a rule is granted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// A ClusterRole bound with a ClusterRoleBinding.
    Cluster,
    /// A Role in the component's own namespace (`meshid-system`).
    OwnNamespace,
}

/// One RBAC rule: a resource of an API group and the verbs on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rule {
    /// The API group (`""` for the core group).
    pub api_group: &'static str,
    /// The resource, with `/subresource` when it is one.
    pub resource: &'static str,
    /// The verbs, sorted.
    pub verbs: &'static [&'static str],
    /// Objects it is limited to (empty: every object).
    pub resource_names: &'static [&'static str],
    /// Cluster-wide or in the own namespace.
    pub scope: Scope,
    /// Why the code needs it (written into the RBAC manifest as a comment).
    pub why: &'static str,
}

/// The name of the MutatingWebhookConfiguration whose `caBundle` the
/// controller keeps equal to the trust bundle.
pub const WEBHOOK_CONFIGURATION: &str = "meshid-sidecar-injector";

/// What `meshid k8s controller` uses.
pub const CONTROLLER: &[Rule] = &[
    Rule {
        api_group: "",
        resource: "pods",
        verbs: &["list", "watch"],
        resource_names: &[],
        scope: Scope::Cluster,
        why: "reflect every pod: one registration entry per pod that a template selects",
    },
    Rule {
        api_group: "",
        resource: "namespaces",
        verbs: &["list", "watch"],
        resource_names: &[],
        scope: Scope::Cluster,
        why: "namespaceSelector of templates; one trust-bundle and policy ConfigMap per namespace",
    },
    Rule {
        api_group: "",
        resource: "nodes",
        verbs: &["list", "watch"],
        resource_names: &[],
        scope: Scope::Cluster,
        why: "node UID and labels: an entry's parent is the agent of the pod's node",
    },
    Rule {
        api_group: "",
        resource: "configmaps",
        verbs: &["create", "delete", "list", "patch", "watch"],
        resource_names: &[],
        scope: Scope::Cluster,
        why: "write meshid-ca-root-cert and meshid-policy in every namespace; watch them to repair edits",
    },
    Rule {
        api_group: "meshid.io",
        resource: "clusteridentitytemplates",
        verbs: &["list", "watch"],
        resource_names: &[],
        scope: Scope::Cluster,
        why: "the templates that decide which pods get which SPIFFE ID",
    },
    Rule {
        api_group: "meshid.io",
        resource: "clusteridentitytemplates/status",
        verbs: &["patch"],
        resource_names: &[],
        scope: Scope::Cluster,
        why: "report entry counts and the last error on each template",
    },
    Rule {
        api_group: "meshid.io",
        resource: "clusterfederatedtrustdomains",
        verbs: &["list", "watch"],
        resource_names: &[],
        scope: Scope::Cluster,
        why: "federated trust domains declared in the cluster",
    },
    Rule {
        api_group: "meshid.io",
        resource: "clusterfederatedtrustdomains/status",
        verbs: &["patch"],
        resource_names: &[],
        scope: Scope::Cluster,
        why: "report whether each federated trust domain is valid",
    },
    Rule {
        api_group: "security.istio.io",
        resource: "authorizationpolicies",
        verbs: &["list", "watch"],
        resource_names: &[],
        scope: Scope::Cluster,
        why: "Istio AuthorizationPolicy objects, translated into each namespace's proxy policy",
    },
    Rule {
        api_group: "security.istio.io",
        resource: "peerauthentications",
        verbs: &["list", "watch"],
        resource_names: &[],
        scope: Scope::Cluster,
        why: "Istio PeerAuthentication mTLS modes for the proxies' inbound ports",
    },
    Rule {
        api_group: "admissionregistration.k8s.io",
        resource: "mutatingwebhookconfigurations",
        verbs: &["get", "patch"],
        resource_names: &[WEBHOOK_CONFIGURATION],
        scope: Scope::Cluster,
        why: "keep the injector's caBundle equal to the mesh trust bundle (its serving cert is an SVID)",
    },
    Rule {
        api_group: "coordination.k8s.io",
        resource: "leases",
        verbs: &["create", "get", "update"],
        resource_names: &[],
        scope: Scope::OwnNamespace,
        why: "leader election: only the holder of the meshid-controller Lease writes",
    },
];

/// What the CA's `k8s_psat` node attestor uses (in-cluster; the CA pod's
/// account, which the controller shares).
pub const CA_ATTESTOR: &[Rule] = &[
    Rule {
        api_group: "authentication.k8s.io",
        resource: "tokenreviews",
        verbs: &["create"],
        resource_names: &[],
        scope: Scope::Cluster,
        why: "k8s_psat: the API server checks each agent's projected token (signature, audience, bound pod)",
    },
    Rule {
        api_group: "",
        resource: "pods",
        verbs: &["get"],
        resource_names: &[],
        scope: Scope::Cluster,
        why: "k8s_psat: the agent's pod must still exist, with the token's UID, and names its node",
    },
    Rule {
        api_group: "",
        resource: "nodes",
        verbs: &["get"],
        resource_names: &[],
        scope: Scope::Cluster,
        why: "k8s_psat: the node's UID is the agent's ID; its allowed labels become selectors",
    },
];

/// What the CA's `[rbac.kubernetes]` uses to authorize admin callers that
/// send a Kubernetes bearer token (`meshid … --token-file`): who the token
/// belongs to, and whether Kubernetes RBAC grants them a meshid role (verb
/// `<role>` on `tenants.meshid.io`).
pub const CA_ADMIN_AUTH: &[Rule] = &[
    Rule {
        api_group: "authentication.k8s.io",
        resource: "tokenreviews",
        verbs: &["create"],
        resource_names: &[],
        scope: Scope::Cluster,
        why: "admin API: the user and groups of a caller's bearer token",
    },
    Rule {
        api_group: "authorization.k8s.io",
        resource: "subjectaccessreviews",
        verbs: &["create"],
        resource_names: &[],
        scope: Scope::Cluster,
        why: "admin API: whether Kubernetes RBAC grants that user a meshid role on a tenant",
    },
];

/// What `meshid agent` uses: the kubelet's `/pods` on the agent's own node,
/// which the kubelet authorizes as `nodes/proxy` `get`.
pub const AGENT: &[Rule] = &[Rule {
    api_group: "",
    resource: "nodes/proxy",
    verbs: &["get"],
    resource_names: &[],
    scope: Scope::Cluster,
    why: "the k8s workload attestor reads the kubelet's /pods to identify the pod of a calling process",
}];

/// What `meshid k8s webhook` uses: nothing. The AdmissionReview carries the
/// pod, and its serving certificate comes from the agent.
pub const WEBHOOK: &[Rule] = &[];
