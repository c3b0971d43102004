use super::*;
use serde_json::{Value, json};

fn review(object: Value, operation: &str, kind: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": { "group": "", "version": "v1", "kind": kind },
            "resource": { "group": "", "version": "v1", "resource": "pods" },
            "namespace": "shop",
            "operation": operation,
            "userInfo": { "username": "admin" },
            "object": object,
            "dryRun": false
        }
    }))
    .unwrap()
}

fn pod() -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": { "name": "httpbin", "namespace": "shop", "labels": { "app": "httpbin" } },
        "spec": { "containers": [{ "name": "httpbin", "image": "docker.io/kong/httpbin",
                   "ports": [{ "containerPort": 80, "name": "http" }] }] }
    })
}

fn response(a: &Answer) -> Value {
    let v: Value = serde_json::from_slice(&a.body).unwrap();
    assert_eq!(v["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(v["kind"], "AdmissionReview");
    assert_eq!(v["response"]["uid"], "705ab4f5-6393-11e8-b7cc-42010a800002");
    v["response"].clone()
}

#[test]
fn a_pod_create_is_answered_with_a_base64_json_patch() {
    let a = answer(&review(pod(), "CREATE", "Pod"), &InjectConfig::default()).unwrap();
    assert_eq!(a.verdict, Verdict::Injected);
    let r = response(&a);
    assert_eq!(r["allowed"], true);
    assert_eq!(r["patchType"], "JSONPatch");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(r["patch"].as_str().unwrap())
        .unwrap();
    let p: json_patch::Patch = serde_json::from_slice(&bytes).unwrap();
    let mut patched = pod();
    json_patch::patch(&mut patched, &p).unwrap();
    assert_eq!(patched["spec"]["initContainers"][0]["name"], "meshid-proxy");
    assert_eq!(
        patched["metadata"]["annotations"]["meshid.io/status"],
        "injected"
    );
}

#[test]
fn other_operations_and_kinds_are_allowed_unchanged() {
    for (op, kind) in [("UPDATE", "Pod"), ("CREATE", "Deployment")] {
        let a = answer(&review(pod(), op, kind), &InjectConfig::default()).unwrap();
        assert_eq!(a.verdict, Verdict::Skipped);
        let r = response(&a);
        assert_eq!(r["allowed"], true);
        assert!(r.get("patch").is_none());
    }
}

#[test]
fn a_pod_that_cannot_be_injected_is_refused_with_the_reason() {
    let mut p = pod();
    p["spec"]["containers"][0]["ports"] = json!("eighty");
    let a = answer(&review(p, "CREATE", "Pod"), &InjectConfig::default()).unwrap();
    assert_eq!(a.verdict, Verdict::Denied);
    let r = response(&a);
    assert_eq!(r["allowed"], false);
    assert!(
        r["status"]["message"]
            .as_str()
            .unwrap()
            .contains("cannot read the pod")
    );

    let mut p = pod();
    p["metadata"]["annotations"] = json!({ "meshid.io/inbound-ports": "http" });
    let r = response(&answer(&review(p, "CREATE", "Pod"), &InjectConfig::default()).unwrap());
    assert_eq!(r["allowed"], false);
    assert!(
        r["status"]["message"]
            .as_str()
            .unwrap()
            .contains("meshid.io/inbound-ports")
    );
}

#[test]
fn what_is_not_a_v1_review_is_a_bad_request() {
    let cfg = InjectConfig::default();
    assert!(answer(b"{", &cfg).is_err());
    assert!(
        answer(
            br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#,
            &cfg
        )
        .is_err()
    );
    let mut v: Value = serde_json::from_slice(&review(pod(), "CREATE", "Pod")).unwrap();
    v["apiVersion"] = "admission.k8s.io/v1beta1".into();
    assert!(answer(&serde_json::to_vec(&v).unwrap(), &cfg).is_err());
}
