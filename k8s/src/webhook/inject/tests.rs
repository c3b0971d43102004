use super::*;
use serde_json::json;

fn pod() -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": { "name": "web", "annotations": { "team": "shop" } },
        "spec": {
            "containers": [{ "name": "web", "image": "web", "ports": [{ "containerPort": 8080 }],
                             "futureField": { "kept": true } }],
            "initContainers": null,
            "volumes": [{ "name": "data", "emptyDir": {} }],
            "someNewPodField": 3
        }
    })
}

#[test]
fn fields_the_types_do_not_know_survive_and_the_patch_only_adds() {
    let (outcome, p) = patch(&pod(), &InjectConfig::default()).unwrap();
    assert_eq!(outcome, Outcome::Injected);
    let p = p.unwrap();
    assert!(
        p.0.iter()
            .all(|op| !matches!(op, json_patch::PatchOperation::Remove(_))),
        "{p:?}"
    );
    let mut out = pod();
    json_patch::patch(&mut out, &p).unwrap();
    assert_eq!(out["spec"]["someNewPodField"], 3);
    assert_eq!(out["spec"]["containers"][0]["futureField"]["kept"], true);
    assert_eq!(out["metadata"]["annotations"]["team"], "shop");
    let volumes: Vec<_> = out["spec"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        volumes,
        ["data", "meshid-sockets", "meshid-podinfo", "meshid-policy"]
    );
}

#[test]
fn what_is_left_alone_and_what_is_refused() {
    let cfg = InjectConfig::default();
    let mut host = pod();
    host["spec"]["hostNetwork"] = true.into();
    assert!(matches!(inject(&mut host, &cfg), Ok(Outcome::Skipped(_))));
    let mut sidecar = pod();
    sidecar["spec"]["initContainers"] = json!([{ "name": "meshid-proxy", "image": "x" }]);
    assert_eq!(
        inject(&mut sidecar, &cfg).unwrap(),
        Outcome::Skipped("already injected".into())
    );
    let mut taken = pod();
    taken["spec"]["volumes"] = json!([{ "name": "meshid-policy", "emptyDir": {} }]);
    assert!(matches!(
        inject(&mut taken, &cfg),
        Err(InjectError::Conflict(_))
    ));
    let mut broken = pod();
    broken["spec"]["containers"] = json!("web");
    assert!(matches!(
        inject(&mut broken, &cfg),
        Err(InjectError::Pod(_))
    ));
    let mut not_false = pod();
    not_false["metadata"]["labels"] = json!({ "meshid.io/inject": "true" });
    assert_eq!(inject(&mut not_false, &cfg).unwrap(), Outcome::Injected);
}
