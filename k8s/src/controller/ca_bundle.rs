//! Keeps the injector's `caBundle` equal to the mesh's roots.

use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};

use crate::leader::Leadership;
use crate::publish::webhook::ca_bundle_patch;

/// What [`sync`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Synced {
    /// Every webhook has the roots (now or already).
    Done,
    /// Not written: the configuration does not exist yet, or leadership
    /// was lost; ask again on the next pass.
    Pending,
}

/// Reads the MutatingWebhookConfiguration `name` and patches the
/// `caBundle` of every webhook that lacks `root_pem`.
pub async fn sync(
    client: &Client,
    name: &str,
    root_pem: &str,
    leader: &Leadership,
) -> Result<Synced, kube::Error> {
    let api: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let Some(config) = api.get_opt(name).await? else {
        tracing::debug!(%name, "no MutatingWebhookConfiguration yet");
        return Ok(Synced::Pending);
    };
    let value = serde_json::to_value(&config).map_err(kube::Error::SerdeError)?;
    let Some(patch) = ca_bundle_patch(&value, root_pem) else {
        return Ok(Synced::Done);
    };
    if !leader.is_leader() {
        return Ok(Synced::Pending);
    }
    let patch: json_patch::Patch =
        serde_json::from_value(patch).map_err(kube::Error::SerdeError)?;
    api.patch(name, &PatchParams::default(), &Patch::<()>::Json(patch))
        .await?;
    tracing::info!(%name, "webhook caBundle set to the mesh's roots");
    Ok(Synced::Done)
}
