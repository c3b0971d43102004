//! `labelSelector` and `fieldSelector` query parameters, and the
//! `LabelSelector` objects of webhook configurations.

use serde_json::Value;

use super::status::ApiError;

/// The longest selector string taken.
const MAX_SELECTOR: usize = 4096;

/// One requirement of a label selector.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Label {
    Eq(String, String),
    NotEq(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// A parsed `labelSelector`: every requirement must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelSelector(Vec<Label>);

impl LabelSelector {
    /// Parses the query form: `a=b,c!=d,e in (f,g),h notin (i),j,!k`.
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        if s.len() > MAX_SELECTOR {
            return Err(ApiError::bad_request("labelSelector too long"));
        }
        let bad = |why: &str| {
            ApiError::bad_request(format!(
                "unable to parse requirement: {why} in labelSelector {s:?}"
            ))
        };
        let mut out = Vec::new();
        for part in split_top(s) {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let req = if let Some(key) = part.strip_prefix('!') {
                Label::NotExists(key_of(key.trim()).ok_or_else(|| bad("bad key"))?)
            } else if let Some((key, rest)) = part.split_once(" notin ") {
                Label::NotIn(
                    key_of(key.trim()).ok_or_else(|| bad("bad key"))?,
                    set_of(rest).ok_or_else(|| bad("bad set"))?,
                )
            } else if let Some((key, rest)) = part.split_once(" in ") {
                Label::In(
                    key_of(key.trim()).ok_or_else(|| bad("bad key"))?,
                    set_of(rest).ok_or_else(|| bad("bad set"))?,
                )
            } else if let Some((key, value)) = part.split_once("!=") {
                Label::NotEq(
                    key_of(key.trim()).ok_or_else(|| bad("bad key"))?,
                    value.trim().to_owned(),
                )
            } else if let Some((key, value)) =
                part.split_once("==").or_else(|| part.split_once('='))
            {
                Label::Eq(
                    key_of(key.trim()).ok_or_else(|| bad("bad key"))?,
                    value.trim().to_owned(),
                )
            } else {
                Label::Exists(key_of(part).ok_or_else(|| bad("bad key"))?)
            };
            out.push(req);
        }
        Ok(Self(out))
    }

    /// Converts a `metav1.LabelSelector` object (`matchLabels`,
    /// `matchExpressions` with `In`, `NotIn`, `Exists`, `DoesNotExist`).
    /// A missing selector (`null`) selects everything.
    pub fn from_object(v: &Value) -> Result<Self, String> {
        let mut out = Vec::new();
        if v.is_null() {
            return Ok(Self(out));
        }
        if let Some(labels) = v.get("matchLabels").and_then(Value::as_object) {
            for (k, val) in labels {
                let val = val.as_str().ok_or("matchLabels values must be strings")?;
                out.push(Label::Eq(k.clone(), val.to_owned()));
            }
        }
        for e in v
            .get("matchExpressions")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            let key = e
                .get("key")
                .and_then(Value::as_str)
                .ok_or("matchExpressions key missing")?
                .to_owned();
            let values: Vec<String> = e
                .get("values")
                .and_then(Value::as_array)
                .map(|vs| {
                    vs.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
            let op = e
                .get("operator")
                .and_then(Value::as_str)
                .unwrap_or_default();
            out.push(match op {
                "In" => Label::In(key, values),
                "NotIn" => Label::NotIn(key, values),
                "Exists" => Label::Exists(key),
                "DoesNotExist" => Label::NotExists(key),
                other => return Err(format!("unknown matchExpressions operator {other:?}")),
            });
        }
        Ok(Self(out))
    }

    /// Whether an object's `metadata.labels` satisfy every requirement.
    pub fn matches(&self, obj: &Value) -> bool {
        let labels = obj.pointer("/metadata/labels");
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        self.0.iter().all(|req| match req {
            Label::Eq(k, v) => get(k) == Some(v.as_str()),
            Label::NotEq(k, v) => get(k) != Some(v.as_str()),
            Label::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            Label::NotIn(k, vs) => get(k).is_none_or(|x| vs.iter().all(|v| v != x)),
            Label::Exists(k) => get(k).is_some(),
            Label::NotExists(k) => get(k).is_none(),
        })
    }
}

/// Splits at commas outside parentheses.
fn split_top(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0usize, 0);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

/// A label key: `[prefix/]name` of the allowed characters.
fn key_of(s: &str) -> Option<String> {
    let ok = !s.is_empty()
        && s.len() <= 317
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c));
    ok.then(|| s.to_owned())
}

