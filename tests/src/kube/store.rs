//! The object store: every object by (resource, namespace, name), one
//! global `resourceVersion` counter, and the recent history of changes that
//! watches resume from.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use serde_json::Value;
use tokio::sync::broadcast;

use super::apply::FieldSets;
use super::meta;
use super::resources::{RESOURCES, Resource};
use super::status::ApiError;

/// Changes kept for watches to resume from; a watch from an older
/// `resourceVersion` gets `410 Expired`.
const HISTORY: usize = 20_000;

/// Changes a watch may fall behind by before it is ended with `410`.
const FANOUT: usize = 8192;

/// A change, as watches see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    /// The object was created.
    Added,
    /// The object was changed.
    Modified,
    /// The object was removed.
    Deleted,
}

impl EventType {
    /// The watch event `type`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Added => "ADDED",
            Self::Modified => "MODIFIED",
            Self::Deleted => "DELETED",
        }
    }
}

/// One change to one object.
#[derive(Debug)]
pub struct Event {
    /// The `resourceVersion` of the change.
    pub rv: u64,
    /// The resource of the object.
    pub resource: &'static Resource,
    /// What happened.
    pub kind: EventType,
    /// The object after the change (for `Deleted`: as it was, with the
    /// deletion's resourceVersion).
    pub object: Value,
    /// The object before the change, for selector transitions.
    pub old: Option<Value>,
}

/// Which part of an object a write may change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// Everything but `.status` when the resource has a status subresource.
    Main,
    /// Only `.status` (the `/status` subresource).
    Status,
    /// Everything (the test-side helpers: a fixture with a status).
    All,
}

/// A stored object and the fields each server-side-apply manager owns.
#[derive(Debug)]
pub struct Stored {
    /// The object as served.
    pub object: Value,
    /// The field sets of each apply manager.
    pub fields: FieldSets,
}

type Key = (usize, String, String);

/// The changes after a resourceVersion and the receiver of those to come.
pub type Follow = (Vec<Arc<Event>>, broadcast::Receiver<Arc<Event>>);

/// All objects and the change history.
#[derive(Debug)]
pub struct Store {
    rv: u64,
    objects: BTreeMap<Key, Stored>,
    history: VecDeque<Arc<Event>>,
    /// The oldest resourceVersion a watch can start from.
    oldest: u64,
    events: broadcast::Sender<Arc<Event>>,
}

fn index(res: &'static Resource) -> usize {
    RESOURCES
        .iter()
        .position(|r| r == res)
        .unwrap_or(usize::MAX)
}

fn key(res: &'static Resource, ns: &str, name: &str) -> Key {
    let ns = if res.namespaced { ns } else { "" };
    (index(res), ns.to_owned(), name.to_owned())
}

impl Default for Store {
    fn default() -> Self {
        Self {
            rv: 1,
            objects: BTreeMap::new(),
            history: VecDeque::new(),
            oldest: 1,
            events: broadcast::channel(FANOUT).0,
        }
    }
}

impl Store {
    /// The current resourceVersion.
    pub fn rv(&self) -> u64 {
        self.rv
    }

    /// The oldest resourceVersion a watch may resume from.
    pub fn oldest(&self) -> u64 {
        self.oldest
    }

    /// How many watches are open (each holds a receiver of the changes).
    pub fn watchers(&self) -> usize {
        self.events.receiver_count()
    }

    /// Forgets the history: watches from any older resourceVersion get 410.
    pub fn compact(&mut self) {
        self.history.clear();
        self.oldest = self.rv;
    }

    /// The changes after `rv` and a receiver for the ones to come (taken
    /// together, so none is missed or seen twice); `None` when `rv` is older
    /// than the history.
    pub fn follow(&self, rv: u64) -> Option<Follow> {
        if rv < self.oldest {
            return None;
        }
        let past = self.history.iter().filter(|e| e.rv > rv).cloned().collect();
        Some((past, self.events.subscribe()))
    }

