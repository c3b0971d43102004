//! deploy/: every overlay builds with every kubectl found (kubectl 1.20's
//! kustomize and a current one give the same objects); every object
//! validates against the Kubernetes 1.33 schemas (custom resources against
//! the generated CRDs); the RBAC objects grant exactly `meshid_k8s::rbac`;
//! the configs in the ConfigMaps pass `meshid … validate`; every container
//! keeps the security settings.

// Shared by deploy.rs and deploy_image.rs; each uses part of it.
#[allow(dead_code)]
#[path = "deploy/tools.rs"]
mod tools;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use meshid_k8s::rbac::{self, Scope};
use serde::Deserialize;
use serde_json::Value;

/// The kustomizations, relative to deploy/.
const OVERLAYS: &[&str] = &[
    "base",
    "overlays/ha",
    "overlays/enterprise-root",
    "overlays/openshift",
    "overlays/dev",
];

/// The Kubernetes version the objects are validated against.
const KUBERNETES: &str = "1.33";

/// Kinds kubernetes-validate has no schema for (OpenShift's own API).
const NO_SCHEMA: &[&str] = &["security.openshift.io/v1/SecurityContextConstraints"];

/// One overlay as `kubectl kustomize` renders it.
struct Rendered {
    overlay: &'static str,
    /// The rendered YAML (of the first kubectl; the others gave the same objects).
    yaml: String,
    objects: Vec<Value>,
}

/// Every overlay rendered with every kubectl (once per test binary), or
/// `None` when no kubectl is installed outside CI.
fn rendered(test: &str) -> Option<&'static [Rendered]> {
    static RENDERED: OnceLock<Vec<Rendered>> = OnceLock::new();
    if let Some(r) = RENDERED.get() {
        return Some(r);
    }
    let kubectls = tools::kubectls(test)?;
    Some(RENDERED.get_or_init(|| render_all(&kubectls)))
}

fn render_all(kubectls: &[PathBuf]) -> Vec<Rendered> {
    let deploy = tools::root().join("deploy");
    OVERLAYS
        .iter()
        .map(|&overlay| {
            let mut first: Option<(String, Vec<Value>)> = None;
            for kubectl in kubectls {
                let yaml = tools::run(
                    Command::new(kubectl)
                        .arg("kustomize")
                        .arg(deploy.join(overlay)),
                );
                let objects = parse(&yaml);
                assert!(
                    !objects.is_empty(),
                    "{overlay}: {kubectl:?} rendered nothing"
                );
                match &first {
                    None => first = Some((yaml, objects)),
                    Some((_, want)) => assert_eq!(
                        sorted(&objects),
                        sorted(want),
                        "{overlay}: {kubectl:?} renders other objects than {:?}",
                        kubectls[0]
                    ),
                }
            }
            let (yaml, objects) = first.expect("at least one kubectl");
            Rendered {
                overlay,
                yaml,
                objects,
            }
        })
        .collect()
}

fn parse(yaml: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(yaml)
        .map(|doc| Value::deserialize(doc).unwrap_or_else(|e| panic!("rendered YAML: {e}")))
        .filter(|v| !v.is_null())
        .collect()
}

fn sorted(objects: &[Value]) -> Vec<String> {
    let mut all: Vec<String> = objects.iter().map(Value::to_string).collect();
    all.sort();
    all
}

fn of_kind<'a>(objects: &'a [Value], kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    objects.iter().filter(move |o| o["kind"] == kind)
}

