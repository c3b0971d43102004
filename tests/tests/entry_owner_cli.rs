//! `meshid entry` and entry owners (#13), with the real binary and CA:
//! `create --owner`, `list --owner`, `show` and `update --owner`.
#![allow(clippy::unwrap_used)]

use meshid_tests::{TestCa, tempdir};

const PARENT: &str = "spiffe://example.org/k8s-node/a";

fn create(ca: &TestCa, path: &str, uid: u32, owner: Option<&str>) -> serde_json::Value {
    let id = format!("spiffe://example.org/{path}");
    let sel = format!("unix:uid:{uid}");
    let mut args = vec![
        "entry",
        "create",
        "--spiffe-id",
        &id,
        "--parent-id",
        PARENT,
        "--selector",
        &sel,
    ];
    if let Some(o) = owner {
        args.extend(["--owner", o]);
    }
    ca.admin_json(&args)
}

/// The SPIFFE IDs `meshid entry list <filter>` shows, sorted.
fn listed(ca: &TestCa, filter: &[&str]) -> Vec<String> {
    let mut args = vec!["entry", "list"];
    args.extend(filter);
    let v = ca.admin_json(&args);
    let mut ids: Vec<String> = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["spiffe_id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

#[test]
fn entry_commands_set_show_filter_and_change_the_owner() {
    let tmp = tempdir();
    let logs = tmp.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let ca = TestCa::builder(tmp.path().join("ca"), &logs).start();

    let pod = create(&ca, "pod", 1000, Some("k8s/demo"));
    assert_eq!(pod["owner"], "k8s/demo");
    let op = create(&ca, "op", 1001, None);
    assert_eq!(op["owner"], "");
    create(&ca, "other", 1002, Some("k8s/other"));

    let id = pod["id"].as_str().unwrap();
    let text = ca.admin(&["entry", "show", id]);
    assert!(text.contains("Owner          : k8s/demo"), "{text}");
    let text = ca.admin(&["entry", "show", op["id"].as_str().unwrap()]);
    assert!(text.contains("Owner          : -"), "{text}");

    assert_eq!(
        listed(&ca, &["--owner", "k8s/demo"]),
        ["spiffe://example.org/pod"]
    );
    assert_eq!(
        listed(&ca, &["--owner", "k8s/demo", "--parent-id", PARENT]),
        ["spiffe://example.org/pod"]
    );
    assert_eq!(listed(&ca, &[]).len(), 3);

    // An update keeps the owner unless told otherwise.
    let kept = ca.admin_json(&["entry", "update", id, "--dns-name", "pod.local"]);
    assert_eq!(kept["owner"], "k8s/demo");
    let released = ca.admin_json(&["entry", "update", id, "--owner", ""]);
    assert_eq!(released["owner"], "");
    assert!(listed(&ca, &["--owner", "k8s/demo"]).is_empty());

    let err = ca.admin_refused(&[
        "entry",
        "create",
        "--spiffe-id",
        "spiffe://example.org/bad",
        "--parent-id",
        PARENT,
        "--selector",
        "unix:uid:1",
        "--owner",
        "K8s/Demo",
    ]);
    assert!(err.contains("owner \"K8s/Demo\" may hold only"), "{err}");
    let err = ca.admin_refused(&["entry", "list", "--owner", "k8s demo"]);
    assert!(err.contains("by_owner"), "{err}");
}
