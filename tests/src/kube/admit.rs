//! Mutating admission as the API server does it for a pod CREATE: the
//! stored MutatingWebhookConfigurations are matched (rules,
//! `namespaceSelector`, `objectSelector`), each matching webhook gets an
//! `admission.k8s.io/v1` AdmissionReview over HTTPS (server name
//! `<service>.<namespace>.svc`, verified against `clientConfig.caBundle`),
//! its `response.uid` is checked and its base64 JSONPatch applied;
//! `failurePolicy` and `timeoutSeconds` decide what a failed call means.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};

use super::meta;
use super::selector::LabelSelector;

/// The default and the largest `timeoutSeconds` (the real server's).
const DEFAULT_TIMEOUT: u64 = 10;
const MAX_TIMEOUT: u64 = 30;

/// The largest AdmissionReview response read.
const MAX_RESPONSE: usize = 4 << 20;

/// Why a pod was not admitted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdmitError {
    /// A webhook answered `allowed: false`.
    #[error("admission webhook {webhook:?} denied the request: {message}")]
    Denied {
        /// The webhook's name.
        webhook: String,
        /// `response.status.message`.
        message: String,
        /// `response.status.code`, when given.
        code: Option<u16>,
    },
    /// Calling a webhook with `failurePolicy: Fail` failed (unreachable,
    /// TLS, timeout, a bad response or patch).
    #[error("failed calling webhook {webhook:?}: {reason}")]
    Failed {
        /// The webhook's name.
        webhook: String,
        /// What went wrong.
        reason: String,
    },
    /// The request or a configuration cannot be admitted at all (no such
    /// namespace, a webhook configuration the fake cannot evaluate).
    #[error("{0}")]
    Invalid(String),
}

/// One webhook of a configuration, with what the call needs.
struct Hook<'a> {
    name: String,
    spec: &'a Value,
}

/// Admits `pod` into `namespace` through the `configs` (sorted by name) as
/// the real server does; `services` maps `host:port` of a webhook (service
/// `name.namespace.svc:port`, or a `url`'s host and port) to the loopback
/// address that serves it.
pub async fn admit(
    configs: &[Value],
    namespace: &Value,
    mut pod: Value,
    services: &BTreeMap<String, SocketAddr>,
) -> Result<Value, AdmitError> {
    let ns_name = meta::meta_str(namespace, "name")
        .unwrap_or_default()
        .to_owned();
    let Ok(m) = meta::metadata_mut(&mut pod) else {
        return Err(AdmitError::Invalid("the pod must be a JSON object".into()));
    };
    match m.get("namespace").and_then(Value::as_str) {
        Some(ns) if ns != ns_name => {
            return Err(AdmitError::Invalid(format!(
                "the namespace of the provided object ({ns}) does not match the namespace sent on the request ({ns_name})"
            )));
        }
        _ => {
            m.insert("namespace".into(), ns_name.clone().into());
        }
    }
    for config in configs {
        let hooks = config
            .get("webhooks")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        for spec in hooks {
            let hook = Hook {
                name: spec
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                spec,
            };
            if !hook.matches(namespace, &pod)? {
                continue;
            }
            match hook.call(&pod, &ns_name, services).await {
                Ok(Outcome::Patched(p)) => pod = p,
                Ok(Outcome::Unchanged) => {}
                Err(Call::Denied(message, code)) => {
                    return Err(AdmitError::Denied {
                        webhook: hook.name,
                        message,
                        code,
                    });
                }
                Err(Call::Failed(reason)) => {
                    if spec.get("failurePolicy").and_then(Value::as_str) == Some("Ignore") {
                        continue;
                    }
                    return Err(AdmitError::Failed {
                        webhook: hook.name,
                        reason,
                    });
                }
            }
        }
    }
    Ok(pod)
}

enum Outcome {
    Patched(Value),
    Unchanged,
}

enum Call {
    Denied(String, Option<u16>),
    Failed(String),
}

fn has(list: Option<&Value>, want: &[&str]) -> bool {
    list.and_then(Value::as_array).is_some_and(|l| {
        l.iter()
            .filter_map(Value::as_str)
            .any(|v| want.contains(&v))
    })
}