fn name(o: &Value) -> &str {
    o["metadata"]["name"].as_str().unwrap_or_default()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[derive(Deserialize)]
struct Report {
    checked: usize,
    custom: usize,
    no_schema: Vec<String>,
    errors: Vec<String>,
}

#[test]
fn every_overlay_builds_and_validates_against_kubernetes_1_33() {
    let test = "every_overlay_builds_and_validates_against_kubernetes_1_33";
    let Some(rendered) = rendered(test) else {
        return;
    };
    let Some(python) = tools::python(test) else {
        return;
    };
    let script = tools::root().join("k8s/tests/deploy/validate.py");
    let tmp = meshid_tests::tempdir();
    let files: Vec<PathBuf> = rendered
        .iter()
        .map(|r| {
            let file = tmp
                .path()
                .join(format!("{}.yaml", r.overlay.replace('/', "-")));
            std::fs::write(&file, &r.yaml).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            file
        })
        .collect();
    let out = tools::run(
        Command::new(python)
            .arg(script)
            .arg(KUBERNETES)
            .args(&files),
    );
    let report: Report =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("validate.py said {out:?}: {e}"));
    assert!(
        report.errors.is_empty(),
        "invalid objects:\n{}",
        report.errors.join("\n")
    );
    let total: usize = rendered.iter().map(|r| r.objects.len()).sum();
    assert_eq!(
        report.checked + report.custom + report.no_schema.len(),
        total
    );
    let templates: usize = rendered
        .iter()
        .map(|r| of_kind(&r.objects, "ClusterIdentityTemplate").count())
        .sum();
    assert_eq!(
        report.custom, templates,
        "the custom resources checked against the CRDs"
    );
    for kind in &report.no_schema {
        assert!(NO_SCHEMA.contains(&kind.as_str()), "no schema for {kind}");
    }
    eprintln!(
        "{} objects in {} overlays: {} against the Kubernetes {KUBERNETES} schemas, {} \
         against the CRDs, {} without a schema ({NO_SCHEMA:?})",
        total,
        rendered.len(),
        report.checked,
        report.custom,
        report.no_schema.len()
    );
}

/// A granted rule in the shape of [`rbac::Rule`], for comparing.
type Grant = (String, String, String, Vec<String>, Vec<String>);

fn grant(
    scope: Scope,
    group: &str,
    resource: &str,
    verbs: Vec<String>,
    names: Vec<String>,
) -> Grant {
    let mut verbs = verbs;
    verbs.sort();
    (
        format!("{scope:?}"),
        group.into(),
        resource.into(),
        verbs,
        names,
    )
}

/// Service account (`ns/name`) → what the RBAC objects grant it.
fn granted(objects: &[Value]) -> BTreeMap<String, BTreeSet<Grant>> {
    let mut out: BTreeMap<String, BTreeSet<Grant>> = BTreeMap::new();
    for binding in objects
        .iter()
        .filter(|o| o["kind"] == "ClusterRoleBinding" || o["kind"] == "RoleBinding")
    {
        let cluster = binding["kind"] == "ClusterRoleBinding";
        let role_kind = binding["roleRef"]["kind"].as_str().unwrap_or_default();
        let role_name = binding["roleRef"]["name"].as_str().unwrap_or_default();
        let ns = binding["metadata"]["namespace"].as_str();
        let role = objects
            .iter()
            .find(|o| {
                o["kind"] == role_kind
                    && name(o) == role_name
                    && (role_kind == "ClusterRole" || o["metadata"]["namespace"].as_str() == ns)
            })
            .unwrap_or_else(|| panic!("{} binds a missing {role_kind} {role_name}", name(binding)));
        let scope = if cluster {
            Scope::Cluster
        } else {
            assert_eq!(
                ns,
                Some("meshid-system"),
                "a RoleBinding outside meshid-system"
            );
            Scope::OwnNamespace
        };
        for subject in binding["subjects"].as_array().into_iter().flatten() {
            assert_eq!(
                subject["kind"],
                "ServiceAccount",
                "{}: only service accounts",
                name(binding)
            );
            let sa = format!(
                "{}/{}",
                subject["namespace"].as_str().unwrap_or_default(),
                subject["name"].as_str().unwrap_or_default()
            );
            for rule in role["rules"].as_array().into_iter().flatten() {
                for group in strings(&rule["apiGroups"]) {
                    for resource in strings(&rule["resources"]) {
                        out.entry(sa.clone()).or_default().insert(grant(
                            scope,
                            &group,
                            &resource,
                            strings(&rule["verbs"]),
                            strings(&rule["resourceNames"]),
                        ));
                    }
                }
            }
        }
    }
    out
}

fn table(rules: &[rbac::Rule]) -> BTreeSet<Grant> {
    let owned = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
    rules
        .iter()
        .map(|r| {
            grant(
                r.scope,
                r.api_group,
                r.resource,
                owned(r.verbs),
                owned(r.resource_names),
            )
        })
        .collect()
}

