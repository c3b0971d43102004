//! The injector's `caBundle`: the API server verifies the webhook's
//! serving certificate (an SVID) with it, so it must be the mesh's roots.

use base64::Engine as _;
use serde_json::{Value, json};

/// The JSON patch that sets `caBundle` of every webhook of `config` (a
/// MutatingWebhookConfiguration as JSON) to `root_pem`, `None` when every
/// one already has it. Each change is guarded by a `test` of the webhook's
/// name at that index, so a concurrent edit of the list fails the patch
/// instead of writing the wrong webhook.
pub fn ca_bundle_patch(config: &Value, root_pem: &str) -> Option<Value> {
    let want = base64::engine::general_purpose::STANDARD.encode(root_pem);
    let webhooks = config.get("webhooks")?.as_array()?;
    let mut ops = Vec::new();
    for (i, w) in webhooks.iter().enumerate() {
        let have = w.pointer("/clientConfig/caBundle").and_then(Value::as_str);
        if have == Some(want.as_str()) {
            continue;
        }
        let name = w.get("name").cloned().unwrap_or(Value::Null);
        ops.push(json!({"op": "test", "path": format!("/webhooks/{i}/name"), "value": name}));
        ops.push(json!({"op": "add", "path": format!("/webhooks/{i}/clientConfig/caBundle"), "value": want}));
    }
    (!ops.is_empty()).then_some(Value::Array(ops))
}