impl Hook<'_> {
    /// Rules (CREATE of core v1 pods), then the namespace and object
    /// selectors.
    fn matches(&self, namespace: &Value, pod: &Value) -> Result<bool, AdmitError> {
        if self
            .spec
            .get("matchConditions")
            .and_then(Value::as_array)
            .is_some_and(|c| !c.is_empty())
        {
            return Err(AdmitError::Invalid(format!(
                "webhook {:?}: matchConditions (CEL) are not supported by the fake API server",
                self.name
            )));
        }
        let rules = self
            .spec
            .get("rules")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let rule_matches = rules.iter().any(|r| {
            has(r.get("operations"), &["CREATE", "*"])
                && has(r.get("apiGroups"), &["", "*"])
                && has(r.get("apiVersions"), &["v1", "*"])
                && has(r.get("resources"), &["pods", "*", "*/*"])
                && matches!(
                    r.get("scope").and_then(Value::as_str),
                    None | Some("*" | "Namespaced")
                )
        });
        if !rule_matches {
            return Ok(false);
        }
        let selector = |field: &str| {
            LabelSelector::from_object(self.spec.get(field).unwrap_or(&Value::Null))
                .map_err(|e| AdmitError::Invalid(format!("webhook {:?}: {field}: {e}", self.name)))
        };
        Ok(selector("namespaceSelector")?.matches(namespace)
            && selector("objectSelector")?.matches(pod))
    }

    async fn call(
        &self,
        pod: &Value,
        namespace: &str,
        services: &BTreeMap<String, SocketAddr>,
    ) -> Result<Outcome, Call> {
        let versions = self.spec.get("admissionReviewVersions");
        if !has(versions, &["v1"]) {
            return Err(Call::Failed(
                "admissionReviewVersions does not include v1".into(),
            ));
        }
        let secs = self
            .spec
            .get("timeoutSeconds")
            .and_then(Value::as_u64)
            .unwrap_or(DEFAULT_TIMEOUT)
            .clamp(1, MAX_TIMEOUT);
        let uid = meta::uid();
        let gvk = json!({"group": "", "version": "v1", "kind": "Pod"});
        let gvr = json!({"group": "", "version": "v1", "resource": "pods"});
        let mut request = json!({
            "uid": uid, "kind": gvk, "resource": gvr, "requestKind": gvk, "requestResource": gvr,
            "namespace": namespace, "operation": "CREATE",
            "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller",
                         "groups": ["system:serviceaccounts", "system:serviceaccounts:kube-system", "system:authenticated"]},
            "object": pod, "oldObject": null, "dryRun": false,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
        });
        if let Some(name) = meta::meta_str(pod, "name").filter(|n| !n.is_empty()) {
            request["name"] = name.into();
        }
        let review = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request});
        let body = tokio::time::timeout(Duration::from_secs(secs), self.post(&review, services))
            .await
            .map_err(|_| Call::Failed(format!("context deadline exceeded after {secs}s")))?
            .map_err(Call::Failed)?;
        let answer: Value = serde_json::from_slice(&body)
            .map_err(|e| Call::Failed(format!("the response is not JSON: {e}")))?;
        if answer.get("apiVersion").and_then(Value::as_str) != Some("admission.k8s.io/v1")
            || answer.get("kind").and_then(Value::as_str) != Some("AdmissionReview")
        {
            return Err(Call::Failed(
                "the response is not an admission.k8s.io/v1 AdmissionReview".into(),
            ));
        }
        let Some(response) = answer.get("response") else {
            return Err(Call::Failed("the AdmissionReview has no response".into()));
        };
        if response.get("uid").and_then(Value::as_str) != Some(uid.as_str()) {
            return Err(Call::Failed(format!(
                "expected response.uid={uid:?}, got {:?}",
                response.get("uid")
            )));
        }
        let Some(allowed) = response.get("allowed").and_then(Value::as_bool) else {
            return Err(Call::Failed("response.allowed is missing".into()));
        };
        if !allowed {
            let message = response
                .pointer("/status/message")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let code = response
                .pointer("/status/code")
                .and_then(Value::as_u64)
                .and_then(|c| u16::try_from(c).ok());
            return Err(Call::Denied(message.to_owned(), code));
        }
        let Some(patch) = response.get("patch").and_then(Value::as_str) else {
            return Ok(Outcome::Unchanged);
        };
        if response.get("patchType").and_then(Value::as_str) != Some("JSONPatch") {
            return Err(Call::Failed("a patch needs patchType JSONPatch".into()));
        }
        let raw = STANDARD
            .decode(patch)
            .map_err(|e| Call::Failed(format!("the patch is not base64: {e}")))?;
        let ops: json_patch::Patch = serde_json::from_slice(&raw)
            .map_err(|e| Call::Failed(format!("the patch is not a JSON patch: {e}")))?;
        let mut patched = pod.clone();
        json_patch::patch(&mut patched, &ops)
            .map_err(|e| Call::Failed(format!("applying the patch: {e}")))?;
        Ok(Outcome::Patched(patched))
    }

    /// POSTs the review to the webhook's endpoint over TLS; the body of a
    /// 200 answer.
    async fn post(
        &self,
        review: &Value,
        services: &BTreeMap<String, SocketAddr>,
    ) -> Result<Bytes, String> {
        let cc = self.spec.get("clientConfig").ok_or("no clientConfig")?;
        let (host, port, path) = endpoint(cc)?;
        let key = format!("{host}:{port}");
        let addr = match services.get(&key) {
            Some(a) => *a,
            None => key.parse::<SocketAddr>().map_err(|_| {
                format!("no route to {key} (map it with FakeApiServer::map_service)")
            })?,
        };
        let pem = cc
            .get("caBundle")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let pem = STANDARD
            .decode(pem)
            .map_err(|e| format!("caBundle is not base64: {e}"))?;
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| format!("caBundle: {e}"))?;
            roots.add(cert).map_err(|e| format!("caBundle: {e}"))?;
        }
        if roots.is_empty() {
            return Err("caBundle holds no certificate (the fake has no system roots)".into());
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let name =
            ServerName::try_from(host.clone()).map_err(|e| format!("server name {host:?}: {e}"))?;
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("dial {addr}: {e}"))?;
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .map_err(|e| format!("tls: {e}"))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| e.to_string())?;
        let driver = tokio::spawn(conn);
        let body = serde_json::to_vec(review).map_err(|e| e.to_string())?;
        let req = http::Request::post(&path)
            .header(http::header::HOST, &key)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::ACCEPT, "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
        let status = resp.status();
        let bytes = Limited::new(resp.into_body(), MAX_RESPONSE)
            .collect()
            .await
            .map_err(|e| format!("reading the response: {e}"))?
            .to_bytes();
        driver.abort();
        if status != http::StatusCode::OK {
            return Err(format!("the webhook answered {status}"));
        }
        Ok(bytes)
    }
}

