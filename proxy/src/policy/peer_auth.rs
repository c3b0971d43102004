//! Peer authentication (Istio's PeerAuthentication): whether an inbound
//! listener requires mTLS (`STRICT`), also accepts plaintext
//! (`PERMISSIVE`) or takes plaintext only (`DISABLE`).
//!
//! For the listener forwarding to application port P the mode comes from,
//! first that says something other than `UNSET`: the workload-scope item
//! whose selector matches (first in file order) at `portLevelMtls[P]`, then
//! its `mode`; the first namespace-scope item; the first mesh-scope item;
//! else `STRICT` (meshid fails closed where Istio defaults to PERMISSIVE).

use super::compile::{Ctx, MAX_NAME_LEN, MAX_RULES, port_number};
use super::error::{PolicyError, Warning};
use super::labels::{Labels, Selector};
use super::model::PeerAuthDoc;
use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

/// How an inbound listener treats the client's transport.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MtlsMode {
    /// mTLS with a client SVID only (meshid's default).
    #[default]
    Strict,
    /// mTLS when the client starts a TLS handshake, else plaintext from
    /// an unauthenticated peer (no principal, so rules naming principals
    /// or namespaces never match it).
    Permissive,
    /// Plaintext only: no TLS is terminated.
    Disable,
}

impl MtlsMode {
    /// The name used in policy files and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Strict => "STRICT",
            Self::Permissive => "PERMISSIVE",
            Self::Disable => "DISABLE",
        }
    }
}

impl fmt::Display for MtlsMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where an item applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scope {
    Mesh,
    Namespace,
    Workload,
}

/// One compiled `peerAuthentication` item; `None` modes are `UNSET`.
#[derive(Debug)]
pub(crate) struct PeerAuth {
    name: Arc<str>,
    scope: Scope,
    /// Set exactly for workload scope.
    selector: Option<Selector>,
    mode: Option<MtlsMode>,
    ports: Box<[(u16, Option<MtlsMode>)]>,
}

impl PeerAuth {
    /// True if deciding whether it applies needs the workload's labels.
    pub(crate) fn needs_labels(&self) -> bool {
        self.selector.as_ref().is_some_and(Selector::needs_labels)
    }
}

/// Validates and compiles the `peerAuthentication` list.
pub(crate) fn compile_all(
    docs: Vec<PeerAuthDoc>,
    warnings: &mut Vec<Warning>,
) -> Result<Vec<PeerAuth>, PolicyError> {
    if docs.len() > MAX_RULES {
        return Err(PolicyError::TooManyRules {
            count: docs.len(),
            max: MAX_RULES,
        });
    }
    let mut names = HashSet::new();
    let (mut mesh, mut namespace) = (None::<Arc<str>>, None::<Arc<str>>);
    let mut out = Vec::with_capacity(docs.len());
    for (i, doc) in docs.into_iter().enumerate() {
        let item = compile_one(i, doc)?;
        if !names.insert(item.name.clone()) {
            return Err(PolicyError::DuplicateName(item.name.to_string()));
        }
        let first = match item.scope {
            Scope::Mesh => &mut mesh,
            Scope::Namespace => &mut namespace,
            Scope::Workload => &mut None,
        };
        match first {
            Some(winner) => warnings.push(Warning {
                policy: item.name.to_string(),
                rule_index: None,
                message: format!(
                    "ignored: {winner:?} comes first with the same scope, and only the first applies"
                ),
            }),
            None if item.scope != Scope::Workload => *first = Some(item.name.clone()),
            None => {}
        }
        out.push(item);
    }
    Ok(out)
}

