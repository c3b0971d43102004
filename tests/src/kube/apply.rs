//! Server-side apply (`application/apply-patch+yaml`) with field managers
//! and conflicts.
//!
//! Apply tracks, per field manager (and subresource), the leaf fields its
//! last applied configuration set. Maps merge key by key; a list whose
//! elements are all objects with a `name` is merged by `name` (as the real
//! server does for containers, volumes, webhooks...); any other list is
//! atomic. Only apply managers own fields: updates and patches take no
//! ownership (the real server's update managers do).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use super::meta;
use super::patch::check_type;
use super::resources::Resource;
use super::status::ApiError;
use super::store::{Part, Store};

/// One step of a field path.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Seg {
    /// A map key.
    Key(String),
    /// The element of a list merged by `name`.
    Named(String),
}

/// The leaf fields each apply manager owns, by `manager` or
/// `manager/status`.
pub type FieldSets = BTreeMap<String, BTreeSet<Vec<Seg>>>;

/// Fields of the applied configuration that identify the object rather
/// than set it.
const IDENTITY: &[&[&str]] = &[
    &["apiVersion"],
    &["kind"],
    &["metadata", "name"],
    &["metadata", "namespace"],
    &["metadata", "resourceVersion"],
];

/// A list merged by `name`: every element is an object with a string name.
fn keyed(items: &[Value]) -> bool {
    !items.is_empty()
        && items
            .iter()
            .all(|i| i.get("name").is_some_and(Value::is_string))
}

/// The leaf fields `v` sets.
pub fn leaves(v: &Value) -> BTreeSet<Vec<Seg>> {
    let mut out = BTreeSet::new();
    walk(v, &mut Vec::new(), &mut out);
    out.retain(|p| {
        !IDENTITY.iter().any(|id| {
            id.len() == p.len()
                && id
                    .iter()
                    .zip(p)
                    .all(|(a, b)| *b == Seg::Key((*a).to_owned()))
        })
    });
    out
}

fn walk(v: &Value, path: &mut Vec<Seg>, out: &mut BTreeSet<Vec<Seg>>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, child) in m {
                if child.is_null() {
                    continue;
                }
                path.push(Seg::Key(k.clone()));
                walk(child, path, out);
                path.pop();
            }
        }
        Value::Array(items) if keyed(items) => {
            for item in items {
                let name = item.get("name").and_then(Value::as_str).unwrap_or_default();
                path.push(Seg::Named(name.to_owned()));
                walk(item, path, out);
                path.pop();
            }
        }
        _ => {
            out.insert(path.clone());
        }
    }
}

fn child<'a>(v: &'a Value, seg: &Seg) -> Option<&'a Value> {
    match seg {
        Seg::Key(k) => v.get(k),
        Seg::Named(n) => v
            .as_array()?
            .iter()
            .find(|i| i.get("name").and_then(Value::as_str) == Some(n)),
    }
}

/// The value at a field path.
fn get_path<'a>(v: &'a Value, path: &[Seg]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, seg| child(v, seg))
}

/// Removes a field, and the maps and named list elements it leaves empty
/// (or nameless).
fn remove_path(v: &mut Value, path: &[Seg]) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    match (v, first) {
        (Value::Object(m), Seg::Key(k)) => {
            if rest.is_empty() {
                m.remove(k);
            } else if let Some(c) = m.get_mut(k) {
                remove_path(c, rest);
                if c.as_object().is_some_and(Map::is_empty)
                    || c.as_array().is_some_and(Vec::is_empty)
                {
                    m.remove(k);
                }
            }
        }
        (Value::Array(items), Seg::Named(n)) => {
            let named = |i: &Value| i.get("name").and_then(Value::as_str) == Some(n.as_str());
            if let Some(c) = items.iter_mut().find(|i| named(i)) {
                remove_path(c, rest);
            }
            items.retain(|i| !named(i) || i.as_object().is_some_and(|o| o.len() > 1));
            items.retain(|i| i.get("name").is_some());
        }
        _ => {}
    }
}

