//! The Go-template-like placeholders of `ClusterIdentityTemplate` fields
//! and the controller's `parent_id_template`: `{{.PodName}}`,
//! `{{.PodLabels.app}}`, `{{index .PodLabels "app.kubernetes.io/name"}}`.
//!
//! Only field and map look-ups exist, never Go's pipelines, functions or
//! control flow: a template is parsed once ([`Template::parse`]) and
//! refused when it holds anything else, and rendering a pod fails when a
//! map key it names is missing (an entry is never registered with a hole
//! in its SPIFFE ID).

use std::collections::BTreeMap;

/// Longest template accepted, in bytes.
pub const MAX_TEMPLATE_LEN: usize = 4096;

/// A parsed template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Text(String),
    Field(Field),
    Lookup(Map, String),
}

/// The scalar fields a template may name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Field {
    TrustDomain,
    ClusterName,
    Namespace,
    ServiceAccount,
    PodName,
    PodUid,
    NodeName,
    NodeUid,
}

/// The maps a template may index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Map {
    PodLabels,
    PodAnnotations,
    NamespaceLabels,
    NodeLabels,
}

/// What a template is rendered with: one pod, its namespace and node.
#[derive(Clone, Copy, Debug)]
#[allow(missing_docs)]
pub struct Context<'a> {
    pub trust_domain: &'a str,
    pub cluster_name: &'a str,
    pub namespace: &'a str,
    pub service_account: &'a str,
    pub pod_name: &'a str,
    pub pod_uid: &'a str,
    pub node_name: &'a str,
    pub node_uid: &'a str,
    pub pod_labels: &'a BTreeMap<String, String>,
    pub pod_annotations: &'a BTreeMap<String, String>,
    pub namespace_labels: &'a BTreeMap<String, String>,
    pub node_labels: &'a BTreeMap<String, String>,
}

/// Why a template was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TemplateError {
    /// Longer than [`MAX_TEMPLATE_LEN`].
    #[error("template is {0} bytes long; at most {MAX_TEMPLATE_LEN} are accepted")]
    TooLong(usize),
    /// `{{` without its `}}`.
    #[error("`{{{{` at byte {0} is never closed with `}}}}`")]
    Unclosed(usize),
    /// An action that is not a known field or map look-up.
    #[error(
        "unsupported action {{{{{0}}}}}: use one of .TrustDomain .ClusterName .Namespace \
         .ServiceAccount .PodName .PodUID .NodeName .NodeUID, .PodLabels.<key> or \
         index .PodLabels \"<key>\" (also .PodAnnotations, .NamespaceLabels, .NodeLabels)"
    )]
    Unsupported(String),
}

/// Why a pod could not be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RenderError {
    /// A map key the template names is absent.
    #[error("{map} has no key {key:?}")]
    MissingKey {
        /// `PodLabels`, `PodAnnotations`, `NamespaceLabels` or `NodeLabels`.
        map: &'static str,
        /// The key.
        key: String,
    },
    /// A scalar the template names is empty (a pod without a node UID yet).
    #[error(".{0} is empty")]
    Empty(&'static str),
}

// === impl Template ===

impl Template {
    /// Parses `text`.
    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        if text.len() > MAX_TEMPLATE_LEN {
            return Err(TemplateError::TooLong(text.len()));
        }
        let mut parts = Vec::new();
        let mut rest = text;
        let mut offset = 0;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_owned()));
            }
            let inner_start = open + 2;
            let close = rest[inner_start..]
                .find("}}")
                .ok_or(TemplateError::Unclosed(offset + open))?;
            let action = &rest[inner_start..inner_start + close];
            parts.push(parse_action(action)?);
            let consumed = inner_start + close + 2;
            offset += consumed;
            rest = &rest[consumed..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_owned()));
        }
        Ok(Self { parts })
    }

    /// Renders the template for one pod.
    pub fn render(&self, ctx: &Context<'_>) -> Result<String, RenderError> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Field(f) => {
                    let value = f.value(ctx);
                    if value.is_empty() {
                        return Err(RenderError::Empty(f.name()));
                    }
                    out.push_str(value);
                }
                Part::Lookup(map, key) => match map.get(ctx).get(key) {
                    Some(v) => out.push_str(v),
                    None => {
                        return Err(RenderError::MissingKey {
                            map: map.name(),
                            key: key.clone(),
                        });
                    }
                },
            }
        }
        Ok(out)
    }
}

