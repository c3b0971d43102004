//! The entries the cluster asks for: every considered pod × every
//! template that selects it, rendered. Pure: the reflectors' contents in,
//! entries and per-template outcomes out.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::core::{Selector, SelectorExt as _};
use meshid_identity::{Selector as EntrySelector, SpiffeId};
use meshid_proto::ca as pb;

use super::config::{PodSelector, Settings};
use crate::crd::{ClusterIdentityTemplate, DEFAULT_SPIFFE_ID_TEMPLATE};
use crate::template::{Context, Template};

/// What makes two entries the same entry: the SPIFFE ID, the parent and the
/// selector set (sorted). Other fields are updated in place.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EntryKey {
    /// The SPIFFE ID.
    pub spiffe_id: String,
    /// The parent ID.
    pub parent_id: String,
    /// `(type, value)`, sorted, without duplicates.
    pub selectors: Vec<(String, String)>,
}

/// What happened to one template.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Pods it registered.
    pub entries: i64,
    /// Pods it selects that could not be registered.
    pub failed_pods: i64,
    /// The last problem.
    pub last_error: Option<String>,
    /// `metadata.generation` it was computed for.
    pub generation: Option<i64>,
}

/// Desired entries (without `id`/`revision`), by key, and which templates
/// asked for each.
#[derive(Debug, Default)]
pub struct Desired {
    /// The entries.
    pub entries: BTreeMap<EntryKey, pb::Entry>,
    /// Template names asking for each entry (CA refusals are counted on
    /// them).
    pub sources: BTreeMap<EntryKey, Vec<String>>,
    /// Per template name.
    pub outcomes: BTreeMap<String, Outcome>,
}

/// The reflectors' contents.
#[derive(Debug, Clone, Copy)]
pub struct Cluster<'a> {
    /// Every pod.
    pub pods: &'a [Arc<Pod>],
    /// Namespaces by name.
    pub namespaces: &'a BTreeMap<String, Arc<Namespace>>,
    /// Nodes by name.
    pub nodes: &'a BTreeMap<String, Arc<Node>>,
    /// Every template.
    pub templates: &'a [Arc<ClusterIdentityTemplate>],
}

/// A template with its fields parsed.
struct Compiled {
    name: String,
    pods: Option<Selector>,
    namespaces: Option<Selector>,
    spiffe_id: Template,
    dns_names: Vec<Template>,
    selectors: Vec<Template>,
    x509_ttl: u32,
    jwt_ttl: u32,
    federates_with: Vec<String>,
    admin: bool,
    downstream: bool,
}

/// Computes the desired entries.
pub fn desired(settings: &Settings, cluster: Cluster<'_>) -> Desired {
    let mut out = Desired::default();
    let mut compiled = Vec::new();
    let mut templates: Vec<_> = cluster
        .templates
        .iter()
        .filter(|t| t.spec.class_name.as_deref().unwrap_or("") == settings.class_name)
        .collect();
    templates.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    for t in templates {
        let name = t.metadata.name.clone().unwrap_or_default();
        let outcome = Outcome {
            generation: t.metadata.generation,
            ..Outcome::default()
        };
        match compile(&name, t) {
            Ok(c) => compiled.push(c),
            Err(e) => {
                out.outcomes.insert(
                    name,
                    Outcome {
                        last_error: Some(e),
                        ..outcome
                    },
                );
                continue;
            }
        }
        out.outcomes.insert(name, outcome);
    }
    for pod in cluster.pods {
        let Some(p) = considered(settings, cluster, pod) else {
            continue;
        };
        for t in &compiled {
            let pod_ok = t.pods.as_ref().is_none_or(|s| s.matches(p.ctx.pod_labels));
            let ns_ok = t
                .namespaces
                .as_ref()
                .is_none_or(|s| s.matches(p.ctx.namespace_labels));
            if !(pod_ok && ns_ok) {
                continue;
            }
            let Some(outcome) = out.outcomes.get_mut(&t.name) else {
                continue;
            };
            match entry(settings, t, &p.ctx) {
                Ok((key, e)) => {
                    outcome.entries += 1;
                    out.sources
                        .entry(key.clone())
                        .or_default()
                        .push(t.name.clone());
                    out.entries.entry(key).or_insert(e);
                }
                Err(e) => {
                    outcome.failed_pods += 1;
                    outcome.last_error =
                        Some(format!("pod {}/{}: {e}", p.ctx.namespace, p.ctx.pod_name));
                }
            }
        }
    }
    out
}

