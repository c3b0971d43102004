//! `POST /apis/authentication.k8s.io/v1/tokenreviews`: the API server's
//! service-account authenticator, run on the server's [`SaIssuer`] key and
//! its stored pods. As the real server: `201` with the review and its
//! `status` (a refused token is `authenticated: false` with an `error`, not
//! an HTTP error); an empty `spec.audiences` means the API server's own
//! audience; a token bound to a pod needs that pod, with the same uid.
//! Service accounts and nodes named in the token are not looked up (the
//! caller's checks on them stay observable).

use serde_json::{Value, json};

use super::sa_token::{DEFAULT_ISSUER, SaIssuer};
use super::status::ApiError;
use super::store::Store;
use super::{meta, resources};

/// Extra keys of a pod-bound token's user.
const EXTRA: &str = "authentication.kubernetes.io";

/// Answers one review (the body as the client sent it).
pub fn review(issuer: &SaIssuer, store: &Store, body: &[u8]) -> Result<Value, ApiError> {
    let review: k8s_openapi::api::authentication::v1::TokenReview = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("TokenReview in the body: {e}")))?;
    let token = review.spec.token.clone().unwrap_or_default();
    if token.is_empty() {
        return Err(ApiError::invalid(
            "TokenReview",
            "",
            "spec.token: Required value",
        ));
    }
    let wanted = match review.spec.audiences.clone().unwrap_or_default() {
        a if a.is_empty() => vec![DEFAULT_ISSUER.to_owned()],
        a => a,
    };
    let status = match authenticate(issuer, store, &token, &wanted) {
        Ok(status) => status,
        Err(error) => json!({"authenticated": false, "user": {}, "error": error}),
    };
    Ok(json!({
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenReview",
        "metadata": {"creationTimestamp": null},
        "spec": serde_json::to_value(&review.spec).unwrap_or_default(),
        "status": status,
    }))
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(v, |v, k| v.get(k))?.as_str()
}

fn authenticate(
    issuer: &SaIssuer,
    store: &Store,
    token: &str,
    wanted: &[String],
) -> Result<Value, String> {
    let claims = issuer.verify(token)?;
    let token_aud: Vec<String> = match claims.get("aud") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    };
    let matched: Vec<&String> = wanted.iter().filter(|a| token_aud.contains(a)).collect();
    if matched.is_empty() {
        return Err(format!(
            "[invalid bearer token, token audiences {token_aud:?} is invalid for the target audiences {wanted:?}, unknown]"
        ));
    }
    let k8s = claims.get("kubernetes.io").unwrap_or(&Value::Null);
    let (Some(ns), Some(sa), Some(sa_uid)) = (
        str_at(k8s, &["namespace"]),
        str_at(k8s, &["serviceaccount", "name"]),
        str_at(k8s, &["serviceaccount", "uid"]),
    ) else {
        return Err("invalid bearer token, token has no service-account claims".to_owned());
    };
    let mut extra = serde_json::Map::new();
    if let Some(pod) = k8s.get("pod") {
        let (Some(name), Some(uid)) = (str_at(pod, &["name"]), str_at(pod, &["uid"])) else {
            return Err("invalid bearer token, pod claim without name and uid".to_owned());
        };
        let pods = resources::by_plural("pods").ok_or("no pods resource")?;
        let stored = store
            .get(pods, ns, name)
            .ok_or_else(|| format!("invalid bearer token, pod \"{ns}/{name}\" not found"))?;
        let stored_uid = meta::meta_str(&stored.object, "uid").unwrap_or_default();
        if stored_uid != uid {
            return Err(format!(
                "invalid bearer token, pod uid mismatch: pod \"{ns}/{name}\" is {stored_uid}, the token is bound to {uid}"
            ));
        }
        extra.insert(format!("{EXTRA}/pod-name"), json!([name]));
        extra.insert(format!("{EXTRA}/pod-uid"), json!([uid]));
    }
    if let Some(node) = k8s.get("node") {
        if let Some(name) = str_at(node, &["name"]) {
            extra.insert(format!("{EXTRA}/node-name"), json!([name]));
        }
        if let Some(uid) = str_at(node, &["uid"]) {
            extra.insert(format!("{EXTRA}/node-uid"), json!([uid]));
        }
    }
    if let Some(jti) = claims.get("jti").and_then(Value::as_str) {
        extra.insert(
            format!("{EXTRA}/credential-id"),
            json!([format!("JTI={jti}")]),
        );
    }
    Ok(json!({
        "authenticated": true,
        "user": {
            "username": format!("system:serviceaccount:{ns}:{sa}"),
            "uid": sa_uid,
            "groups": ["system:serviceaccounts", format!("system:serviceaccounts:{ns}"), "system:authenticated"],
            "extra": extra,
        },
        "audiences": matched,
    }))
}
