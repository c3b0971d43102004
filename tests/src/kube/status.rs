//! API errors as the real server sends them: a `v1` `Status` object with
//! the HTTP code, a machine-readable `reason` and a message.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Status, StatusCause, StatusDetails};
use serde_json::Value;

/// A refused request: what the server answers with a `Status`, and what the
/// test-side helpers of [`FakeApiServer`](super::FakeApiServer) return.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code} {reason}: {message}")]
pub struct ApiError {
    /// The HTTP status code (404, 409, 410, ...).
    pub code: u16,
    /// The `Status.reason` (`NotFound`, `AlreadyExists`, `Conflict`,
    /// `Expired`, `Invalid`, `BadRequest`, ...).
    pub reason: &'static str,
    /// A message for people.
    pub message: String,
    /// `details.causes`: `(type, field, message)`, e.g. the fields an apply
    /// conflicts on.
    pub causes: Vec<(String, String, String)>,
}

impl ApiError {
    fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
            causes: Vec::new(),
        }
    }

    /// 400: the request is malformed.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    /// 401: no or an unknown bearer token.
    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized")
    }

    /// 403: refused (a namespace being deleted).
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(403, "Forbidden", message)
    }

    /// 404 for an object.
    pub fn not_found(plural: &str, name: &str) -> Self {
        Self::new(404, "NotFound", format!("{plural} \"{name}\" not found"))
    }

    /// 404 for a path that serves nothing.
    pub fn no_route(path: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("the server could not find the requested resource ({path})"),
        )
    }

    /// 405: a verb the path does not support.
    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(405, "MethodNotAllowed", message)
    }

    /// 409: the object exists.
    pub fn already_exists(plural: &str, name: &str) -> Self {
        Self::new(
            409,
            "AlreadyExists",
            format!("{plural} \"{name}\" already exists"),
        )
    }

    /// 409: a stale `resourceVersion` or an apply conflict.
    pub fn conflict(plural: &str, name: &str, why: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!("Operation cannot be fulfilled on {plural} \"{name}\": {why}"),
        )
    }

    /// 410: a resource version or continue token older than the history.
    pub fn expired(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    /// 413: the request body is larger than the server takes.
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            413,
            "RequestEntityTooLarge",
            format!("request body larger than {limit} bytes"),
        )
    }

    /// 415: a patch content type the server does not know.
    pub fn unsupported_media_type(content_type: &str) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got {content_type:?})"
            ),
        )
    }

    /// 422: the object is invalid.
    pub fn invalid(kind: &str, name: &str, why: impl Into<String>) -> Self {
        let why = why.into();
        Self::new(
            422,
            "Invalid",
            format!("{kind} \"{name}\" is invalid: {why}"),
        )
    }

    /// 504: a resource version newer than the server's.
    pub fn too_large_resource_version(rv: u64) -> Self {
        Self::new(504, "Timeout", format!("Too large resource version: {rv}"))
    }

    /// With a `details.causes` entry.
    pub fn with_cause(mut self, kind: &str, field: &str, message: &str) -> Self {
        self.causes
            .push((kind.to_owned(), field.to_owned(), message.to_owned()));
        self
    }

    /// The `Status` object the server sends.
    pub fn to_status(&self) -> Value {
        let causes = (!self.causes.is_empty()).then(|| {
            self.causes
                .iter()
                .map(|(reason, field, message)| StatusCause {
                    reason: Some(reason.clone()),
                    field: Some(field.clone()),
                    message: Some(message.clone()),
                })
                .collect()
        });
        let status = Status {
            code: Some(i32::from(self.code)),
            reason: Some(self.reason.to_owned()),
            message: Some(self.message.clone()),
            status: Some("Failure".to_owned()),
            details: causes.map(|causes| StatusDetails {
                causes: Some(causes),
                ..StatusDetails::default()
            }),
            ..Status::default()
        };
        serde_json::to_value(&status).unwrap_or(Value::Null)
    }
}