fn compile_one(index: usize, doc: PeerAuthDoc) -> Result<PeerAuth, PolicyError> {
    let fallback = format!("peerAuthentication[{index}]");
    let name_ok = !doc.name.is_empty() && doc.name.len() <= MAX_NAME_LEN;
    let ctx = Ctx {
        policy: if name_ok { &doc.name } else { &fallback },
    };
    let at = |field: &str| format!("peerAuthentication[{index}].{field}");
    if !name_ok {
        return Err(ctx.err(
            at("name"),
            format!("names must be 1 to {MAX_NAME_LEN} characters long"),
        ));
    }
    let scope = match doc.scope.as_str() {
        "mesh" => Scope::Mesh,
        "namespace" => Scope::Namespace,
        "workload" => Scope::Workload,
        other => {
            return Err(ctx.err(
                at("scope"),
                format!("unknown scope {other:?}; use mesh, namespace or workload"),
            ));
        }
    };
    let selector = match (scope, doc.selector) {
        (Scope::Workload, Some(s)) => Some(
            Selector::new(s.match_labels)
                .map_err(|problem| ctx.err(at("selector.matchLabels"), problem))?,
        ),
        (Scope::Workload, None) => {
            return Err(ctx.err(
                at("selector"),
                "scope workload needs a selector (matchLabels of the pods it applies to)",
            ));
        }
        (_, Some(_)) => {
            return Err(ctx.err(
                at("selector"),
                "only scope workload takes a selector; mesh and namespace apply to every pod",
            ));
        }
        (_, None) => None,
    };
    let port_level = doc.port_level_mtls.0;
    if scope != Scope::Workload && !port_level.is_empty() {
        return Err(ctx.err(
            at("portLevelMtls"),
            "only scope workload takes portLevelMtls (as in Istio)",
        ));
    }
    let mode = parse_mode(&ctx, &at("mode"), doc.mode.as_deref())?;
    let mut port_modes = Vec::with_capacity(port_level.len());
    let mut seen = HashSet::new();
    for (port, m) in port_level {
        let field = at(&format!("portLevelMtls[{}]", port.0));
        let p = port_number(&ctx, &field, &port)?;
        if !seen.insert(p) {
            return Err(ctx.err(field, format!("port {p} is listed twice")));
        }
        port_modes.push((
            p,
            parse_mode(&ctx, &format!("{field}.mode"), m.mode.as_deref())?,
        ));
    }
    Ok(PeerAuth {
        name: Arc::from(doc.name),
        scope,
        selector,
        mode,
        ports: port_modes.into(),
    })
}

fn parse_mode(
    ctx: &Ctx<'_>,
    at: &str,
    mode: Option<&str>,
) -> Result<Option<MtlsMode>, PolicyError> {
    match mode {
        None | Some("UNSET") => Ok(None),
        Some("STRICT") => Ok(Some(MtlsMode::Strict)),
        Some("PERMISSIVE") => Ok(Some(MtlsMode::Permissive)),
        Some("DISABLE") => Ok(Some(MtlsMode::Disable)),
        Some(other) => Err(ctx.err(
            at,
            format!("unknown mode {other:?}; use UNSET, STRICT, PERMISSIVE or DISABLE"),
        )),
    }
}

/// A mode and the item that set it (`None`: the STRICT default).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MtlsDecision {
    /// The mode.
    pub mode: MtlsMode,
    /// The `peerAuthentication` item that decided it.
    pub by: Option<Arc<str>>,
}

/// The peer authentication of one workload, per application port.
#[derive(Clone, Debug, Default)]
pub struct PeerAuthentication {
    default: MtlsDecision,
    /// Sorted by port.
    ports: Box<[(u16, MtlsDecision)]>,
}

impl PeerAuthentication {
    /// The mode of the inbound listener forwarding to application `port`.
    pub fn mode(&self, port: u16) -> MtlsMode {
        self.decision(port).mode
    }

    /// The mode for `port` and which item decided it.
    pub fn decision(&self, port: u16) -> &MtlsDecision {
        self.ports
            .binary_search_by_key(&port, |(p, _)| *p)
            .ok()
            .and_then(|i| self.ports.get(i))
            .map_or(&self.default, |(_, d)| d)
    }

    /// Resolves `items` for the workload with `labels` (see the module
    /// docs). Fails closed: a workload selector with labels unknown is
    /// [`PolicyError::LabelsRequired`].
    pub(crate) fn resolve(
        items: &[PeerAuth],
        labels: Option<&Labels>,
    ) -> Result<Self, PolicyError> {
        let first = |scope| items.iter().find(|i| i.scope == scope);
        let mut workload = None;
        for item in items.iter().filter(|i| i.scope == Scope::Workload) {
            let applies = match (&item.selector, labels) {
                (Some(s), _) if !s.needs_labels() => true,
                (Some(s), Some(l)) => s.matches(l),
                (Some(_), None) => {
                    return Err(PolicyError::LabelsRequired {
                        policy: item.name.to_string(),
                    });
                }
                (None, _) => false,
            };
            if applies {
                workload = Some(item);
                break;
            }
        }
        let set = |item: &PeerAuth, mode: Option<MtlsMode>| {
            mode.map(|mode| MtlsDecision {
                mode,
                by: Some(item.name.clone()),
            })
        };
        let default = [workload, first(Scope::Namespace), first(Scope::Mesh)]
            .into_iter()
            .flatten()
            .find_map(|i| set(i, i.mode))
            .unwrap_or_default();
        let mut ports: Vec<_> = workload
            .map(|w| {
                w.ports
                    .iter()
                    .map(|(p, m)| (*p, set(w, *m).unwrap_or_else(|| default.clone())))
                    .collect()
            })
            .unwrap_or_default();
        ports.sort_unstable_by_key(|(p, _)| *p);
        Ok(Self {
            default,
            ports: ports.into(),
        })
    }
}
