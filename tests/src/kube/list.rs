//! Lists: selectors, `limit` + `continue` pages, `resourceVersion` and
//! `resourceVersionMatch`.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use super::meta;
use super::selector::{FieldSelector, LabelSelector};
use super::status::ApiError;
use super::store::Store;
use super::verbs::{Call, Query};

/// A continue token: where the previous page ended and the list's version.
fn encode_continue(rv: u64, ns: &str, name: &str) -> String {
    URL_SAFE_NO_PAD.encode(json!({"rv": rv, "ns": ns, "name": name}).to_string())
}

fn decode_continue(token: &str) -> Result<(u64, String, String), ApiError> {
    let bad = || ApiError::bad_request("continue key is not valid");
    let raw = URL_SAFE_NO_PAD.decode(token).map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    let rv = v.get("rv").and_then(Value::as_u64).ok_or_else(bad)?;
    let ns = v.get("ns").and_then(Value::as_str).ok_or_else(bad)?;
    let name = v.get("name").and_then(Value::as_str).ok_or_else(bad)?;
    Ok((rv, ns.to_owned(), name.to_owned()))
}

pub fn parse_rv(s: &str) -> Result<u64, ApiError> {
    s.parse()
        .map_err(|_| ApiError::bad_request(format!("invalid resource version {s:?}")))
}

/// A list, one page of it with `limit`.
pub fn list(store: &Store, call: &Call<'_>, query: &Query) -> Result<Value, ApiError> {
    let res = call.resource;
    let labels = LabelSelector::parse(query.get("labelSelector").unwrap_or_default())?;
    let fields = FieldSelector::parse(query.get("fieldSelector").unwrap_or_default(), res.kind)?;
    let limit = match query.get("limit") {
        None => None,
        Some(l) => Some(
            l.parse::<usize>()
                .map_err(|_| ApiError::bad_request("limit must be a number"))?,
        )
        .filter(|l| *l > 0),
    };
    let rv = query.get("resourceVersion").filter(|s| !s.is_empty());
    let mut list_rv = store.rv();
    let mut after = None;
    if let Some(token) = query.get("continue").filter(|s| !s.is_empty()) {
        if rv.is_some() {
            return Err(ApiError::bad_request(
                "specifying resource version is not allowed when using continue",
            ));
        }
        let (token_rv, ns, name) = decode_continue(token)?;
        if token_rv < store.oldest() {
            return Err(ApiError::expired(
                "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
            ));
        }
        list_rv = token_rv;
        after = Some((ns, name));
    } else {
        match (rv, query.get("resourceVersionMatch")) {
            (None, Some(_)) => {
                return Err(ApiError::bad_request(
                    "resourceVersionMatch is forbidden unless resourceVersion is provided",
                ));
            }
            (Some(rv), Some("Exact")) => {
                let rv = parse_rv(rv)?;
                if rv != store.rv() {
                    return Err(if rv > store.rv() {
                        ApiError::too_large_resource_version(rv)
                    } else {
                        ApiError::expired(format!(
                            "too old resource version: {rv} ({})",
                            store.rv()
                        ))
                    });
                }
            }
            (Some(rv), None | Some("NotOlderThan")) => {
                let rv = parse_rv(rv)?;
                if rv > store.rv() {
                    return Err(ApiError::too_large_resource_version(rv));
                }
            }
            (Some(_), Some(other)) => {
                return Err(ApiError::bad_request(format!(
                    "unknown resourceVersionMatch {other:?}"
                )));
            }
            (None, None) => {}
        }
    }
    let mut matching = store
        .list(res, call.namespace, after)
        .filter(|o| labels.matches(o) && fields.matches(o));
    let items: Vec<Value> = match limit {
        Some(limit) => matching.by_ref().take(limit).cloned().collect(),
        None => matching.by_ref().cloned().collect(),
    };
    let remaining = matching.count();
    let mut metadata = json!({"resourceVersion": list_rv.to_string()});
    if remaining > 0
        && let Some(last) = items.last()
    {
        let ns = meta::meta_str(last, "namespace").unwrap_or_default();
        let name = meta::meta_str(last, "name").unwrap_or_default();
        metadata["continue"] = encode_continue(list_rv, ns, name).into();
        metadata["remainingItemCount"] = remaining.into();
    }
    Ok(json!({
        "apiVersion": res.api_version(),
        "kind": format!("{}List", res.kind),
        "metadata": metadata,
        "items": items,
    }))
}
