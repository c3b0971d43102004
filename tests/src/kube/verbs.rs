//! The verbs on a resource: get, list, watch, create, update, patch,
//! delete, each on the store as the real server does them.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch as tokio_watch};

use super::apply;
use super::list::{self, parse_rv};
use super::meta;
use super::patch::{self, PatchType};
use super::resources::{self, Resource};
use super::route::Target;
use super::selector::{FieldSelector, LabelSelector};
use super::status::ApiError;
use super::store::{Part, Store};
use super::watch::{self, WatchSpec};

/// The query parameters of a request.
#[derive(Debug, Default)]
pub struct Query(BTreeMap<String, String>);

impl Query {
    /// Parses a URL query string.
    pub fn parse(query: &str) -> Self {
        Self(
            form_urlencoded::parse(query.as_bytes())
                .into_owned()
                .collect(),
        )
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    pub fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("true" | "1"))
    }
}

/// What the server answers.
#[derive(Debug)]
pub enum Reply {
    /// A JSON body with this HTTP status.
    Json(u16, Value),
    /// A watch stream.
    Watch(mpsc::Receiver<Bytes>),
}

/// A request, resolved to the resource it is about.
#[derive(Debug)]
pub struct Call<'a> {
    /// The resource.
    pub resource: &'static Resource,
    /// The namespace (`None`: cluster-scoped, or every namespace).
    pub namespace: Option<&'a str>,
    /// The object's name.
    pub name: Option<&'a str>,
    /// Which part a write changes (`/status` or the main resource).
    pub part: Part,
    /// The client asked for `PartialObjectMetadata` (kube's
    /// `*_metadata` calls and metadata watchers).
    pub metadata_only: bool,
}

/// The Kubernetes verb of a request (for the log).
pub fn verb(method: &http::Method, target: &Target, query: &Query) -> &'static str {
    match (method.as_str(), target.name.is_some()) {
        ("GET", true) => "get",
        ("GET", false) if query.flag("watch") => "watch",
        ("GET", false) => "list",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        _ => "unknown",
    }
}

/// Resolves a path's target to a served resource (404 otherwise).
pub fn resolve<'a>(target: &'a Target, accept: &str) -> Result<Call<'a>, ApiError> {
    let path = format!("{}/{}/{}", target.group, target.version, target.plural);
    let res = resources::by_path(&target.group, &target.version, &target.plural)
        .ok_or_else(|| ApiError::no_route(&path))?;
    if !res.namespaced && target.namespace.is_some() {
        return Err(ApiError::no_route(&path));
    }
    let part = match target.sub.as_deref() {
        None => Part::Main,
        Some("status") if res.status => Part::Status,
        Some(sub) => return Err(ApiError::no_route(&format!("{path}/{sub}"))),
    };
    Ok(Call {
        resource: res,
        namespace: target.namespace.as_deref(),
        name: target.name.as_deref(),
        part,
        metadata_only: accept.contains("as=PartialObjectMetadata"),
    })
}

/// What a request brings besides its path.
#[derive(Debug)]
pub struct Input<'a> {
    /// The HTTP method.
    pub method: &'a http::Method,
    /// The query parameters.
    pub query: &'a Query,
    /// `Content-Type`.
    pub content_type: &'a str,
    /// The (bounded) body.
    pub body: &'a [u8],
}

/// Runs a request on the store.
pub fn handle(
    store: &mut Store,
    stop: &tokio_watch::Receiver<u64>,
    call: &Call<'_>,
    input: &Input<'_>,
) -> Result<Reply, ApiError> {
    if input.query.get("dryRun").is_some() {
        return Err(ApiError::bad_request(
            "dryRun is not supported by the fake API server",
        ));
    }
    let res = call.resource;
    let reply = dispatch(store, stop, call, input)?;
    Ok(match reply {
        Reply::Json(code, v) if call.metadata_only && v.get("items").is_some() => {
            let items: Vec<Value> = v["items"]
                .as_array()
                .map(|i| i.iter().map(partial).collect())
                .unwrap_or_default();
            Reply::Json(
                code,
                json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadataList",
                                     "metadata": v["metadata"], "items": items}),
            )
        }
        Reply::Json(code, v)
            if call.metadata_only && v.get("kind").and_then(Value::as_str) == Some(res.kind) =>
        {
            Reply::Json(code, partial(&v))
        }
        other => other,
    })
}

/// An object as `meta.k8s.io/v1` `PartialObjectMetadata`.
pub fn partial(obj: &Value) -> Value {
    json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata", "metadata": obj["metadata"]})
}

