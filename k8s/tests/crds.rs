//! The committed CRD YAML is exactly what the Rust types generate.

use std::path::Path;

#[test]
fn committed_crds_match_the_rust_types() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let path = root.join(meshid_k8s::crd::CRDS_PATH);
    let generated = meshid_k8s::crd::crds_yaml().expect("CRDs serialize");
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if std::env::var_os("MESHID_UPDATE_CRDS").is_some() {
        std::fs::write(&path, &generated).expect("write CRDs");
        return;
    }
    assert!(
        committed == generated,
        "{} differs from the types in k8s/src/crd.rs; regenerate it with \
         `meshid k8s crds > {}` (or MESHID_UPDATE_CRDS=1 cargo test -p meshid-k8s --test crds)",
        path.display(),
        meshid_k8s::crd::CRDS_PATH
    );
}

#[test]
fn the_crds_are_cluster_scoped_in_group_meshid_io() {
    let yaml = meshid_k8s::crd::crds_yaml().expect("CRDs serialize");
    for doc in yaml.split("\n---\n").skip(1) {
        let v: serde_json::Value = serde_yaml_ng::from_str(doc).expect("each CRD is YAML");
        assert_eq!(v["spec"]["group"], "meshid.io");
        assert_eq!(v["spec"]["scope"], "Cluster");
        assert_eq!(
            v["spec"]["versions"][0]["subresources"]["status"],
            serde_json::json!({})
        );
    }
}