#[test]
fn rbac_in_every_overlay_is_the_table_in_meshid_k8s_rbac() {
    let Some(rendered) = rendered("rbac_in_every_overlay_is_the_table_in_meshid_k8s_rbac") else {
        return;
    };
    // The controller and the CA's k8s_psat attestor share the CA pod's
    // account; the agent reads the kubelet; the webhook gets nothing.
    let mut want = BTreeMap::new();
    let mut ca = table(rbac::CONTROLLER);
    ca.extend(table(rbac::CA_ATTESTOR));
    ca.extend(table(rbac::CA_ADMIN_AUTH));
    want.insert("meshid-system/meshid-ca".to_string(), ca);
    want.insert("meshid-system/meshid-agent".to_string(), table(rbac::AGENT));
    if !rbac::WEBHOOK.is_empty() {
        want.insert(
            "meshid-system/meshid-webhook".to_string(),
            table(rbac::WEBHOOK),
        );
    }
    for r in rendered {
        assert_eq!(
            granted(&r.objects),
            want,
            "{}: RBAC differs from k8s/src/rbac.rs",
            r.overlay
        );
    }
    let manifests = [
        ("controller.yaml", rbac::CONTROLLER),
        ("ca-attestor.yaml", rbac::CA_ATTESTOR),
        ("ca-admin-auth.yaml", rbac::CA_ADMIN_AUTH),
        ("agent.yaml", rbac::AGENT),
    ];
    for (file, rules) in manifests {
        let manifest = tools::root().join("deploy/base/rbac").join(file);
        let text = std::fs::read_to_string(&manifest).expect("read the RBAC manifest");
        for rule in rules {
            assert!(
                text.contains(&format!("# {}\n", rule.why)),
                "{}: no `# why` comment for {} {:?}: {}",
                manifest.display(),
                rule.resource,
                rule.verbs,
                rule.why
            );
        }
    }
}

/// The data key `key` of ConfigMap `name` in `objects`.
fn config_file(objects: &[Value], name_: &str, key: &str) -> String {
    of_kind(objects, "ConfigMap")
        .find(|o| name(o) == name_)
        .and_then(|o| o["data"][key].as_str())
        .unwrap_or_else(|| panic!("no ConfigMap {name_} with {key}"))
        .to_owned()
}

/// Runs `meshid <args> --config <file with text>`; panics unless it says `config OK`.
fn validate(dir: &std::path::Path, file: &str, text: &str, args: &[&str]) {
    let path = dir.join(file);
    std::fs::write(&path, text).expect("write the config");
    let out = tools::run(
        Command::new(meshid_tests::meshid_bin())
            .args(args)
            .arg("--config")
            .arg(&path)
            .env_remove("MESHID_JOIN_TOKEN")
            // The downward API's status.hostIP (the agent's kubelet_host_env).
            .env("HOST_IP", "10.0.0.7"),
    );
    assert!(
        out.starts_with("config OK"),
        "meshid {args:?} on {file}:\n{text}\nsaid {out}"
    );
}

/// The config files in ConfigMaps: (ConfigMap, key, the `meshid` command
/// that validates it).
const CONFIGS: &[(&str, &str, &[&str])] = &[
    ("meshid-ca-config", "ca.toml", &["ca", "validate"]),
    ("meshid-agent-config", "agent.toml", &["agent", "validate"]),
    (
        "meshid-controller-config",
        "controller.toml",
        &["k8s", "controller", "validate"],
    ),
    (
        "meshid-webhook-config",
        "webhook.toml",
        &["k8s", "webhook", "validate"],
    ),
];