/// A pod that is scheduled, not finished, not in an ignored namespace, on a
/// known node, in a known namespace; with its template context.
struct Considered<'a> {
    ctx: Context<'a>,
}

fn considered<'a>(
    settings: &'a Settings,
    cluster: Cluster<'a>,
    pod: &'a Pod,
) -> Option<Considered<'a>> {
    let spec = pod.spec.as_ref()?;
    let node_name = spec.node_name.as_deref()?;
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    if matches!(phase, Some("Succeeded" | "Failed")) {
        return None;
    }
    let namespace = pod.metadata.namespace.as_deref()?;
    if settings.ignore_namespaces.iter().any(|n| n == namespace) {
        return None;
    }
    let ns = cluster.namespaces.get(namespace)?;
    let node = cluster.nodes.get(node_name)?;
    static EMPTY: BTreeMap<String, String> = BTreeMap::new();
    Some(Considered {
        ctx: Context {
            trust_domain: settings.trust_domain.as_str(),
            cluster_name: &settings.cluster_name,
            namespace,
            service_account: spec.service_account_name.as_deref().unwrap_or("default"),
            pod_name: pod.metadata.name.as_deref().unwrap_or_default(),
            pod_uid: pod.metadata.uid.as_deref().unwrap_or_default(),
            node_name,
            node_uid: node.metadata.uid.as_deref().unwrap_or_default(),
            pod_labels: pod.metadata.labels.as_ref().unwrap_or(&EMPTY),
            pod_annotations: pod.metadata.annotations.as_ref().unwrap_or(&EMPTY),
            namespace_labels: ns.metadata.labels.as_ref().unwrap_or(&EMPTY),
            node_labels: node.metadata.labels.as_ref().unwrap_or(&EMPTY),
        },
    })
}

fn compile(name: &str, t: &ClusterIdentityTemplate) -> Result<Compiled, String> {
    let s = &t.spec;
    let tpl = |field: &str, text: &str| Template::parse(text).map_err(|e| format!("{field}: {e}"));
    let selector = |field: &str, sel: &Option<_>| -> Result<Option<Selector>, String> {
        sel.clone()
            .map(Selector::try_from)
            .transpose()
            .map_err(|e| format!("{field}: {e}"))
    };
    let ttl = |field: &str, v: &Option<String>| -> Result<u32, String> {
        match v.as_deref().filter(|v| !v.is_empty()) {
            None => Ok(0),
            Some(v) => {
                let d = meshid_runtime::duration::parse(v).map_err(|e| format!("{field}: {e}"))?;
                u32::try_from(d.as_secs()).map_err(|_| format!("{field}: {v:?} is too long"))
            }
        }
    };
    Ok(Compiled {
        name: name.to_owned(),
        pods: selector("podSelector", &s.pod_selector)?,
        namespaces: selector("namespaceSelector", &s.namespace_selector)?,
        spiffe_id: tpl(
            "spiffeIDTemplate",
            s.spiffe_id_template
                .as_deref()
                .unwrap_or(DEFAULT_SPIFFE_ID_TEMPLATE),
        )?,
        dns_names: s
            .dns_name_templates
            .iter()
            .map(|d| tpl("dnsNameTemplates", d))
            .collect::<Result<_, _>>()?,
        selectors: s
            .workload_selector_templates
            .iter()
            .map(|d| tpl("workloadSelectorTemplates", d))
            .collect::<Result<_, _>>()?,
        x509_ttl: ttl("ttl", &s.ttl)?,
        jwt_ttl: ttl("jwtTtl", &s.jwt_ttl)?,
        federates_with: s.federates_with.clone(),
        admin: s.admin,
        downstream: s.downstream,
    })
}