fn parse_action(action: &str) -> Result<Part, TemplateError> {
    let unsupported = || TemplateError::Unsupported(action.to_owned());
    let a = action.trim();
    if let Some(args) = a
        .strip_prefix("index")
        .filter(|r| r.starts_with([' ', '\t']))
    {
        let args = args.trim_start();
        let (map, key) = args
            .split_once(|c: char| c.is_ascii_whitespace())
            .ok_or_else(unsupported)?;
        let map = map
            .strip_prefix('.')
            .and_then(Map::named)
            .ok_or_else(unsupported)?;
        let key = quoted(key.trim()).ok_or_else(unsupported)?;
        return Ok(Part::Lookup(map, key));
    }
    let path = a.strip_prefix('.').ok_or_else(unsupported)?;
    if let Some((map, key)) = path.split_once('.') {
        let map = Map::named(map).ok_or_else(unsupported)?;
        let key_ok = !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !key_ok {
            return Err(unsupported());
        }
        return Ok(Part::Lookup(map, key.to_owned()));
    }
    Field::named(path).map(Part::Field).ok_or_else(unsupported)
}

/// A Go double-quoted string without escapes (label keys need none).
fn quoted(s: &str) -> Option<String> {
    let inner = s.strip_prefix('"')?.strip_suffix('"')?;
    (!inner.is_empty() && !inner.contains(['"', '\\'])).then(|| inner.to_owned())
}

// === impl Field ===

impl Field {
    const ALL: [Field; 8] = [
        Field::TrustDomain,
        Field::ClusterName,
        Field::Namespace,
        Field::ServiceAccount,
        Field::PodName,
        Field::PodUid,
        Field::NodeName,
        Field::NodeUid,
    ];

    fn named(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.name() == name)
    }

    fn name(self) -> &'static str {
        match self {
            Field::TrustDomain => "TrustDomain",
            Field::ClusterName => "ClusterName",
            Field::Namespace => "Namespace",
            Field::ServiceAccount => "ServiceAccount",
            Field::PodName => "PodName",
            Field::PodUid => "PodUID",
            Field::NodeName => "NodeName",
            Field::NodeUid => "NodeUID",
        }
    }

    fn value<'a>(self, ctx: &Context<'a>) -> &'a str {
        match self {
            Field::TrustDomain => ctx.trust_domain,
            Field::ClusterName => ctx.cluster_name,
            Field::Namespace => ctx.namespace,
            Field::ServiceAccount => ctx.service_account,
            Field::PodName => ctx.pod_name,
            Field::PodUid => ctx.pod_uid,
            Field::NodeName => ctx.node_name,
            Field::NodeUid => ctx.node_uid,
        }
    }
}

// === impl Map ===

impl Map {
    fn named(name: &str) -> Option<Self> {
        [
            Map::PodLabels,
            Map::PodAnnotations,
            Map::NamespaceLabels,
            Map::NodeLabels,
        ]
        .into_iter()
        .find(|m| m.name() == name)
    }

    fn name(self) -> &'static str {
        match self {
            Map::PodLabels => "PodLabels",
            Map::PodAnnotations => "PodAnnotations",
            Map::NamespaceLabels => "NamespaceLabels",
            Map::NodeLabels => "NodeLabels",
        }
    }

    fn get<'a>(self, ctx: &Context<'a>) -> &'a BTreeMap<String, String> {
        match self {
            Map::PodLabels => ctx.pod_labels,
            Map::PodAnnotations => ctx.pod_annotations,
            Map::NamespaceLabels => ctx.namespace_labels,
            Map::NodeLabels => ctx.node_labels,
        }
    }
}