#[test]
fn the_configs_in_the_configmaps_pass_meshid_validate() {
    let Some(rendered) = rendered("the_configs_in_the_configmaps_pass_meshid_validate") else {
        return;
    };
    let tmp = meshid_tests::tempdir();
    // Files that exist only on a cluster, made here: the trust bundle the
    // controller publishes and the enterprise root's Secret `cacerts`.
    let pki = meshid_tests::Pki::new(tmp.path());
    pki.root("root", meshid_tests::Alg::P256);
    pki.mesh_ca("mesh", "root", meshid_tests::Alg::P256, "");
    let cacerts = tmp.path().join("cacerts");
    std::fs::create_dir(&cacerts).expect("mkdir cacerts");
    for (file, from) in [
        ("ca-cert.pem", pki.cert("mesh")),
        ("ca-key.pem", pki.key("mesh")),
        ("root-cert.pem", pki.cert("root")),
        ("cert-chain.pem", pki.bundle("chain.pem", &["mesh", "root"])),
    ] {
        std::fs::copy(&from, cacerts.join(file)).expect("copy into cacerts");
    }
    // The agent's projected tokens and the cluster CA (kube-root-ca.crt).
    let secrets = tmp.path().join("secrets");
    std::fs::create_dir(&secrets).expect("mkdir secrets");
    let psat = secrets.join("psat-token");
    let api_token = secrets.join("api-token");
    for token in [&psat, &api_token] {
        std::fs::write(token, "eyJhbGciOiJSUzI1NiJ9.e30.c2ln\n").expect("write a token");
    }
    let on_this_machine = |text: String| {
        text.replace("/etc/meshid/cacerts", &cacerts.display().to_string())
            .replace("/var/run/secrets/meshid/token", &psat.display().to_string())
            .replace(
                "/var/run/secrets/kubernetes.io/serviceaccount/token",
                &api_token.display().to_string(),
            )
            .replace(
                "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt",
                &pki.cert("root").display().to_string(),
            )
            .replace(
                "/run/meshid/bundle/root-cert.pem",
                &pki.cert("root").display().to_string(),
            )
    };
    let mut seen = BTreeSet::new();
    for r in rendered {
        for &(cm, key, args) in CONFIGS {
            let text = on_this_machine(config_file(&r.objects, cm, key));
            if seen.insert(text.clone()) {
                validate(tmp.path(), key, &text, args);
            }
        }
    }
    // The upstream dir is used where the overlay says so.
    assert!(
        seen.iter()
            .any(|t| t.contains(&cacerts.display().to_string()))
    );
}

/// Every container and pod template of `objects`: (workload name, pod spec).
fn pod_specs(objects: &[Value]) -> impl Iterator<Item = (&str, &Value)> {
    objects
        .iter()
        .filter(|o| {
            ["StatefulSet", "DaemonSet", "Deployment"]
                .contains(&o["kind"].as_str().unwrap_or_default())
        })
        .map(|o| (name(o), &o["spec"]["template"]["spec"]))
}

#[test]
fn every_container_is_locked_down_and_probed_with_the_binary() {
    let Some(rendered) = rendered("every_container_is_locked_down_and_probed_with_the_binary")
    else {
        return;
    };
    for r in rendered {
        let webhook_toml = config_file(&r.objects, "meshid-webhook-config", "webhook.toml");
        for (workload, pod) in pod_specs(&r.objects) {
            let at = format!("{}: {workload}", r.overlay);
            assert_eq!(
                pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault",
                "{at}"
            );
            let fixed_user = pod["securityContext"].get("runAsUser").is_some();
            if r.overlay == "overlays/openshift" && workload != "meshid-agent" {
                assert!(!fixed_user, "{at}: restricted-v2 picks the user");
            }
            for c in pod["containers"].as_array().expect("containers") {
                let at = format!("{at}/{}", c["name"].as_str().unwrap_or_default());
                let sc = &c["securityContext"];
                assert_eq!(sc["allowPrivilegeEscalation"], false, "{at}");
                assert_eq!(sc["readOnlyRootFilesystem"], true, "{at}");
                assert_eq!(
                    sc["capabilities"]["drop"],
                    serde_json::json!(["ALL"]),
                    "{at}"
                );
                assert!(sc["capabilities"].get("add").is_none(), "{at}");
                // The agent alone runs as uid 0 (hostPath directories are
                // root-owned), with no capability; see its DaemonSet.
                let root = workload == "meshid-agent";
                assert_eq!(sc["runAsNonRoot"], !root, "{at}");
                assert_eq!(sc.get("runAsUser").is_some_and(|u| u == 0), root, "{at}");
                for want in ["cpu", "memory"] {
                    assert!(
                        c["resources"]["requests"].get(want).is_some(),
                        "{at}: no {want} request"
                    );
                }
                assert!(
                    c["resources"]["limits"].get("memory").is_some(),
                    "{at}: no memory limit"
                );
                let image = c["image"].as_str().expect("image");
                assert!(
                    webhook_toml.contains(&format!("image = {image:?}")),
                    "{at}: {image} is not the image the webhook injects"
                );
                for probe in ["startupProbe", "livenessProbe", "readinessProbe"] {
                    if let Some(p) = c.get(probe) {
                        let cmd = strings(&p["exec"]["command"]);
                        assert_eq!(
                            cmd[..2],
                            ["/usr/local/bin/meshid", "healthcheck"],
                            "{at} {probe}"
                        );
                    }
                }
                assert!(c.get("livenessProbe").is_some(), "{at}: no liveness probe");
            }
        }
        let hook = of_kind(&r.objects, "MutatingWebhookConfiguration")
            .find(|o| name(o) == rbac::WEBHOOK_CONFIGURATION)
            .unwrap_or_else(|| panic!("{}: no {}", r.overlay, rbac::WEBHOOK_CONFIGURATION));
        let hook = &hook["webhooks"][0];
        assert_eq!(hook["failurePolicy"], "Fail");
        assert_eq!(hook["sideEffects"], "None");
        assert_eq!(hook["timeoutSeconds"], 10);
        assert_eq!(
            hook["namespaceSelector"]["matchLabels"]["meshid.io/inject"],
            "enabled"
        );
        assert_eq!(
            hook["objectSelector"]["matchExpressions"][0]["operator"],
            "NotIn"
        );
        assert!(
            hook["clientConfig"].get("caBundle").is_none(),
            "the controller owns caBundle"
        );
        let controller = config_file(&r.objects, "meshid-controller-config", "controller.toml");
        assert!(controller.contains(&format!(
            "webhook_configuration = {:?}",
            rbac::WEBHOOK_CONFIGURATION
        )));
    }
}

