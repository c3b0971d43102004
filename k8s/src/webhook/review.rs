//! One `admission.k8s.io/v1` AdmissionReview: the request read with
//! kube's types, the answer written here (kube serializes the patch as a
//! list of numbers, where the API server wants base64).

use super::config::InjectConfig;
use super::inject::{Outcome, patch};
use base64::Engine as _;
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionReview, Operation};
use serde::Serialize;

/// What the webhook did with one review, for logs and metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Verdict {
    /// Allowed with the sidecar patch.
    Injected,
    /// Allowed unchanged (not a pod CREATE, opted out, already injected…).
    Skipped,
    /// Refused: the pod cannot be injected as asked.
    Denied,
}

/// The answer to a review: the JSON body and what was decided.
#[derive(Debug)]
pub struct Answer {
    /// The AdmissionReview to send back.
    pub body: Vec<u8>,
    /// What was decided.
    pub verdict: Verdict,
}

/// Why a body is not an AdmissionReview the webhook can answer (no `uid`
/// to answer to): the HTTP answer is 400.
#[derive(Debug, thiserror::Error)]
#[error("not an admission.k8s.io/v1 AdmissionReview request: {0}")]
pub struct BadReview(String);

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ReviewOut {
    api_version: &'static str,
    kind: &'static str,
    response: ResponseOut,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ResponseOut {
    uid: String,
    allowed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<StatusOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    patch: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    patch_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    warnings: Vec<String>,
}

#[derive(Serialize)]
struct StatusOut {
    code: u16,
    message: String,
}

/// Answers the AdmissionReview in `body`.
pub fn answer(body: &[u8], cfg: &InjectConfig) -> Result<Answer, BadReview> {
    let review: AdmissionReview<DynamicObject> =
        serde_json::from_slice(body).map_err(|e| BadReview(e.to_string()))?;
    if review.types.api_version != "admission.k8s.io/v1" || review.types.kind != "AdmissionReview" {
        return Err(BadReview(format!(
            "got {} {}; the webhook speaks admission.k8s.io/v1 only (admissionReviewVersions: [v1])",
            review.types.api_version, review.types.kind
        )));
    }
    let request = review
        .request
        .ok_or_else(|| BadReview("no request".into()))?;
    let mut out = ResponseOut {
        uid: request.uid.clone(),
        allowed: true,
        status: None,
        patch: None,
        patch_type: None,
        warnings: Vec::new(),
    };
    let is_pod = request.kind.group.is_empty() && request.kind.kind == "Pod";
    let verdict = match (&request.object, is_pod, &request.operation) {
        (Some(obj), true, Operation::Create) => {
            let pod = serde_json::to_value(obj).map_err(|e| BadReview(e.to_string()))?;
            let who = format!(
                "{}/{}",
                request.namespace.as_deref().unwrap_or(""),
                pod_name(&pod)
            );
            match patch(&pod, cfg) {
                Ok((_, Some(p))) => {
                    let json = serde_json::to_vec(&p).map_err(|e| BadReview(e.to_string()))?;
                    out.patch = Some(base64::engine::general_purpose::STANDARD.encode(json));
                    out.patch_type = Some("JSONPatch");
                    tracing::info!(pod = %who, "sidecar injected");
                    Verdict::Injected
                }
                Ok((Outcome::Skipped(why), None)) => {
                    tracing::debug!(pod = %who, "not injected: {why}");
                    Verdict::Skipped
                }
                Ok(_) => Verdict::Skipped,
                Err(e) => {
                    tracing::info!(pod = %who, "refused: {e}");
                    out.allowed = false;
                    out.status = Some(StatusOut {
                        code: 400,
                        message: format!("meshid sidecar injection: {e}"),
                    });
                    Verdict::Denied
                }
            }
        }
        _ => Verdict::Skipped,
    };
    let body = serde_json::to_vec(&ReviewOut {
        api_version: "admission.k8s.io/v1",
        kind: "AdmissionReview",
        response: out,
    })
    .map_err(|e| BadReview(e.to_string()))?;
    Ok(Answer { body, verdict })
}

/// The pod's name, or its `generateName` prefix (pods of a ReplicaSet are
/// named by the API server after admission).
fn pod_name(pod: &serde_json::Value) -> String {
    let meta = &pod["metadata"];
    meta["name"]
        .as_str()
        .or_else(|| meta["generateName"].as_str())
        .unwrap_or("")
        .to_owned()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