/// Host (the TLS server name), port and path of a `clientConfig`.
fn endpoint(cc: &Value) -> Result<(String, u16, String), String> {
    if let Some(svc) = cc.get("service") {
        let name = svc
            .get("name")
            .and_then(Value::as_str)
            .ok_or("service.name missing")?;
        let ns = svc
            .get("namespace")
            .and_then(Value::as_str)
            .ok_or("service.namespace missing")?;
        let port = svc.get("port").and_then(Value::as_u64).unwrap_or(443);
        let port = u16::try_from(port).map_err(|_| "service.port out of range")?;
        let path = svc.get("path").and_then(Value::as_str).unwrap_or("/");
        return Ok((format!("{name}.{ns}.svc"), port, path.to_owned()));
    }
    let url = cc
        .get("url")
        .and_then(Value::as_str)
        .ok_or("clientConfig needs service or url")?;
    let uri: http::Uri = url.parse().map_err(|e| format!("url {url:?}: {e}"))?;
    if uri.scheme_str() != Some("https") {
        return Err(format!("url {url:?} must be https"));
    }
    let host = uri
        .host()
        .ok_or("url without a host")?
        .trim_matches(['[', ']'])
        .to_owned();
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    Ok((host, uri.port_u16().unwrap_or(443), path))
}