fn dispatch(
    store: &mut Store,
    stop: &tokio_watch::Receiver<u64>,
    call: &Call<'_>,
    input: &Input<'_>,
) -> Result<Reply, ApiError> {
    let Input {
        method,
        query,
        content_type,
        body,
    } = *input;
    let res = call.resource;
    let ns = call.namespace.unwrap_or_default();
    match (method.as_str(), call.name) {
        ("GET", None) if query.flag("watch") => watch(store, stop, call, query),
        ("GET", None) => list::list(store, call, query).map(|v| Reply::Json(200, v)),
        ("GET", Some(name)) => store
            .get(res, ns, name)
            .map(|s| Reply::Json(200, s.object.clone()))
            .ok_or_else(|| ApiError::not_found(res.plural, name)),
        ("POST", None)
            if call.part == Part::Main && (call.namespace.is_some() || !res.namespaced) =>
        {
            let obj = json_body(body, content_type)?;
            patch::check_type(&obj, res)?;
            store
                .create(res, ns, obj, Part::Main, Default::default())
                .map(|v| Reply::Json(201, v))
        }
        ("PUT", Some(name)) => {
            let obj = json_body(body, content_type)?;
            patch::check_type(&obj, res)?;
            update(store, call, name, obj).map(|v| Reply::Json(200, v))
        }
        ("PATCH", Some(name)) => {
            let kind = PatchType::from_content_type(content_type)?;
            if kind == PatchType::Apply {
                let applied: Value = serde_yaml_ng::from_slice(body).map_err(|e| {
                    ApiError::bad_request(format!("the apply patch is not YAML/JSON: {e}"))
                })?;
                let existed = store.get(res, ns, name).is_some();
                let manager = query.get("fieldManager").unwrap_or_default();
                apply::apply(
                    store,
                    res,
                    ns,
                    name,
                    manager,
                    query.flag("force"),
                    applied,
                    call.part,
                )
                .map(|v| Reply::Json(if existed { 200 } else { 201 }, v))
            } else {
                patch::patch(store, res, ns, name, kind, body, call.part)
                    .map(|v| Reply::Json(200, v))
            }
        }
        ("DELETE", Some(name)) if call.part == Part::Main => {
            let opts: Value = if body.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(body)
                    .map_err(|e| ApiError::bad_request(format!("DeleteOptions: {e}")))?
            };
            let rv = opts
                .pointer("/preconditions/resourceVersion")
                .and_then(Value::as_str);
            let uid = opts.pointer("/preconditions/uid").and_then(Value::as_str);
            store
                .delete(res, ns, name, rv, uid)
                .map(|v| Reply::Json(200, v))
        }
        (m, _) => Err(ApiError::method_not_allowed(format!(
            "{m} is not supported on this path of {}",
            res.plural
        ))),
    }
}

fn json_body(body: &[u8], content_type: &str) -> Result<Value, ApiError> {
    let ct = content_type.split(';').next().unwrap_or_default().trim();
    if !ct.is_empty() && ct != "application/json" {
        return Err(ApiError::unsupported_media_type(ct));
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the body is not a JSON object: {e}")))
}

/// PUT: the object replaces the stored one if its resourceVersion (when
/// set) is the stored one.
fn update(store: &mut Store, call: &Call<'_>, name: &str, obj: Value) -> Result<Value, ApiError> {
    let res = call.resource;
    let ns = call.namespace.unwrap_or_default();
    if let Some(body_name) = meta::meta_str(&obj, "name").filter(|n| *n != name) {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({name})"
        )));
    }
    let Some(stored) = store.get(res, ns, name) else {
        return Err(ApiError::not_found(res.plural, name));
    };
    let sent = meta::meta_str(&obj, "resourceVersion").unwrap_or_default();
    if !sent.is_empty() && meta::meta_str(&stored.object, "resourceVersion") != Some(sent) {
        return Err(ApiError::conflict(
            res.plural,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        ));
    }
    store.replace(res, ns, name, obj, call.part, None)
}

fn watch(
    store: &Store,
    stop: &tokio_watch::Receiver<u64>,
    call: &Call<'_>,
    query: &Query,
) -> Result<Reply, ApiError> {
    let res = call.resource;
    let rv = match query.get("resourceVersion").filter(|s| !s.is_empty()) {
        None | Some("0") => None,
        Some(rv) => Some(parse_rv(rv)?),
    };
    let timeout = match query.get("timeoutSeconds") {
        None => None,
        // 0 is no timeout of its own (the server's limit), as in the real server.
        Some(t) => Some(Duration::from_secs(t.parse().map_err(|_| {
            ApiError::bad_request("timeoutSeconds must be a number")
        })?))
        .filter(|d| !d.is_zero()),
    };
    let spec = WatchSpec {
        resource: res,
        namespace: call.namespace.map(str::to_owned),
        labels: LabelSelector::parse(query.get("labelSelector").unwrap_or_default())?,
        fields: FieldSelector::parse(query.get("fieldSelector").unwrap_or_default(), res.kind)?,
        rv,
        bookmarks: query.flag("allowWatchBookmarks"),
        metadata_only: call.metadata_only,
        initial_events: query.flag("sendInitialEvents"),
        timeout,
    };
    Ok(Reply::Watch(watch::start(store, spec, stop.clone())))
}
