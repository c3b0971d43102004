//! Injecting the sidecar into one pod (or pod template), as JSON.
//!
//! The pod is read through k8s-openapi's types but changed as JSON, so a
//! field those types do not know survives untouched and the JSON Patch
//! ([`patch`]) only adds.

use super::InjectError;
use super::config::InjectConfig;
use super::proxy_config;
use super::sidecar::{self, CONTAINER, PROXY_CONFIG_ANNOTATION};
use k8s_openapi::api::core::v1::PodSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::{Map, Value};

/// Set on every injected pod; a pod carrying it is never injected again.
pub const STATUS_ANNOTATION: &str = "meshid.io/status";
/// Label or annotation that turns injection off for a pod (`"false"`).
pub const INJECT_KEY: &str = "meshid.io/inject";

/// What injection did to a pod.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// The sidecar was added.
    Injected,
    /// The pod is left as it is, for this reason.
    Skipped(String),
}

/// Adds the sidecar to `pod` (an object with `metadata` and `spec`: a Pod
/// or a workload's pod template) in place.
pub fn inject(pod: &mut Value, cfg: &InjectConfig) -> Result<Outcome, InjectError> {
    let meta: ObjectMeta = match pod.get("metadata") {
        Some(m) => serde_json::from_value(m.clone())
            .map_err(|e| InjectError::Pod(format!("metadata: {e}")))?,
        None => ObjectMeta::default(),
    };
    let spec: PodSpec = serde_json::from_value(pod.get("spec").cloned().unwrap_or(Value::Null))
        .map_err(|e| InjectError::Pod(format!("spec: {e}")))?;
    let annotations = meta.annotations.unwrap_or_default();
    let labels = meta.labels.unwrap_or_default();
    let already = annotations.contains_key(STATUS_ANNOTATION)
        || spec
            .init_containers
            .iter()
            .flatten()
            .any(|c| c.name == CONTAINER);
    if already {
        return Ok(Outcome::Skipped("already injected".into()));
    }
    let disabled = |m: &std::collections::BTreeMap<String, String>| {
        m.get(INJECT_KEY).is_some_and(|v| v == "false")
    };
    if disabled(&annotations) || disabled(&labels) {
        return Ok(Outcome::Skipped(format!("{INJECT_KEY} is \"false\"")));
    }
    if spec.host_network == Some(true) {
        return Ok(Outcome::Skipped(
            "hostNetwork pods share the node's ports".into(),
        ));
    }
    let volumes = sidecar::volumes(cfg);
    for v in spec.volumes.iter().flatten() {
        if volumes.iter().any(|ours| ours.name == v.name) {
            return Err(InjectError::Conflict(format!(
                "the pod already has a volume named {:?}, which the sidecar needs; rename it",
                v.name
            )));
        }
    }
    let Some(generated) = proxy_config::generate(&spec, &annotations, cfg)? else {
        return Ok(Outcome::Skipped(format!(
            "nothing to proxy: no TCP containerPort and no {} annotation",
            proxy_config::OUTBOUND
        )));
    };
    let container = to_json(&sidecar::container(cfg, &generated.inbound))?;
    let root = pod
        .as_object_mut()
        .ok_or_else(|| InjectError::Pod("not a JSON object".into()))?;
    let spec = object_at(root, "spec")?;
    array_at(spec, "initContainers")?.insert(0, container);
    let list = array_at(spec, "volumes")?;
    for v in &volumes {
        list.push(to_json(v)?);
    }
    let meta = object_at(root, "metadata")?;
    let annotations = object_at(meta, "annotations")?;
    annotations.insert(STATUS_ANNOTATION.into(), "injected".into());
    annotations.insert(PROXY_CONFIG_ANNOTATION.into(), generated.yaml.into());
    Ok(Outcome::Injected)
}

/// The JSON Patch (RFC 6902) that injects the sidecar into `pod`, or
/// `None` with the reason when it is left as it is.
pub fn patch(
    pod: &Value,
    cfg: &InjectConfig,
) -> Result<(Outcome, Option<json_patch::Patch>), InjectError> {
    let mut injected = pod.clone();
    match inject(&mut injected, cfg)? {
        Outcome::Injected => Ok((Outcome::Injected, Some(json_patch::diff(pod, &injected)))),
        skipped => Ok((skipped, None)),
    }
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<Value, InjectError> {
    serde_json::to_value(v).map_err(|e| InjectError::Pod(e.to_string()))
}

/// The object under `key` of `obj` (created when absent or null).
fn object_at<'a>(
    obj: &'a mut Map<String, Value>,
    key: &str,
) -> Result<&'a mut Map<String, Value>, InjectError> {
    let slot = obj.entry(key).or_insert_with(|| Value::Object(Map::new()));
    if slot.is_null() {
        *slot = Value::Object(Map::new());
    }
    slot.as_object_mut()
        .ok_or_else(|| InjectError::Pod(format!("{key} is not an object")))
}

/// The array under `key` of `obj` (created when absent or null).
fn array_at<'a>(
    obj: &'a mut Map<String, Value>,
    key: &str,
) -> Result<&'a mut Vec<Value>, InjectError> {
    let slot = obj.entry(key).or_insert_with(|| Value::Array(Vec::new()));
    if slot.is_null() {
        *slot = Value::Array(Vec::new());
    }
    slot.as_array_mut()
        .ok_or_else(|| InjectError::Pod(format!("{key} is not a list")))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