    /// One object.
    pub fn get(&self, res: &'static Resource, ns: &str, name: &str) -> Option<&Stored> {
        self.objects.get(&key(res, ns, name))
    }

    /// The objects of a resource (in one namespace, or all for `None`), in
    /// (namespace, name) order, starting after `after`.
    pub fn list<'a>(
        &'a self,
        res: &'static Resource,
        ns: Option<&'a str>,
        after: Option<(String, String)>,
    ) -> impl Iterator<Item = &'a Value> + 'a {
        let i = index(res);
        let start = match after {
            Some((ns, name)) => std::ops::Bound::Excluded((i, ns, name)),
            None => std::ops::Bound::Included((i, String::new(), String::new())),
        };
        self.objects
            .range((start, std::ops::Bound::Unbounded))
            .take_while(move |((r, _, _), _)| *r == i)
            .filter(move |((_, n, _), _)| ns.is_none_or(|ns| ns == n))
            .map(|(_, s)| &s.object)
    }

    /// Creates an object; `part` says whether a client's `.status` is kept.
    pub fn create(
        &mut self,
        res: &'static Resource,
        ns: &str,
        mut obj: Value,
        part: Part,
        fields: FieldSets,
    ) -> Result<Value, ApiError> {
        meta::check_string_maps(&obj)?;
        let m = meta::metadata_mut(&mut obj)?;
        if m.get("resourceVersion")
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty())
        {
            return Err(ApiError::bad_request(
                "resourceVersion should not be set on objects to be created",
            ));
        }
        let mut name = m
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        if name.is_empty() {
            match m.get("generateName").and_then(Value::as_str) {
                Some(prefix) if !prefix.is_empty() => name = meta::generated_name(prefix),
                _ => {
                    return Err(ApiError::invalid(
                        res.kind,
                        "",
                        "metadata.name: Required value: name or generateName is required",
                    ));
                }
            }
        }
        meta::check_name(res.kind, &name)?;
        if res.namespaced {
            let body_ns = m.get("namespace").and_then(Value::as_str).unwrap_or(ns);
            if body_ns != ns {
                return Err(ApiError::bad_request(format!(
                    "the namespace of the provided object ({body_ns}) does not match the namespace sent on the request ({ns})"
                )));
            }
            let Some(space) = self.get(namespaces(), "", ns) else {
                return Err(ApiError::not_found("namespaces", ns));
            };
            if space
                .object
                .pointer("/metadata/deletionTimestamp")
                .is_some()
            {
                return Err(ApiError::forbidden(format!(
                    "unable to create new content in namespace {ns} because it is being terminated"
                )));
            }
            m.insert("namespace".into(), ns.into());
        } else {
            m.remove("namespace");
        }
        if self.objects.contains_key(&key(res, ns, &name)) {
            return Err(ApiError::already_exists(res.plural, &name));
        }
        m.insert("name".into(), name.clone().into());
        m.insert("uid".into(), meta::uid().into());
        m.insert("creationTimestamp".into(), meta::now().into());
        m.insert("generation".into(), 1.into());
        m.remove("deletionTimestamp");
        m.remove("deletionGracePeriodSeconds");
        m.remove("managedFields");
        self.rv += 1;
        m.insert("resourceVersion".into(), self.rv.to_string().into());
        set_type(&mut obj, res);
        if part != Part::All
            && res.status
            && let Some(o) = obj.as_object_mut()
        {
            o.remove("status");
        }
        if res.kind == "Namespace" {
            default_namespace(&mut obj);
        }
        self.objects.insert(
            key(res, ns, &name),
            Stored {
                object: obj.clone(),
                fields,
            },
        );
        self.publish(res, EventType::Added, obj.clone(), None);
        Ok(obj)
    }

    /// Replaces an object with `new` (already the full intended object): the
    /// server-owned metadata is kept, `part` decides what may change, the
    /// generation is bumped when anything but metadata and status changed.
    /// A write that changes nothing keeps the resourceVersion and sends no
    /// event, like the real server. An object being deleted whose last
    /// finalizer is removed is deleted.
    pub fn replace(
        &mut self,
        res: &'static Resource,
        ns: &str,
        name: &str,
        new: Value,
        part: Part,
        fields: Option<FieldSets>,
    ) -> Result<Value, ApiError> {
        meta::check_string_maps(&new)?;
        let k = key(res, ns, name);
        let Some(stored) = self.objects.get(&k) else {
            return Err(ApiError::not_found(res.plural, name));
        };
        let old = stored.object.clone();
        let mut obj = match part {
            Part::Status => {
                let mut o = old.clone();
                if let (Some(o), Some(n)) = (o.as_object_mut(), new.as_object()) {
                    match n.get("status") {
                        Some(s) => o.insert("status".into(), s.clone()),
                        None => o.remove("status"),
                    };
                }
                o
            }
            Part::Main | Part::All => {
                let mut o = new;
                if part == Part::Main
                    && res.status
                    && let Some(map) = o.as_object_mut()
                {
                    match old.get("status") {
                        Some(s) => map.insert("status".into(), s.clone()),
                        None => map.remove("status"),
                    };
                }
                o
            }
        };
        let m = meta::metadata_mut(&mut obj)?;
        for field in [
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "resourceVersion",
        ] {
            match old.get("metadata").and_then(|m| m.get(field)) {
                Some(v) => m.insert(field.into(), v.clone()),
                None => m.remove(field),
            };
        }
        m.remove("managedFields");
        set_type(&mut obj, res);
        if res.kind == "Namespace" {
            default_namespace(&mut obj);
        }
        let fields = fields.unwrap_or_else(|| stored.fields.clone());
        if obj == old {
            if let Some(s) = self.objects.get_mut(&k) {
                s.fields = fields;
            }
            return Ok(old);
        }
        let generation = old
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        let spec_changed = strip_meta_status(&obj) != strip_meta_status(&old);
        self.rv += 1;
        let m = meta::metadata_mut(&mut obj)?;
        if spec_changed {
            m.insert("generation".into(), (generation + 1).into());
        }
        m.insert("resourceVersion".into(), self.rv.to_string().into());
        let finalized = m.contains_key("deletionTimestamp")
            && m.get("finalizers")
                .and_then(Value::as_array)
                .is_none_or(Vec::is_empty);
        if finalized {
            self.objects.remove(&k);
            self.publish(res, EventType::Deleted, obj.clone(), Some(old));
            return Ok(obj);
        }
        self.objects.insert(
            k,
            Stored {
                object: obj.clone(),
                fields,
            },
        );
        self.publish(res, EventType::Modified, obj.clone(), Some(old));
        Ok(obj)
    }

    /// Deletes an object (with `precondition_rv`/`precondition_uid` from
    /// `DeleteOptions` when given). An object with finalizers only gets a
    /// `deletionTimestamp`; a namespace takes its objects with it.
    pub fn delete(
        &mut self,
        res: &'static Resource,
        ns: &str,
        name: &str,
        precondition_rv: Option<&str>,
        precondition_uid: Option<&str>,
    ) -> Result<Value, ApiError> {
        let k = key(res, ns, name);
        let Some(stored) = self.objects.get(&k) else {
            return Err(ApiError::not_found(res.plural, name));
        };
        let old = stored.object.clone();
        if let Some(rv) = precondition_rv
            && meta::meta_str(&old, "resourceVersion") != Some(rv)
        {
            return Err(ApiError::conflict(
                res.plural,
                name,
                &format!(
                    "the ResourceVersion in the precondition ({rv}) does not match the ResourceVersion in record ({}). The object might have been modified",
                    meta::meta_str(&old, "resourceVersion").unwrap_or_default()
                ),
            ));
        }
        if let Some(uid) = precondition_uid
            && meta::meta_str(&old, "uid") != Some(uid)
        {
            return Err(ApiError::conflict(
                res.plural,
                name,
                &format!(
                    "the UID in the precondition ({uid}) does not match the UID in record ({}). The object might have been modified",
                    meta::meta_str(&old, "uid").unwrap_or_default()
                ),
            ));
        }
        let has_finalizers = old
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty());
        if has_finalizers {
            if old.pointer("/metadata/deletionTimestamp").is_some() {
                return Ok(old);
            }
            let mut obj = old.clone();
            let m = meta::metadata_mut(&mut obj)?;
            m.insert("deletionTimestamp".into(), meta::now().into());
            m.insert("deletionGracePeriodSeconds".into(), 0.into());
            self.rv += 1;
            m.insert("resourceVersion".into(), self.rv.to_string().into());
            if let Some(s) = self.objects.get_mut(&k) {
                s.object = obj.clone();
            }
            self.publish(res, EventType::Modified, obj.clone(), Some(old));
            return Ok(obj);
        }
        if res.kind == "Namespace" {
            let inside: Vec<Key> = self
                .objects
                .keys()
                .filter(|(r, n, _)| RESOURCES.get(*r).is_some_and(|r| r.namespaced) && n == name)
                .cloned()
                .collect();
            for (r, n, o) in inside {
                if let Some(r) = RESOURCES.get(r) {
                    self.remove(r, &n, &o);
                }
            }
        }
        self.remove(res, ns, name)
            .ok_or_else(|| ApiError::not_found(res.plural, name))
    }

    /// Removes an object at once, with a `DELETED` event.
    fn remove(&mut self, res: &'static Resource, ns: &str, name: &str) -> Option<Value> {
        let stored = self.objects.remove(&key(res, ns, name))?;
        let old = stored.object;
        let mut obj = old.clone();
        self.rv += 1;
        if let Ok(m) = meta::metadata_mut(&mut obj) {
            m.insert("resourceVersion".into(), self.rv.to_string().into());
        }
        self.publish(res, EventType::Deleted, obj.clone(), Some(old));
        Some(obj)
    }

    fn publish(
        &mut self,
        res: &'static Resource,
        kind: EventType,
        object: Value,
        old: Option<Value>,
    ) {
        let event = Arc::new(Event {
            rv: self.rv,
            resource: res,
            kind,
            object,
            old,
        });
        self.history.push_back(event.clone());
        while self.history.len() > HISTORY {
            if let Some(e) = self.history.pop_front() {
                self.oldest = e.rv;
            }
        }
        let _ = self.events.send(event);
    }
}

