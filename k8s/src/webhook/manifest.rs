//! Offline injection (`meshid k8s inject -f`, like `istioctl kube-inject`):
//! a Pod, or the pod template of a Deployment, StatefulSet, DaemonSet,
//! ReplicaSet, Job or CronJob; one or more YAML documents. Other objects
//! (Services, ServiceAccounts…) pass through unchanged, so a whole
//! application manifest can be piped through.

use super::InjectError;
use super::config::InjectConfig;
use super::inject::{Outcome, inject};
use serde::Deserialize;
use serde_json::Value;

/// Largest manifest accepted, in bytes.
pub const MAX_MANIFEST: usize = 4 * 1024 * 1024;

/// Injects every pod (template) of the YAML documents in `text`; returns
/// the documents as YAML and what happened to each.
pub fn inject_manifests(
    text: &str,
    cfg: &InjectConfig,
) -> Result<(String, Vec<Outcome>), InjectError> {
    if text.len() > MAX_MANIFEST {
        return Err(InjectError::Pod(format!(
            "the manifest is larger than {MAX_MANIFEST} bytes"
        )));
    }
    let mut out = Vec::new();
    let mut outcomes = Vec::new();
    for (i, doc) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let mut obj = Value::deserialize(doc)
            .map_err(|e| InjectError::Pod(format!("document {}: {e}", i + 1)))?;
        if obj.is_null() {
            continue;
        }
        outcomes.push(inject_object(&mut obj, cfg).map_err(|e| e.in_document(i + 1))?);
        out.push(
            serde_yaml_ng::to_string(&obj)
                .map_err(|e| InjectError::Pod(format!("document {}: {e}", i + 1)))?,
        );
    }
    if out.is_empty() {
        return Err(InjectError::Pod("the manifest holds no object".into()));
    }
    Ok((out.join("---\n"), outcomes))
}

/// Injects the pod (template) of one object.
pub fn inject_object(obj: &mut Value, cfg: &InjectConfig) -> Result<Outcome, InjectError> {
    let kind = obj
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let path: &[&str] = match kind.as_str() {
        "Pod" => &[],
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Job" => &["spec", "template"],
        "CronJob" => &["spec", "jobTemplate", "spec", "template"],
        "" => {
            return Err(InjectError::Pod(
                "an object without `kind`; is this a Kubernetes manifest?".into(),
            ));
        }
        other => return Ok(Outcome::Skipped(format!("a {other} has no pod template"))),
    };
    let mut pod = &mut *obj;
    for key in path {
        pod = pod
            .get_mut(*key)
            .ok_or_else(|| InjectError::Pod(format!("{kind} without {}", path.join("."))))?;
    }
    inject(pod, cfg)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn templates_of_workloads_are_injected_and_others_passed_through() {
        let cfg = InjectConfig::default();
        let deployment = r#"
apiVersion: apps/v1
kind: Deployment
metadata: { name: web }
spec:
  selector: { matchLabels: { app: web } }
  template:
    metadata: { labels: { app: web } }
    spec:
      containers:
        - { name: web, image: web, ports: [{ containerPort: 8080, name: http }] }
---
apiVersion: v1
kind: Service
metadata: { name: web }
"#;
        let (yaml, outcomes) = inject_manifests(deployment, &cfg).unwrap();
        assert_eq!(
            outcomes,
            [
                Outcome::Injected,
                Outcome::Skipped("a Service has no pod template".into())
            ]
        );
        let err = inject_manifests("a: 1\n---\nb: 2\n", &cfg).unwrap_err();
        assert!(err.to_string().contains("document 1"), "{err}");
        let doc = yaml.split("---\n").next().unwrap();
        let v: Value = serde_yaml_ng::from_str(doc).unwrap();
        let init = &v["spec"]["template"]["spec"]["initContainers"][0];
        assert_eq!(init["name"], "meshid-proxy");
        assert_eq!(init["ports"][0]["name"], "mesh-8080");
    }
}