/// The container `container` of workload `workload`, and its pod spec.
fn container<'a>(objects: &'a [Value], workload: &str, container: &str) -> (&'a Value, &'a Value) {
    let (_, pod) = pod_specs(objects)
        .find(|(w, _)| *w == workload)
        .unwrap_or_else(|| panic!("no workload {workload}"));
    let c = pod["containers"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == container))
        .unwrap_or_else(|| panic!("{workload} has no container {container}"));
    (pod, c)
}

/// The volume mounted at `dir` in container `c` of `pod`: (name, volume).
fn mounted<'a>(pod: &'a Value, c: &'a Value, dir: &str) -> (&'a str, &'a Value) {
    let mount = c["volumeMounts"]
        .as_array()
        .and_then(|ms| ms.iter().find(|m| m["mountPath"] == dir))
        .unwrap_or_else(|| panic!("{}: nothing mounted at {dir}", c["name"]));
    let name = mount["name"].as_str().expect("mount name");
    // Null for a StatefulSet's volumeClaimTemplate, which is no pod volume.
    static CLAIM: Value = Value::Null;
    let volume = pod["volumes"]
        .as_array()
        .and_then(|vs| vs.iter().find(|v| v["name"] == name))
        .unwrap_or(&CLAIM);
    (name, volume)
}

/// `key` of a TOML config as a path's directory (or the path itself with `dir = false`).
fn toml_path(config: &toml::Table, key: &str, dir: bool) -> String {
    let mut v = &toml::Value::Table(config.clone());
    for part in key.split('.') {
        v = v.get(part).unwrap_or_else(|| panic!("config has no {key}"));
    }
    let path = std::path::Path::new(v.as_str().unwrap_or_else(|| panic!("{key} is no string")));
    let path = if dir {
        path.parent().expect("a parent")
    } else {
        path
    };
    path.display().to_string()
}

