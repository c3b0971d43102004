//! The injected proxy's config, derived from the pod's ports and
//! annotations, and checked by the proxy's own config parser.
//!
//! One inbound listener per app TCP `containerPort` (sorted; the
//! annotation `meshid.io/inbound-ports: "8080,9090"` lists the ports
//! instead), on `0.0.0.0:<inbound_port_base + i>`, forwarding to
//! `127.0.0.1:<port>`. The protocol comes from the port name's prefix (a
//! containerPort has no `appProtocol`) (`http` → http; `http2`, `grpc`, `h2c` → http2; else
//! tcp). Outbound listeners come from the JSON list in `meshid.io/outbound`.

use super::InjectError;
use super::config::InjectConfig;
use k8s_openapi::api::core::v1::{ContainerPort, PodSpec};
use meshid_proxy::config::ProxyConfig;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Annotation listing the app ports the sidecar serves inbound.
pub const INBOUND_PORTS: &str = "meshid.io/inbound-ports";
/// Annotation with the outbound listeners (JSON list).
pub const OUTBOUND: &str = "meshid.io/outbound";
/// Where the proxy serves `/healthz`, `/readyz` and `/metrics`.
pub const OPS_LISTEN: &str = "127.0.0.1:15020";
/// The agent socket as the sidecar sees it.
pub const AGENT_SOCKET: &str = "/run/meshid/sockets/agent.sock";
/// The policy file as the sidecar sees it.
pub const POLICY_FILE: &str = "/etc/meshid/policy/policy.yaml";
/// The pod's labels (downward API) as the sidecar sees them.
pub const LABELS_FILE: &str = "/etc/meshid/proxy/labels";
/// Most outbound listeners one annotation may ask for.
const MAX_OUTBOUND: usize = 64;

/// One inbound listener: the sidecar's port and the app's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Inbound {
    /// The port the sidecar listens on (mTLS).
    pub listen: u16,
    /// The app's port it forwards to.
    pub app: u16,
}

/// The generated config: its YAML and the inbound listeners.
#[derive(Clone, Debug)]
pub struct Generated {
    /// The proxy config file.
    pub yaml: String,
    /// The inbound listeners, in order.
    pub inbound: Vec<Inbound>,
}

/// One entry of the `meshid.io/outbound` annotation.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct OutboundAnnotation {
    port: u16,
    upstream: String,
    #[serde(default)]
    server_id: Option<String>,
    #[serde(default)]
    trust_domain: Option<String>,
    #[serde(default)]
    protocol: Option<String>,
}

#[derive(Serialize)]
struct Yaml<'a> {
    identity: IdentityYaml<'a>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    inbound: Vec<InboundYaml>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    outbound: Vec<OutboundYaml>,
    policy: &'a str,
    pod_labels_file: &'a str,
    ops_listen: &'a str,
    access_log: &'a str,
}

#[derive(Serialize)]
struct IdentityYaml<'a> {
    workload_api: SocketYaml<'a>,
}

#[derive(Serialize)]
struct SocketYaml<'a> {
    socket: &'a str,
}

#[derive(Serialize)]
struct InboundYaml {
    listen: String,
    forward_to: String,
    protocol: &'static str,
}

#[derive(Serialize)]
struct OutboundYaml {
    listen: String,
    upstream: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    server_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    trust_domain: Option<String>,
    protocol: String,
}

/// Builds the proxy config of a pod with `spec` and `annotations`; `Ok(None)`
/// when the pod has nothing to proxy (no TCP port, no outbound).
pub fn generate(
    spec: &PodSpec,
    annotations: &BTreeMap<String, String>,
    cfg: &InjectConfig,
) -> Result<Option<Generated>, InjectError> {
    let declared = declared_ports(spec);
    let app_ports: Vec<u16> = match annotations.get(INBOUND_PORTS) {
        Some(list) => parse_port_list(list)?,
        None => declared.keys().copied().collect(),
    };
    let outbound = match annotations.get(OUTBOUND) {
        Some(json) => parse_outbound(json)?,
        None => Vec::new(),
    };
    if app_ports.is_empty() && outbound.is_empty() {
        return Ok(None);
    }
    let mut inbound = Vec::with_capacity(app_ports.len());
    for (i, &app) in app_ports.iter().enumerate() {
        let listen = u16::try_from(i)
            .ok()
            .and_then(|i| cfg.inbound_port_base.checked_add(i))
            .ok_or_else(|| {
                InjectError::Ports(format!(
                    "{} inbound ports do not fit above inbound_port_base {}",
                    app_ports.len(),
                    cfg.inbound_port_base
                ))
            })?;
        inbound.push(Inbound { listen, app });
    }
    check_collisions(&inbound, &outbound, &declared)?;
    let yaml = Yaml {
        identity: IdentityYaml {
            workload_api: SocketYaml {
                socket: AGENT_SOCKET,
            },
        },
        inbound: inbound
            .iter()
            .map(|l| InboundYaml {
                listen: format!("0.0.0.0:{}", l.listen),
                forward_to: format!("127.0.0.1:{}", l.app),
                protocol: declared.get(&l.app).map_or("tcp", |p| protocol_of(p)),
            })
            .collect(),
        outbound: outbound
            .into_iter()
            .map(|o| OutboundYaml {
                listen: format!("127.0.0.1:{}", o.port),
                upstream: o.upstream,
                server_id: o.server_id,
                trust_domain: o.trust_domain,
                protocol: o.protocol.unwrap_or_else(|| "http".into()),
            })
            .collect(),
        policy: POLICY_FILE,
        pod_labels_file: LABELS_FILE,
        ops_listen: OPS_LISTEN,
        access_log: "stdout",
    };
    let yaml = serde_yaml_ng::to_string(&yaml)
        .map_err(|e| InjectError::ProxyConfig(format!("cannot write the proxy config: {e}")))?;
    ProxyConfig::from_yaml(&yaml).map_err(|e| InjectError::ProxyConfig(e.to_string()))?;
    Ok(Some(Generated { yaml, inbound }))
}