/// Merges an applied configuration into an object.
fn merge(base: &mut Value, applied: &Value) {
    match (base, applied) {
        (Value::Object(b), Value::Object(a)) => {
            for (k, v) in a {
                if v.is_null() {
                    continue;
                }
                match b.get_mut(k) {
                    Some(existing) => merge(existing, v),
                    None => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (Value::Array(b), Value::Array(a)) if keyed(a) && (b.is_empty() || keyed(b)) => {
            for item in a {
                let name = item.get("name");
                match b.iter_mut().find(|i| i.get("name") == name) {
                    Some(existing) => merge(existing, item),
                    None => b.push(item.clone()),
                }
            }
        }
        (b, a) => *b = a.clone(),
    }
}

/// The dotted field name of a path, as conflict messages show it.
fn dotted(path: &[Seg]) -> String {
    path.iter()
        .map(|s| match s {
            Seg::Key(k) => format!(".{k}"),
            Seg::Named(n) => format!("[name=\"{n}\"]"),
        })
        .collect()
}

/// Server-side apply of `applied` by `manager` to `res/ns/name`.
#[allow(clippy::too_many_arguments)]
pub fn apply(
    store: &mut Store,
    res: &'static Resource,
    ns: &str,
    name: &str,
    manager: &str,
    force: bool,
    mut applied: Value,
    part: Part,
) -> Result<Value, ApiError> {
    if manager.is_empty() {
        return Err(ApiError::bad_request(
            "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
        ));
    }
    check_type(&applied, res)?;
    match meta::meta_str(&applied, "name") {
        Some(n) if n == name => {}
        _ => {
            return Err(ApiError::bad_request(format!(
                "metadata.name must be {name:?} in the applied configuration"
            )));
        }
    }
    if let Some(m) = applied.as_object_mut() {
        match part {
            Part::Status => {
                m.retain(|k, _| {
                    matches!(k.as_str(), "status" | "apiVersion" | "kind" | "metadata")
                });
                if let Some(meta) = m.get_mut("metadata").and_then(Value::as_object_mut) {
                    meta.retain(|k, _| {
                        matches!(k.as_str(), "name" | "namespace" | "resourceVersion")
                    });
                }
            }
            Part::Main if res.status => {
                m.remove("status");
            }
            _ => {}
        }
    }
    let owner = match part {
        Part::Status => format!("{manager}/status"),
        _ => manager.to_owned(),
    };
    let new_leaves = leaves(&applied);
    let Some(stored) = store.get(res, ns, name) else {
        if part == Part::Status {
            return Err(ApiError::not_found(res.plural, name));
        }
        let mut fields = FieldSets::new();
        fields.insert(owner, new_leaves);
        return store.create(res, ns, applied, part, fields);
    };
    let mut obj = stored.object.clone();
    let mut fields = stored.fields.clone();
    if let Some(rv) = meta::meta_str(&applied, "resourceVersion")
        && meta::meta_str(&obj, "resourceVersion") != Some(rv)
    {
        return Err(ApiError::conflict(
            res.plural,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        ));
    }
    let mut conflict = ApiError::conflict(
        res.plural,
        name,
        "apply conflicts with other field managers",
    );
    for path in &new_leaves {
        for (other, set) in fields.iter_mut().filter(|(m, _)| **m != owner) {
            if !set.contains(path) {
                continue;
            }
            if force {
                set.remove(path);
            } else if get_path(&obj, path) != get_path(&applied, path) {
                conflict = conflict.with_cause(
                    "FieldManagerConflict",
                    &dotted(path),
                    &format!("conflict with \"{other}\""),
                );
            }
        }
    }
    if !conflict.causes.is_empty() {
        let fields: Vec<&str> = conflict.causes.iter().map(|c| c.1.as_str()).collect();
        conflict.message = format!(
            "Apply failed with {} conflicts: {}",
            fields.len(),
            fields.join(", ")
        );
        return Err(conflict);
    }
    let previous = fields.remove(&owner).unwrap_or_default();
    for gone in previous.difference(&new_leaves) {
        if !fields.values().any(|set| set.contains(gone)) {
            remove_path(&mut obj, gone);
        }
    }
    merge(&mut obj, &applied);
    fields.retain(|_, set| !set.is_empty());
    fields.insert(owner, new_leaves);
    store.replace(res, ns, name, obj, part, Some(fields))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn keyed_lists_merge_by_name() {
        let mut base = json!({"webhooks": [{"name": "a", "x": 1}, {"name": "b", "x": 2}]});
        merge(&mut base, &json!({"webhooks": [{"name": "b", "y": 3}]}));
        assert_eq!(
            base,
            json!({"webhooks": [{"name": "a", "x": 1}, {"name": "b", "x": 2, "y": 3}]})
        );
        let paths = leaves(
            &json!({"metadata": {"name": "n", "labels": {"a": "b"}}, "webhooks": [{"name": "b", "y": 3}]}),
        );
        let want: BTreeSet<Vec<Seg>> = [
            vec![
                Seg::Key("metadata".into()),
                Seg::Key("labels".into()),
                Seg::Key("a".into()),
            ],
            vec![
                Seg::Key("webhooks".into()),
                Seg::Named("b".into()),
                Seg::Key("name".into()),
            ],
            vec![
                Seg::Key("webhooks".into()),
                Seg::Named("b".into()),
                Seg::Key("y".into()),
            ],
        ]
        .into();
        assert_eq!(paths, want);
        remove_path(
            &mut base,
            &[
                Seg::Key("webhooks".into()),
                Seg::Named("b".into()),
                Seg::Key("y".into()),
            ],
        );
        remove_path(
            &mut base,
            &[
                Seg::Key("webhooks".into()),
                Seg::Named("b".into()),
                Seg::Key("x".into()),
            ],
        );
        assert_eq!(base, json!({"webhooks": [{"name": "a", "x": 1}]}));
    }
}