/// `(a, b)` into its values.
fn set_of(s: &str) -> Option<Vec<String>> {
    let inner = s.trim().strip_prefix('(')?.strip_suffix(')')?;
    Some(
        inner
            .split(',')
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
            .collect(),
    )
}

/// A parsed `fieldSelector`: `metadata.name`, `metadata.namespace` and (for
/// pods) `spec.nodeName`, `status.phase` with `=`, `==` or `!=`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSelector(Vec<(&'static str, bool, String)>);

impl FieldSelector {
    /// Parses the query form; a field this resource does not index is a 400
    /// like the real server's "field label not supported".
    pub fn parse(s: &str, kind: &str) -> Result<Self, ApiError> {
        if s.len() > MAX_SELECTOR {
            return Err(ApiError::bad_request("fieldSelector too long"));
        }
        let mut out = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (field, eq, value) = if let Some((f, v)) = part.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
                (f, true, v)
            } else {
                return Err(ApiError::bad_request(format!(
                    "invalid selector: {part:?}; can't understand {part:?}"
                )));
            };
            let pointer = match (field.trim(), kind) {
                ("metadata.name", _) => "/metadata/name",
                ("metadata.namespace", _) => "/metadata/namespace",
                ("spec.nodeName", "Pod") => "/spec/nodeName",
                ("status.phase", "Pod") => "/status/phase",
                (f, _) => {
                    return Err(ApiError::bad_request(format!(
                        "field label not supported: {f}"
                    )));
                }
            };
            out.push((pointer, eq, value.trim().to_owned()));
        }
        Ok(Self(out))
    }

    /// Whether the object's fields satisfy every requirement (a missing field
    /// is the empty string, as in the real server).
    pub fn matches(&self, obj: &Value) -> bool {
        self.0.iter().all(|(pointer, eq, value)| {
            let got = obj
                .pointer(pointer)
                .and_then(Value::as_str)
                .unwrap_or_default();
            (got == value) == *eq
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pod(labels: Value) -> Value {
        json!({"metadata": {"name": "p", "namespace": "ns", "labels": labels}, "spec": {"nodeName": "n1"}})
    }

    #[test]
    fn label_selector_forms() {
        let p = pod(json!({"app": "web", "tier": "front"}));
        let ok = |s: &str| LabelSelector::parse(s).map(|sel| sel.matches(&p));
        assert_eq!(ok("app=web"), Ok(true));
        assert_eq!(ok("app==web,tier=front"), Ok(true));
        assert_eq!(ok("app!=web"), Ok(false));
        assert_eq!(ok("app in (db, web)"), Ok(true));
        assert_eq!(ok("app notin (db,web)"), Ok(false));
        assert_eq!(ok("missing notin (x)"), Ok(true));
        assert_eq!(ok("tier"), Ok(true));
        assert_eq!(ok("!tier"), Ok(false));
        assert_eq!(ok(""), Ok(true));
        assert!(LabelSelector::parse("app in web").is_err());
        assert!(LabelSelector::parse("a b=c").is_err());
    }

    #[test]
    fn label_selector_objects() {
        let p = pod(json!({"meshid.io/inject": "enabled"}));
        let sel = |v: Value| LabelSelector::from_object(&v).map(|s| s.matches(&p));
        assert_eq!(sel(Value::Null), Ok(true));
        assert_eq!(
            sel(json!({"matchLabels": {"meshid.io/inject": "enabled"}})),
            Ok(true)
        );
        assert_eq!(
            sel(
                json!({"matchExpressions": [{"key": "meshid.io/inject", "operator": "NotIn", "values": ["false"]}]})
            ),
            Ok(true)
        );
        assert_eq!(
            sel(json!({"matchExpressions": [{"key": "x", "operator": "Exists"}]})),
            Ok(false)
        );
        assert!(sel(json!({"matchExpressions": [{"key": "x", "operator": "Gt"}]})).is_err());
    }

    #[test]
    fn field_selector_forms() {
        let p = pod(json!({}));
        let ok = |s: &str| FieldSelector::parse(s, "Pod").map(|sel| sel.matches(&p));
        assert_eq!(ok("spec.nodeName=n1"), Ok(true));
        assert_eq!(ok("metadata.name==p,metadata.namespace!=ns"), Ok(false));
        assert_eq!(ok("status.phase="), Ok(true));
        assert!(FieldSelector::parse("spec.nodeName=n1", "ConfigMap").is_err());
        assert!(FieldSelector::parse("metadata.name", "Pod").is_err());
    }
}
