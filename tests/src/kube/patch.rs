//! The patch content types, and the merge and JSON patches (apply is in
//! [`apply`](super::apply)).

use serde_json::Value;

use super::meta;
use super::resources::Resource;
use super::status::ApiError;
use super::store::{Part, Store};

/// The patch types the server takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchType {
    /// `application/apply-patch+yaml`: server-side apply.
    Apply,
    /// `application/merge-patch+json` (RFC 7386).
    Merge,
    /// `application/strategic-merge-patch+json`, treated as a merge patch.
    Strategic,
    /// `application/json-patch+json` (RFC 6902).
    Json,
}

impl PatchType {
    /// The patch type of a `Content-Type`.
    pub fn from_content_type(ct: &str) -> Result<Self, ApiError> {
        match ct.split(';').next().unwrap_or_default().trim() {
            "application/apply-patch+yaml" => Ok(Self::Apply),
            "application/merge-patch+json" => Ok(Self::Merge),
            "application/strategic-merge-patch+json" => Ok(Self::Strategic),
            "application/json-patch+json" => Ok(Self::Json),
            other => Err(ApiError::unsupported_media_type(other)),
        }
    }
}

/// A merge or JSON patch of `res/ns/name` (not apply).
pub fn patch(
    store: &mut Store,
    res: &'static Resource,
    ns: &str,
    name: &str,
    kind: PatchType,
    body: &[u8],
    part: Part,
) -> Result<Value, ApiError> {
    let Some(stored) = store.get(res, ns, name) else {
        return Err(ApiError::not_found(res.plural, name));
    };
    let mut obj = stored.object.clone();
    let current_rv = meta::meta_str(&obj, "resourceVersion").map(str::to_owned);
    match kind {
        PatchType::Merge | PatchType::Strategic => {
            let p: Value = serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("invalid merge patch: {e}")))?;
            if !p.is_object() {
                return Err(ApiError::bad_request("a merge patch must be a JSON object"));
            }
            json_patch::merge(&mut obj, &p);
        }
        PatchType::Json => {
            let p: json_patch::Patch = serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}")))?;
            json_patch::patch(&mut obj, &p).map_err(|e| {
                ApiError::invalid(
                    res.kind,
                    name,
                    format!("the JSON patch cannot be applied: {e}"),
                )
            })?;
        }
        PatchType::Apply => return Err(ApiError::bad_request("apply is not a merge patch")),
    }
    if meta::meta_str(&obj, "resourceVersion").map(str::to_owned) != current_rv {
        return Err(ApiError::conflict(
            res.plural,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        ));
    }
    check_type(&obj, res)?;
    if meta::meta_str(&obj, "name") != Some(name) {
        return Err(ApiError::bad_request(
            "metadata.name cannot be changed by a patch",
        ));
    }
    store.replace(res, ns, name, obj, part, None)
}

/// `apiVersion` and `kind`, when set, must be the resource's.
pub fn check_type(obj: &Value, res: &Resource) -> Result<(), ApiError> {
    let api_version = obj.get("apiVersion").and_then(Value::as_str);
    let kind = obj.get("kind").and_then(Value::as_str);
    if api_version.is_some_and(|v| v != res.api_version()) || kind.is_some_and(|k| k != res.kind) {
        return Err(ApiError::bad_request(format!(
            "the object's apiVersion/kind ({}/{}) is not {} {}",
            api_version.unwrap_or_default(),
            kind.unwrap_or_default(),
            res.api_version(),
            res.kind
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_patch_types_are_415() {
        assert_eq!(
            PatchType::from_content_type("application/json").map_err(|e| e.code),
            Err(415)
        );
        assert_eq!(
            PatchType::from_content_type("application/apply-patch+yaml; charset=utf-8"),
            Ok(PatchType::Apply)
        );
    }
}