/// The app containers' TCP ports by number (the first declaration wins).
fn declared_ports(spec: &PodSpec) -> BTreeMap<u16, &ContainerPort> {
    let mut ports = BTreeMap::new();
    for p in spec
        .containers
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
    {
        let tcp = p.protocol.as_deref().is_none_or(|p| p == "TCP");
        if let (true, Ok(n)) = (tcp, u16::try_from(p.container_port)) {
            ports.entry(n).or_insert(p);
        }
    }
    ports
}

/// The proxy protocol of a declared port, from its name's prefix (Istio's
/// convention; a containerPort has no `appProtocol`).
fn protocol_of(p: &ContainerPort) -> &'static str {
    let name = p.name.as_deref().unwrap_or("").to_ascii_lowercase();
    let prefix = name.split(['-', '_']).next().unwrap_or("");
    match prefix {
        "http2" | "grpc" | "h2c" => "http2",
        "http" => "http",
        _ => "tcp",
    }
}

fn parse_port_list(list: &str) -> Result<Vec<u16>, InjectError> {
    let mut ports = Vec::new();
    for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match item.parse::<u16>() {
            Ok(p) if p != 0 => ports.push(p),
            _ => {
                return Err(InjectError::Annotation(format!(
                    "{INBOUND_PORTS}: {item:?} is not a port; write ports as \"8080,9090\""
                )));
            }
        }
    }
    ports.sort_unstable();
    ports.dedup();
    Ok(ports)
}

fn parse_outbound(json: &str) -> Result<Vec<OutboundAnnotation>, InjectError> {
    let list: Vec<OutboundAnnotation> = serde_json::from_str(json).map_err(|e| {
        InjectError::Annotation(format!(
            "{OUTBOUND} is not a JSON list of {{\"port\", \"upstream\", \"serverId\", \"protocol\"}}: {e}"
        ))
    })?;
    if let Some(o) = list.iter().find(|o| o.port == 0) {
        return Err(InjectError::Annotation(format!(
            "{OUTBOUND}: the listener to {} needs a port other than 0",
            o.upstream
        )));
    }
    if list.len() > MAX_OUTBOUND {
        return Err(InjectError::Annotation(format!(
            "{OUTBOUND} lists {} listeners; at most {MAX_OUTBOUND}",
            list.len()
        )));
    }
    Ok(list)
}

/// Every listener needs its own port, apart from the app's and the ops port.
fn check_collisions(
    inbound: &[Inbound],
    outbound: &[OutboundAnnotation],
    declared: &BTreeMap<u16, &ContainerPort>,
) -> Result<(), InjectError> {
    let ops = 15020;
    let mut taken: BTreeMap<u16, String> = declared
        .keys()
        .map(|&p| (p, format!("app port {p}")))
        .collect();
    for l in inbound {
        taken
            .entry(l.app)
            .or_insert_with(|| format!("app port {}", l.app));
    }
    let mut claim = |port: u16, what: String| match taken.insert(port, what.clone()) {
        Some(other) => Err(InjectError::Ports(format!(
            "port {port} is wanted by both {other} and {what}; move inbound_port_base or the outbound port"
        ))),
        None => Ok(()),
    };
    claim(ops, "the proxy's ops endpoint".into())?;
    for l in inbound {
        claim(
            l.listen,
            format!("the inbound listener for app port {}", l.app),
        )?;
    }
    for o in outbound {
        claim(o.port, format!("outbound listener {}", o.port))?;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