fn namespaces() -> &'static Resource {
    &RESOURCES[1]
}

/// `apiVersion` and `kind` as the resource says.
fn set_type(obj: &mut Value, res: &Resource) {
    if let Some(m) = obj.as_object_mut() {
        m.insert("apiVersion".into(), res.api_version().into());
        m.insert("kind".into(), res.kind.into());
    }
}

/// What the real server adds to a namespace: the
/// `kubernetes.io/metadata.name` label, the `kubernetes` finalizer in spec
/// and the `Active` phase.
fn default_namespace(obj: &mut Value) {
    let name = meta::meta_str(obj, "name").unwrap_or_default().to_owned();
    if let Ok(m) = meta::metadata_mut(obj) {
        let labels = m
            .entry("labels")
            .or_insert_with(|| Value::Object(Default::default()));
        if let Some(l) = labels.as_object_mut() {
            l.insert("kubernetes.io/metadata.name".into(), name.into());
        }
    }
    if let Some(o) = obj.as_object_mut() {
        o.entry("spec")
            .or_insert_with(|| serde_json::json!({"finalizers": ["kubernetes"]}));
        let terminating = o
            .get("metadata")
            .and_then(|m| m.get("deletionTimestamp"))
            .is_some();
        let phase = if terminating { "Terminating" } else { "Active" };
        o.insert("status".into(), serde_json::json!({"phase": phase}));
    }
}

/// The object without `metadata` and `status`: what `generation` tracks.
fn strip_meta_status(obj: &Value) -> Value {
    let mut o = obj.clone();
    if let Some(m) = o.as_object_mut() {
        m.remove("metadata");
        m.remove("status");
    }
    o
}
