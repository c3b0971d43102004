//! The webhook `caBundle` patch and the bundle ConfigMap's data.
#![allow(clippy::unwrap_used)]

use base64::Engine as _;
use meshid_identity::TrustDomain;
use meshid_k8s::publish::bundle::Published;
use meshid_k8s::publish::webhook::ca_bundle_patch;
use serde_json::json;

#[test]
fn only_webhooks_without_the_roots_are_patched_each_guarded_by_its_name() {
    let pem = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
    let b64 = base64::engine::general_purpose::STANDARD.encode(pem);
    let config = json!({"webhooks": [
        {"name": "ok.meshid.io", "clientConfig": {"caBundle": b64}},
        {"name": "stale.meshid.io", "clientConfig": {"caBundle": "b2xk"}},
        {"name": "empty.meshid.io", "clientConfig": {}},
    ]});
    let patch = ca_bundle_patch(&config, pem).unwrap();
    assert_eq!(
        patch,
        json!([
            {"op": "test", "path": "/webhooks/1/name", "value": "stale.meshid.io"},
            {"op": "add", "path": "/webhooks/1/clientConfig/caBundle", "value": b64},
            {"op": "test", "path": "/webhooks/2/name", "value": "empty.meshid.io"},
            {"op": "add", "path": "/webhooks/2/clientConfig/caBundle", "value": b64},
        ])
    );
    let mut applied = config.clone();
    json_patch::patch(
        &mut applied,
        &serde_json::from_value::<json_patch::Patch>(patch).unwrap(),
    )
    .unwrap();
    assert_eq!(ca_bundle_patch(&applied, pem), None);
    assert_eq!(ca_bundle_patch(&json!({}), pem), None);
}

#[test]
fn a_bundle_that_is_not_a_spiffe_bundle_with_roots_is_not_published() {
    // The published data itself is checked end to end
    // (tests/tests/k8s_controller/publish.rs) against the CA's bundle.
    let td = TrustDomain::new("example.org").unwrap();
    assert!(Published::new(&td, 1, b"not json").is_err());
    assert!(
        Published::new(&td, 1, br#"{"keys": []}"#).is_err(),
        "no X.509 authority"
    );
}
