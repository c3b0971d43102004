//! Sidecar injection on pod specs shaped like those of Istio's and
//! SPIRE's docs (k8s/tests/fixtures/pods/): what is injected and what is
//! left alone, the generated proxy config accepted by the proxy, the JSON
//! Patch the webhook answers equal to the offline injection, injecting
//! twice changing nothing, and every output valid against the Kubernetes
//! 1.33 schemas (kubernetes-validate, offline, strict).
#![allow(clippy::unwrap_used)]

#[path = "deploy/tools.rs"]
#[allow(dead_code)]
mod tools;

use meshid_k8s::webhook::{InjectConfig, Outcome, inject_manifests, manifest, patch};
use meshid_proxy::config::{Protocol, ProxyConfig};
use serde_json::Value;
use std::path::PathBuf;

/// Each fixture and whether each of its documents gets the sidecar.
const FIXTURES: &[(&str, &[bool])] = &[
    ("istio-httpbin.yaml", &[false, false, true]),
    ("istio-curl.yaml", &[false, true]),
    ("spire-client.yaml", &[true]),
    ("grpc-pod.yaml", &[true]),
    ("batch-job.yaml", &[true]),
    ("opted-out.yaml", &[false, false, false]),
];

fn fixture(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/pods")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn documents(yaml: &str) -> Vec<Value> {
    yaml.split("\n---\n")
        .map(|d| serde_yaml_ng::from_str(d).unwrap())
        .filter(|v: &Value| !v.is_null())
        .collect()
}

/// The pod (template) of an object.
fn pod_of(obj: &Value) -> &Value {
    match obj["kind"].as_str().unwrap() {
        "Pod" => obj,
        _ => &obj["spec"]["template"],
    }
}

#[test]
fn fixtures_are_injected_as_expected_and_twice_is_once() {
    let cfg = InjectConfig::default();
    for (name, expected) in FIXTURES {
        let (once, outcomes) = inject_manifests(&fixture(name), &cfg).unwrap();
        let injected: Vec<bool> = outcomes.iter().map(|o| *o == Outcome::Injected).collect();
        assert_eq!(&injected, expected, "{name}: {outcomes:?}");
        let (twice, again) = inject_manifests(&once, &cfg).unwrap();
        assert_eq!(
            documents(&once),
            documents(&twice),
            "{name}: the second pass changed it"
        );
        assert!(!again.contains(&Outcome::Injected), "{name}: {again:?}");

        for obj in documents(&once)
            .iter()
            .zip(*expected)
            .filter(|(_, i)| **i)
            .map(|(o, _)| o)
        {
            let pod = pod_of(obj);
            let yaml = pod["metadata"]["annotations"]["meshid.io/proxy-config"]
                .as_str()
                .unwrap();
            ProxyConfig::from_yaml(yaml).unwrap_or_else(|e| panic!("{name}: {e}\n{yaml}"));
            let init = pod["spec"]["initContainers"].as_array().unwrap();
            assert_eq!(init[0]["name"], "meshid-proxy", "{name}");
            assert_eq!(init[0]["restartPolicy"], "Always", "{name}");
            assert_eq!(
                pod["metadata"]["annotations"]["meshid.io/status"],
                "injected"
            );
        }
    }
}

#[test]
fn the_grpc_pod_gets_its_chosen_ports_and_protocols() {
    let (out, _) = inject_manifests(&fixture("grpc-pod.yaml"), &InjectConfig::default()).unwrap();
    let pod = &documents(&out)[0];
    let init = pod["spec"]["initContainers"].as_array().unwrap();
    // The sidecar starts first, so the pod's own init container has the mesh.
    let names: Vec<_> = init.iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["meshid-proxy", "migrate"]);
    let ports: Vec<_> = init[0]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap(),
                p["containerPort"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(ports, [("mesh-8080", 15006), ("mesh-9090", 15007)]);
    let cfg = ProxyConfig::from_yaml(
        pod["metadata"]["annotations"]["meshid.io/proxy-config"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let inbound: Vec<_> = cfg
        .inbound
        .iter()
        .map(|l| (l.forward_to.port(), l.protocol))
        .collect();
    assert_eq!(inbound, [(8080, Protocol::Http), (9090, Protocol::Http2)]);
    assert_eq!(
        cfg.pod_labels_file.as_deref(),
        Some(std::path::Path::new("/etc/meshid/proxy/labels"))
    );
    let security = &init[0]["securityContext"];
    assert_eq!(security["runAsNonRoot"], true);
    assert_eq!(security["runAsUser"], 1337);
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["capabilities"]["drop"][0], "ALL");
    let volumes: Vec<_> = pod["spec"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        volumes,
        ["meshid-sockets", "meshid-podinfo", "meshid-policy"]
    );
}

#[test]
fn the_webhook_patch_gives_the_offline_result() {
    let cfg = InjectConfig::default();
    for (name, _) in FIXTURES {
        for mut obj in documents(&fixture(name)) {
            let original = obj.clone();
            if manifest::inject_object(&mut obj, &cfg).unwrap() != Outcome::Injected {
                continue;
            }
            let (_, p) = patch(pod_of(&original), &cfg).unwrap();
            let mut patched = pod_of(&original).clone();
            json_patch::patch(&mut patched, &p.unwrap()).unwrap();
            assert_eq!(&patched, pod_of(&obj), "{name}");
        }
    }
}

#[test]
fn every_output_validates_against_kubernetes_1_33() {
    let test = "every_output_validates_against_kubernetes_1_33";
    let Some(python) = tools::python(test) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    let mut objects = 0;
    for (name, expected) in FIXTURES {
        let (out, _) = inject_manifests(&fixture(name), &InjectConfig::default()).unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, &out).unwrap();
        files.push(path);
        objects += expected.len();
    }
    let report = tools::run(
        std::process::Command::new(python)
            .arg(tools::root().join("k8s/tests/deploy/validate.py"))
            .arg("1.33.0")
            .args(&files),
    );
    let report: Value = serde_json::from_str(&report).unwrap();
    assert_eq!(report["errors"], serde_json::json!([]), "{report}");
    assert_eq!(report["no_schema"], serde_json::json!([]), "{report}");
    assert_eq!(report["checked"], objects, "{report}");
}