fn entry(
    settings: &Settings,
    t: &Compiled,
    ctx: &Context<'_>,
) -> Result<(EntryKey, pb::Entry), String> {
    let id = t
        .spiffe_id
        .render(ctx)
        .map_err(|e| format!("spiffeIDTemplate: {e}"))?;
    let id = SpiffeId::parse(&id).map_err(|e| format!("SPIFFE ID {id:?}: {e}"))?;
    if !id.is_member_of(&settings.trust_domain) {
        return Err(format!(
            "SPIFFE ID {id} is not in trust domain {}",
            settings.trust_domain.as_str()
        ));
    }
    if id.is_reserved() {
        return Err(format!(
            "SPIFFE ID {id} is reserved for meshid's own components"
        ));
    }
    let parent = settings
        .parent_id_template
        .render(ctx)
        .map_err(|e| format!("parent_id_template: {e}"))?;
    let parent = SpiffeId::parse(&parent).map_err(|e| format!("parent ID {parent:?}: {e}"))?;
    if !parent.is_member_of(&settings.trust_domain) {
        return Err(format!("parent ID {parent} is not in the trust domain"));
    }
    let mut selectors = Vec::new();
    for s in &settings.pod_selectors {
        let value = match s {
            PodSelector::Namespace => format!("ns:{}", ctx.namespace),
            PodSelector::ServiceAccount => format!("sa:{}", ctx.service_account),
            PodSelector::PodUid => format!("pod-uid:{}", ctx.pod_uid),
        };
        selectors.push(("k8s".to_owned(), value));
    }
    for tpl in &t.selectors {
        let text = tpl
            .render(ctx)
            .map_err(|e| format!("workloadSelectorTemplates: {e}"))?;
        let sel = EntrySelector::parse(&text).map_err(|e| format!("selector {text:?}: {e}"))?;
        selectors.push((sel.kind().to_owned(), sel.value().to_owned()));
    }
    selectors.sort();
    selectors.dedup();
    if selectors.is_empty() {
        return Err("no selectors: set pod_selectors or workloadSelectorTemplates".to_owned());
    }
    let mut dns_names = Vec::new();
    for tpl in &t.dns_names {
        dns_names.push(
            tpl.render(ctx)
                .map_err(|e| format!("dnsNameTemplates: {e}"))?,
        );
    }
    let key = EntryKey {
        spiffe_id: id.as_str().to_owned(),
        parent_id: parent.as_str().to_owned(),
        selectors: selectors.clone(),
    };
    let entry = pb::Entry {
        spiffe_id: key.spiffe_id.clone(),
        parent_id: key.parent_id.clone(),
        selectors: selectors
            .into_iter()
            .map(|(r#type, value)| pb::Selector { r#type, value })
            .collect(),
        x509_svid_ttl_seconds: t.x509_ttl,
        jwt_svid_ttl_seconds: t.jwt_ttl,
        dns_names,
        admin: t.admin,
        federates_with: t.federates_with.clone(),
        downstream: t.downstream,
        owner: settings.owner.clone(),
        ..Default::default()
    };
    Ok((key, entry))
}

/// The key of an entry the CA returned.
pub fn key_of(e: &pb::Entry) -> EntryKey {
    let mut selectors: Vec<_> = e
        .selectors
        .iter()
        .map(|s| (s.r#type.clone(), s.value.clone()))
        .collect();
    selectors.sort();
    selectors.dedup();
    EntryKey {
        spiffe_id: e.spiffe_id.clone(),
        parent_id: e.parent_id.clone(),
        selectors,
    }
}

/// True when `have` (from the CA) already says what `want` says.
pub fn same_fields(have: &pb::Entry, want: &pb::Entry) -> bool {
    let mut a = have.dns_names.clone();
    let mut b = want.dns_names.clone();
    a.sort();
    b.sort();
    let mut fa = have.federates_with.clone();
    let mut fb = want.federates_with.clone();
    fa.sort();
    fb.sort();
    a == b
        && fa == fb
        && have.x509_svid_ttl_seconds == want.x509_svid_ttl_seconds
        && have.jwt_svid_ttl_seconds == want.jwt_svid_ttl_seconds
        && have.admin == want.admin
        && have.downstream == want.downstream
}
