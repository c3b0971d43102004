//! The two ConfigMaps of every watched namespace: the trust bundle and the
//! proxy policy. Created when missing, patched when they differ (an edit
//! is repaired), deleted where the controller no longer publishes
//! (an ignored namespace, a renamed ConfigMap). Each namespace backs off on
//! its own after a failed write.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt as _};
use meshid_runtime::backoff::Backoff;
use serde_json::json;
use tokio::time::Instant;

use super::config::Settings;
use super::watch::Stores;
use crate::leader::Leadership;
use crate::publish::MANAGED_BY;
use crate::publish::bundle::{Published, SEQUENCE_ANNOTATION};
use crate::publish::policy::{self, Note, POLICY_KEY};

/// Writes the ConfigMaps.
pub struct ConfigMaps {
    client: Client,
    retry: HashMap<(String, String), (Backoff, Instant)>,
    logged: HashSet<Note>,
}

/// One ConfigMap as it should be.
struct Want {
    data: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
}

/// What a pass found.
#[derive(Debug, Default)]
pub struct Pass {
    /// Writes done.
    pub written: usize,
    /// Writes that failed or wait for their backoff.
    pub pending: usize,
    /// The first failure.
    pub error: Option<String>,
}

// === impl ConfigMaps ===

impl ConfigMaps {
    /// A writer using `client`.
    pub fn new(client: Client) -> Self {
        Self {
            client,
            retry: HashMap::new(),
            logged: HashSet::new(),
        }
    }

    /// One pass over every namespace. `bundle` is `None` until the CA's
    /// bundle was read (no bundle ConfigMap is written before).
    pub async fn sync(
        &mut self,
        settings: &Settings,
        stores: &Stores,
        bundle: Option<&Published>,
        leader: &Leadership,
    ) -> Pass {
        let mut pass = Pass::default();
        let mut want: BTreeMap<(String, String), Want> = BTreeMap::new();
        let authz: Vec<_> = stores.authz.iter().flat_map(|s| s.state()).collect();
        let peers: Vec<_> = stores.peers.iter().flat_map(|s| s.state()).collect();
        let authz_refs: Vec<_> = authz.iter().map(|a| a.as_ref()).collect();
        let peer_refs: Vec<_> = peers.iter().map(|p| p.as_ref()).collect();
        for ns in stores.namespaces.state() {
            let name = ns.name_any();
            if ns.metadata.deletion_timestamp.is_some()
                || settings.ignore_namespaces.contains(&name)
            {
                continue;
            }
            if let Some(b) = bundle {
                want.insert(
                    (name.clone(), settings.bundle_configmap.clone()),
                    Want {
                        data: b.data(),
                        annotations: BTreeMap::from([(
                            SEQUENCE_ANNOTATION.to_owned(),
                            b.sequence.to_string(),
                        )]),
                    },
                );
            }
            let (file, notes) = policy::policy_file(
                &name,
                &settings.root_namespace,
                &authz_refs,
                &peer_refs,
                &settings.trust_domain,
            );
            for note in notes {
                if self.logged.insert(note.clone()) {
                    tracing::warn!(kind = note.kind, object = %note.object, generation = note.generation, "{}", note.message);
                }
            }
            match policy::render(&file) {
                Ok(text) => {
                    want.insert(
                        (name, settings.policy_configmap.clone()),
                        Want {
                            data: BTreeMap::from([(POLICY_KEY.to_owned(), text)]),
                            annotations: BTreeMap::new(),
                        },
                    );
                }
                Err(e) => pass.error = Some(format!("policy for namespace {name}: {e}")),
            }
        }
        let have: BTreeMap<(String, String), _> = stores
            .configmaps
            .state()
            .into_iter()
            .filter_map(|cm| Some(((cm.namespace()?, cm.name_any()), cm)))
            .collect();
        let now = Instant::now();
        self.retry
            .retain(|k, _| want.contains_key(k) || have.contains_key(k));
        for (key, w) in &want {
            if have.get(key).is_some_and(|cm| matches(cm, w)) {
                self.retry.remove(key);
                continue;
            }
            if self.retry.get(key).is_some_and(|(_, at)| *at > now) {
                pass.pending += 1;
                continue;
            }
            if !leader.is_leader() {
                return pass;
            }
            let result = self.write(key, w, have.contains_key(key)).await;
            self.done(key, result, &mut pass);
        }
        // Managed ConfigMaps in namespaces now ignored. Only the
        // controller's two names are touched (the label alone could be
        // copied onto anything).
        let ours = [&settings.bundle_configmap, &settings.policy_configmap];
        for key in have.keys() {
            if want.contains_key(key)
                || !ours.contains(&&key.1)
                || !settings.ignore_namespaces.contains(&key.0)
            {
                continue;
            }
            if !leader.is_leader() {
                return pass;
            }
            let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), &key.0);
            let result = match api.delete(&key.1, &DeleteParams::default()).await {
                Ok(_) => Ok(()),
                Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
                Err(e) => Err(e),
            };
            self.done(key, result, &mut pass);
        }
        pass
    }

    async fn write(
        &self,
        key: &(String, String),
        w: &Want,
        exists: bool,
    ) -> Result<(), kube::Error> {
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), &key.0);
        if !exists {
            let cm = ConfigMap {
                metadata: ObjectMeta {
                    name: Some(key.1.clone()),
                    namespace: Some(key.0.clone()),
                    labels: Some(BTreeMap::from([(
                        MANAGED_BY.0.to_owned(),
                        MANAGED_BY.1.to_owned(),
                    )])),
                    annotations: (!w.annotations.is_empty()).then(|| w.annotations.clone()),
                    ..Default::default()
                },
                data: Some(w.data.clone()),
                ..Default::default()
            };
            match api.create(&PostParams::default(), &cm).await {
                Ok(_) => return Ok(()),
                // There already (created before our watch saw it, or by
                // someone else without our label): take it over below.
                Err(kube::Error::Api(e)) if e.code == 409 => {}
                Err(e) => return Err(e),
            }
        }
        let patch = json!({
            "metadata": {
                "labels": { MANAGED_BY.0: MANAGED_BY.1 },
                "annotations": w.annotations,
            },
            "data": w.data,
        });
        api.patch(&key.1, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map(|_| ())
    }

    fn done(&mut self, key: &(String, String), result: Result<(), kube::Error>, pass: &mut Pass) {
        match result {
            Ok(()) => {
                self.retry.remove(key);
                pass.written += 1;
            }
            Err(e) => {
                let now = Instant::now();
                let (b, at) = self.retry.entry(key.clone()).or_insert_with(|| {
                    (
                        Backoff::new(Duration::from_millis(500), Duration::from_secs(60)),
                        now,
                    )
                });
                *at = now + b.next_delay();
                pass.pending += 1;
                pass.error
                    .get_or_insert_with(|| format!("ConfigMap {}/{}: {e}", key.0, key.1));
            }
        }
    }

    /// The earliest time a namespace backing off may be retried.
    pub fn next_retry(&self) -> Option<Instant> {
        self.retry.values().map(|(_, at)| *at).min()
    }
}

/// True when `cm` already holds what `w` asks for.
fn matches(cm: &ConfigMap, w: &Want) -> bool {
    let labelled = cm.labels().get(MANAGED_BY.0).map(String::as_str) == Some(MANAGED_BY.1);
    let data_ok = cm.data.as_ref() == Some(&w.data);
    let ann = cm.annotations();
    let ann_ok = w.annotations.iter().all(|(k, v)| ann.get(k) == Some(v));
    labelled && data_ok && ann_ok
}