#[test]
fn every_path_a_config_names_is_mounted_where_it_says() {
    let Some(rendered) = rendered("every_path_a_config_names_is_mounted_where_it_says") else {
        return;
    };
    for r in rendered {
        let config = |cm: &str, key: &str| -> toml::Table {
            toml::from_str(&config_file(&r.objects, cm, key))
                .unwrap_or_else(|e| panic!("{}: {cm}/{key}: {e}", r.overlay))
        };
        let (ca, controller, agent, webhook) = (
            config("meshid-ca-config", "ca.toml"),
            config("meshid-controller-config", "controller.toml"),
            config("meshid-agent-config", "agent.toml"),
            config("meshid-webhook-config", "webhook.toml"),
        );
        // Each container reads its config file from its ConfigMap.
        for (workload, name_, cm, key) in [
            ("meshid-ca", "ca", "meshid-ca-config", "ca.toml"),
            (
                "meshid-ca",
                "controller",
                "meshid-controller-config",
                "controller.toml",
            ),
            ("meshid-agent", "agent", "meshid-agent-config", "agent.toml"),
            (
                "meshid-webhook",
                "webhook",
                "meshid-webhook-config",
                "webhook.toml",
            ),
        ] {
            let (pod, c) = container(&r.objects, workload, name_);
            let args = strings(&c["args"]);
            let file = args
                .iter()
                .skip_while(|a| *a != "--config")
                .nth(1)
                .unwrap_or_else(|| panic!("{workload}/{name_}: no --config"));
            let (dir, base) = file.rsplit_once('/').expect("an absolute path");
            assert_eq!(base, key, "{workload}/{name_}");
            let (_, volume) = mounted(pod, c, dir);
            assert_eq!(volume["configMap"]["name"], cm, "{workload}/{name_}");
        }
        // The CA's data on the PVC; its admin socket in the emptyDir the
        // controller mounts too.
        let (pod, c) = container(&r.objects, "meshid-ca", "ca");
        let (data, volume) = mounted(pod, c, &toml_path(&ca, "data_dir", false));
        assert!(volume.is_null(), "the CA's data dir is no pod volume");
        let claims = &of_kind(&r.objects, "StatefulSet")
            .find(|o| name(o) == "meshid-ca")
            .expect("the CA StatefulSet")["spec"]["volumeClaimTemplates"];
        assert_eq!(
            claims[0]["metadata"]["name"], data,
            "the CA's data dir is its PVC"
        );
        let (admin, volume) = mounted(pod, c, &toml_path(&ca, "admin_socket", true));
        assert!(volume.get("emptyDir").is_some());
        let (_, ctl) = container(&r.objects, "meshid-ca", "controller");
        let (admin_too, _) = mounted(pod, ctl, &toml_path(&controller, "ca_admin_socket", true));
        assert_eq!(
            admin, admin_too,
            "the controller reaches the CA's admin socket"
        );
        assert!(toml_path(&agent, "ca_address", false).starts_with("meshid-ca.meshid-system.svc:"));
        // The agent's socket directory is the hostPath the webhook and the
        // injected proxies mount.
        let (pod, c) = container(&r.objects, "meshid-agent", "agent");
        let (_, sockets) = mounted(pod, c, &toml_path(&agent, "workload_api_socket", true));
        let host_dir = sockets["hostPath"]["path"].as_str().expect("a hostPath");
        assert!(
            mounted(pod, c, &toml_path(&agent, "data_dir", false))
                .1
                .get("hostPath")
                .is_some()
        );
        let (_, bundle) = mounted(pod, c, &toml_path(&agent, "trust_bundle_file", true));
        assert_eq!(
            bundle["configMap"]["name"],
            controller["bundle_configmap"].as_str().unwrap_or_default()
        );
        // k8s_psat: the agent's token is a projected one for the audience
        // the CA expects, and its cluster is the CA's and the controller's.
        let (_, psat) = mounted(
            pod,
            c,
            &toml_path(&agent, "node_attestor.k8s_psat.token_path", true),
        );
        let cluster = toml_path(&agent, "node_attestor.k8s_psat.cluster", false);
        assert_eq!(
            controller["cluster_name"].as_str(),
            Some(cluster.as_str()),
            "{}: the controller's cluster_name is the agents' cluster",
            r.overlay
        );
        let audience = toml_path(
            &ca,
            &format!("node_attestor.k8s_psat.clusters.{cluster}.audience"),
            false,
        );
        assert_eq!(
            psat["projected"]["sources"][0]["serviceAccountToken"]["audience"],
            audience.as_str(),
            "{}: the projected token's audience is the CA's",
            r.overlay
        );
        // The k8s workload attestor's kubelet token and CA.
        let (_, api) = mounted(
            pod,
            c,
            &toml_path(&agent, "workload_attestor.k8s.token_path", true),
        );
        let (_, api_ca) = mounted(
            pod,
            c,
            &toml_path(&agent, "workload_attestor.k8s.kubelet_ca_path", true),
        );
        assert_eq!(api, api_ca);
        assert!(api["projected"]["sources"][0]["serviceAccountToken"].is_object());
        assert_eq!(
            toml_path(&webhook, "inject.agent_socket_dir", false),
            host_dir
        );
        let (pod, c) = container(&r.objects, "meshid-webhook", "webhook");
        let (_, hook_sockets) = mounted(
            pod,
            c,
            &toml_path(&webhook, "identity.workload_api.socket", true),
        );
        assert_eq!(hook_sockets["hostPath"]["path"], host_dir);
    }
}
