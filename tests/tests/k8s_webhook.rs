//! The sidecar-injection webhook with the real binary: `meshid k8s inject`
//! output, laid out as the pod's volumes would be (downward API files, the
//! policy ConfigMap), accepted by `meshid proxy validate`; `meshid k8s
//! webhook validate` on good and bad configs.
#![allow(clippy::unwrap_used)]

use meshid_tests::process::Cmd;
use meshid_tests::tempdir;
use serde_json::Value;
use std::path::Path;

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../k8s/tests/fixtures/pods")
        .join(name)
}

/// The pod templates of the injected manifest that carry a proxy config.
fn injected_pods(yaml: &str) -> Vec<Value> {
    yaml.split("\n---\n")
        .map(|d| serde_yaml_ng::from_str::<Value>(d).unwrap())
        .filter_map(|obj| {
            let pod = match obj["kind"].as_str() {
                Some("Pod") => obj.clone(),
                _ => obj["spec"]["template"].clone(),
            };
            pod["metadata"]["annotations"]["meshid.io/proxy-config"]
                .is_string()
                .then_some(pod)
        })
        .collect()
}

/// Writes the files the sidecar's volumes hold under `root` (the mount
/// paths made relative) and returns the config file's path.
fn mount(root: &Path, pod: &Value) -> std::path::PathBuf {
    let config = pod["metadata"]["annotations"]["meshid.io/proxy-config"]
        .as_str()
        .unwrap()
        .replace("/etc/meshid/", &format!("{}/etc/meshid/", root.display()))
        .replace("/run/meshid/", &format!("{}/run/meshid/", root.display()));
    let podinfo = root.join("etc/meshid/proxy");
    let policy = root.join("etc/meshid/policy");
    for d in [&podinfo, &policy, &root.join("run/meshid/sockets")] {
        std::fs::create_dir_all(d).unwrap();
    }
    // The downward API's `metadata.labels` format: key="value" per line.
    let labels: String = pod["metadata"]["labels"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={v}\n"))
                .collect::<String>()
        })
        .unwrap_or_default();
    std::fs::write(podinfo.join("labels"), labels).unwrap();
    std::fs::write(
        policy.join("policy.yaml"),
        "policies:\n  - name: default/httpbin\n    selector: { matchLabels: { app: httpbin } }\n    \
         action: ALLOW\n    rules: [{ from: [{ source: { namespaces: [default] } }] }]\n",
    )
    .unwrap();
    let path = podinfo.join("config.yaml");
    std::fs::write(&path, config).unwrap();
    path
}

#[test]
fn injected_proxy_configs_pass_proxy_validate() {
    let dir = tempdir();
    let webhook_config = dir.path().join("webhook.toml");
    std::fs::write(
        &webhook_config,
        "[inject]\nimage = \"registry.example/meshid:0.1.0\"\nproxy_uid = 2000\ninbound_port_base = 16000\n",
    )
    .unwrap();
    let mut checked = 0;
    for name in [
        "istio-httpbin.yaml",
        "istio-curl.yaml",
        "grpc-pod.yaml",
        "batch-job.yaml",
    ] {
        let out = Cmd::meshid()
            .args(["k8s", "inject", "-f"])
            .args([fixture(name)])
            .args(["--config"])
            .args([&webhook_config])
            .run_ok();
        let pods = injected_pods(&out);
        assert_eq!(pods.len(), 1, "{name}:\n{out}");
        let sidecar = &pods[0]["spec"]["initContainers"][0];
        assert_eq!(sidecar["image"], "registry.example/meshid:0.1.0");
        assert_eq!(sidecar["securityContext"]["runAsUser"], 2000);
        let root = dir.path().join(name);
        let config = mount(&root, &pods[0]);
        let report = Cmd::meshid()
            .args(["proxy", "validate", "--config"])
            .args([&config])
            .run_ok();
        assert!(report.contains("config OK"), "{name}: {report}");
        if name == "istio-httpbin.yaml" || name == "grpc-pod.yaml" {
            assert!(report.contains(":16000"), "{name}: {report}");
        }
        checked += 1;
    }
    assert_eq!(checked, 4);
    // From standard input too; objects without a pod template pass through.
    let mut child = std::process::Command::new(meshid_tests::meshid_bin())
        .args(["k8s", "inject", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(
        &mut child.stdin.take().unwrap(),
        &std::fs::read(fixture("istio-httpbin.yaml")).unwrap(),
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("document 2: not injected: a Service has no pod template"),
        "{stderr}"
    );
    assert!(stderr.contains("document 3: injected"), "{stderr}");
    assert_eq!(
        injected_pods(&String::from_utf8_lossy(&out.stdout)).len(),
        1
    );
}

#[test]
fn webhook_validate_accepts_good_configs_and_names_mistakes() {
    let dir = tempdir();
    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        "listen = \"0.0.0.0:9443\"\nops_listen = \"0.0.0.0:8084\"\n\
         identity = { workload_api = { socket = \"/run/meshid/sockets/agent.sock\" } }\n\
         [inject]\nimage = \"meshid:0.1.0\"\nmemory_limit = \"256Mi\"\n",
    )
    .unwrap();
    let out = Cmd::meshid()
        .args(["k8s", "webhook", "validate", "--config"])
        .args([&good])
        .run_ok();
    assert!(out.contains("config OK"), "{out}");
    for (bad, says) in [
        ("[inject]\nproxy_uid = 0\n", "proxy_uid"),
        ("[inject]\nmemory_limit = \"lots\"\n", "memory_limit"),
        ("listn = \"0.0.0.0:1\"\n", "listn"),
    ] {
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, bad).unwrap();
        let out = Cmd::meshid()
            .args(["k8s", "webhook", "validate", "--config"])
            .args([&path])
            .output();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{bad}");
        assert!(stderr.contains(says), "{bad}: {stderr}");
    }
}
